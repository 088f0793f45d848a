#!/usr/bin/env python3
"""End to end through the real Envoy 1.40 (V8) with the built filter, the real sidecar binary
and a local origin serving real images; everything is started and stopped here.

    python3 tests/e2e/envoy_e2e.py [path/to/rendition]   (make test-e2e runs it)

Checks, in order:
  1. first request: the original bytes and `x-rendition: miss`;
  2. once the sidecar has produced the variants: desktop+AVIF gets AVIF at full width, a
     WebP-only mobile client a WebP at 480 px, `Accept: image/jpeg` a JPEG, Save-Data a smaller
     file than without, `Sec-CH-DPR: 2` the 2x width (960 px);
  3. a client-sent `x-rendition-*` header cannot force a route; `Cache-Control: private`,
     `Set-Cookie` and HTML-as-image responses are never optimized; non-image requests never
     reach the filter (its `entered` counter does not move);
  4. the sidecar killed (SIGKILL) mid-run: every request still 200 with the original bytes;
     restarted on the same store: the index recovers and hits resume; restarted on an empty
     store: a resync, no error, misses until the variants are made again.
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import AVIF_DESKTOP, CHROME, SITE, Checks, Stack, binaries, dimensions, guarded, key_of, wait_for  # noqa: E402

ANDROID = ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/80.0.3987.99 Mobile Safari/537.36")
WEBP_MOBILE = {"Accept": "image/webp,image/apng,image/*,*/*;q=0.8", "User-Agent": ANDROID}
JPEG_ONLY = {"Accept": "image/jpeg", "User-Agent": CHROME}
IMG = "/img/garden.jpg"

check = Checks("envoy_e2e")


def original(path):
    with open(os.path.join(SITE, path.lstrip("/")), "rb") as f:
        return f.read()


def debug(headers):
    return headers.get("x-rendition", "")


def main():
    stack = Stack(*binaries("envoy_e2e"))
    with guarded(check, stack, "envoy_e2e"):
        stack.start()
        run(stack)
    sys.exit(check.summary())


def run(s):
    source = original(IMG)
    print("1. first request")
    status, h, body = s.get(IMG, AVIF_DESKTOP)
    check(status == 200 and body == source, "the original bytes, at once")
    check(debug(h).startswith("miss; mask=0x0a"), f"x-rendition: miss ({debug(h)})")
    check("Accept" in h.get("vary", "") and "Sec-CH-DPR" in h.get("accept-ch", ""), "Vary and Accept-CH on the image")

    print("2. after generation")
    # The notify went out from the filter; wait until the hit is routed.
    wait_for(lambda: debug(s.get(IMG, AVIF_DESKTOP)[1]).startswith("hit"), 180, "the AVIF variant to be indexed")
    status, h, body = s.get(IMG, AVIF_DESKTOP)
    fmt, w, _ = dimensions(body)
    check(status == 200 and h.get("content-type") == "image/avif" and fmt == "avif", f"desktop + AVIF: AVIF ({h.get('content-type')})")
    check(w == 1600 and len(body) < len(source), f"  at the full 1600 px, {len(body)} < {len(source)} bytes")
    check(debug(h) == "hit; mask=0x0a; variant=0x0a; step=exact", f"  {debug(h)}")
    check("x-rendition-variant" not in h, "  the sidecar's internal header is not sent on")
    # Proactive variants land one by one; wait for the whole matrix of this source.
    wait_for(lambda: s.get_sidecar("/stats")[0] == 200 and b'"images_processed":1' in s.get_sidecar("/stats")[2].replace(b" ", b""),
             180, "the matrix to be generated")
    wait_for(s.index_caught_up, 30, "the index to catch up")

    status, h, body = s.get(IMG, WEBP_MOBILE)
    fmt, w, _ = dimensions(body)
    check(fmt == "webp" and h.get("content-type") == "image/webp", f"WebP-only mobile: WebP ({debug(h)})")
    check(w == 480, f"  at the mobile width 480 px (got {w})")
    mobile_bytes = len(body)

    status, h, body = s.get(IMG, JPEG_ONLY)
    fmt, w, _ = dimensions(body)
    check(status == 200 and fmt == "jpeg" and h.get("content-type") == "image/jpeg", f"Accept: image/jpeg: a JPEG ({debug(h)})")
    check(not debug(h).startswith("hit") or "variant=0x08" in debug(h) or "variant=0x00" in debug(h), "  never a format it did not accept")

    status, h, body = s.get(IMG, dict(WEBP_MOBILE, **{"Save-Data": "on"}))
    check(dimensions(body)[0] == "webp" and len(body) < mobile_bytes,
          f"Save-Data: smaller than without ({len(body)} < {mobile_bytes}; {debug(h)})")

    status, h, body = s.get(IMG, dict(WEBP_MOBILE, **{"Sec-CH-DPR": "2"}))
    fmt, w, _ = dimensions(body)
    check(fmt == "webp" and w == 960, f"Sec-CH-DPR: 2: the 2x mobile width 960 px (got {w}; {debug(h)})")

    print("3. what must never happen")
    key = key_of(s.host(), IMG)
    status, h, body = s.get(IMG, {"Accept": "*/*", "User-Agent": "curl/8", "x-rendition-variant": f"{key}/a"})
    check(status == 200 and dimensions(body)[0] != "avif" and h.get("content-type") == "image/jpeg",
          f"a forged x-rendition-variant never routes (client got {h.get('content-type')})")
    status, h, body = s.get("/index.html", {"x-rendition-variant": f"{key}/a"})
    check(status == 200 and body.startswith(b"<!doctype html>"), "  not even on a non-image path")
    for path in ("/private/garden.jpg", "/cookie/garden.jpg", "/page.jpg"):
        for _ in range(2):
            status, h, body = s.get(path, WEBP_MOBILE)
        check(status == 200 and h.get("content-type") != "image/webp", f"{path}: served as is ({debug(h)})")
    time.sleep(1.0)  # a notify would have been sent within the filter's 25 ms tick
    sidecar_fetches = [p for p, ua in s.origin.seen if ua.startswith("rendition")]
    check(not any(p.startswith(("/private/", "/cookie/")) for p in sidecar_fetches),
          f"private and Set-Cookie responses are never sent to the sidecar (it fetched {sidecar_fetches})")
    # HTML under an image Content-Type only shows in the body: the sidecar sniffs it once,
    # refuses it, and the filter never asks again. The refusal reaches the filter's index
    # through the feed, which can take longer than two back-to-back requests: asked until it has.
    deadline = time.time() + 30
    while True:
        h = s.get("/page.jpg", WEBP_MOBILE)[1]
        if "reason=refused" in debug(h) or time.time() > deadline:
            break
        time.sleep(0.1)
    time.sleep(0.5)
    sidecar_fetches = [p for p, ua in s.origin.seen if ua.startswith("rendition")]
    check(sidecar_fetches.count("/page.jpg") == 1 and "reason=refused" in debug(h),
          f"HTML served as image/jpeg: fetched once, refused, not asked again ({debug(h)})")

    # The filter is scoped to the image routes (envoy/envoy.yaml): other requests never enter
    # the VM, so its `entered` counter (every request it runs on) does not move for them. An
    # image request afterwards shows the counter is live.
    entered = lambda: s.stat("wasmcustom.rendition.entered") or 0  # noqa: E731
    before = entered()
    for path in ("/index.html", "/", "/img/", "/img/garden.jpg.html", "/img/garden"):
        for _ in range(5):
            s.get(path, AVIF_DESKTOP)
    time.sleep(0.5)  # counters reach Envoy on the filter's 25 ms tick
    after_pages = entered()
    s.get(IMG, AVIF_DESKTOP)
    wait_for(lambda: entered() > after_pages, 5, "the image request to be counted")
    check(before > 0 and after_pages == before and entered() == before + 1,
          f"non-image requests never reach the filter (entered {before} -> {after_pages} after 25 pages, "
          f"{entered()} after one image)")

    print("4. the sidecar killed mid-run")
    s.kill_sidecar(signal.SIGKILL)
    ok = 0
    clients = [AVIF_DESKTOP, WEBP_MOBILE, JPEG_ONLY, dict(WEBP_MOBILE, **{"Save-Data": "on"})]
    for i in range(40):
        status, h, body = s.get(IMG, clients[i % len(clients)])
        ok += status == 200 and body == source
    check(ok == 40, f"40 requests with the sidecar dead: all 200 with the original ({ok}/40)")
    failovers = s.stat("wasmcustom.rendition.hit_failovers") or 0
    down = s.stat("wasmcustom.rendition.sidecar_unusable") or 0
    check(failovers + down > 0, f"  counted: {failovers} failovers, {down} while marked down")
    s.start_sidecar()
    check.until(lambda: debug(s.get(IMG, AVIF_DESKTOP)[1]).startswith("hit"), 30, "restarted on the same store: hits resume")
    # Hung (SIGSTOP) while Envoy still routes hits to it: Envoy's per-try timeout and the
    # sidecar's failing health check send the requests to the origin.
    s.kill_sidecar(signal.SIGSTOP)
    ok, slowest, wrong = 0, 0.0, []
    for i in range(12):
        t = time.time()
        status, h, body = s.get(IMG, AVIF_DESKTOP)
        slowest = max(slowest, time.time() - t)
        if status == 200 and body == source:
            ok += 1
        else:  # what it was instead, for the failure message
            wrong.append((i, status, debug(h), h.get("x-envoy-upstream-service-time"), len(body),
                          round(time.time() - t, 2)))
        time.sleep(0.25)
    failovers = s.stat("wasmcustom.rendition.hit_failovers") or 0
    check(ok == 12 and failovers > 0,
          f"sidecar hung: 12/12 answered with the original ({ok}), {failovers} via Envoy's retry; slowest {slowest:.2f}s"
          + (f"; not the original: {wrong}" if wrong else ""))
    s.kill_sidecar(signal.SIGCONT)
    check.until(lambda: debug(s.get(IMG, AVIF_DESKTOP)[1]).startswith("hit"), 30, "  resumed: hits again")
    # An empty store: the index resyncs (new store id); the stale records must not be served.
    s.kill_sidecar(signal.SIGKILL)
    resyncs = s.stat("wasmcustom.rendition.index.resyncs") or 0
    s.start_sidecar(os.path.join(s.tmp, "data-2"))
    wait_for(lambda: (s.stat("wasmcustom.rendition.index.resyncs") or 0) > resyncs, 30, "a resync")
    status, h, body = s.get(IMG, AVIF_DESKTOP)
    check(status == 200 and body == source and debug(h).startswith("miss"),
          f"restarted on an empty store: resync, the original, no error ({debug(h)})")
    check.until(lambda: debug(s.get(IMG, AVIF_DESKTOP)[1]).startswith("hit"), 180, "  and the variants come back")
    status, _, metrics = s.admin("/stats?filter=rendition")
    print("  " + " ".join(l.replace("wasmcustom.rendition.", "") for l in metrics.decode().splitlines()
                          if l.startswith("wasmcustom.") and not l.endswith(": 0")))


if __name__ == "__main__":
    main()
