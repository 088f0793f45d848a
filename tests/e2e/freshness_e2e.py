#!/usr/bin/env python3
"""The origin's caching contract end to end, through the real Envoy 1.40 + filter, the real
`rendition serve` binary and a local origin that changes its images; everything is started and
stopped here, on loopback.

    python3 tests/e2e/freshness_e2e.py [path/to/rendition]

Checks, in order:
  1. an image replaced at the origin under the same URL: within its max-age the old variant;
     after it, one more old response (the stale hit that starts the revalidation), then the new
     image's variant (told apart by its width, not by a status); one conditional request.
  2. a stale period: hits go on at full speed, the origin sees one conditional request per
     stale period (304s), and the sidecar decodes nothing; the variant carries the origin's
     Cache-Control and an Age; latency of stale hits against fresh ones (reported).
  3. 410 at the origin after the variants exist: purged, the client then gets the 410.
  4. `Cache-Control: no-transform`, `Vary: Accept`, `Vary: Cookie`: never optimized, the
     original passes untouched, each counted by reason; `Vary: Accept-Encoding` is optimized.
  5. an https origin whose certificate chains to a CA the sidecar trusts through
     `--origin-ca-file`: optimized; the same origin without that CA: refused, with the reason.
  6. a cache-busting flood of refused URLs: the records (and the filter's index) return to
     their bound once `records.empty_ttl_secs` has passed.
"""

import concurrent.futures
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import AVIF_DESKTOP, SITE, Checks, Stack, binaries, dimensions, guarded, wait_for, settle  # noqa: E402

check = Checks("freshness_e2e")


def read(name):
    with open(os.path.join(SITE, "img", name), "rb") as f:
        return f.read()


ROCKET, GARDEN = read("rocket.jpg"), read("garden.jpg")  # 640 and 1600 px wide


class Versions:
    """Origin hook: /fresh/<name> answers what `set` last said, honouring If-None-Match (304)
    and counting the sidecar's conditional requests; /nt/ and /vary/<kind>/ serve the rocket
    photo with `no-transform` or a `Vary`."""

    def __init__(self):
        self.answers = {}
        self.conditional = {}

    def set(self, name, body, etag, cache_control, status=200):
        self.answers[name] = (status, body, etag, cache_control)

    def __call__(self, h, method, path):
        p = path.split("?")[0]
        image = {"Content-Type": "image/jpeg"}
        if p.startswith("/nt/"):
            return 200, dict(image, **{"Cache-Control": "public, max-age=600, no-transform"}), ROCKET
        if p.startswith("/vary/"):
            vary = {"accept": "Accept", "cookie": "Cookie", "ae": "Accept-Encoding"}[p.split("/")[2]]
            return 200, dict(image, **{"Cache-Control": "public, max-age=600", "Vary": vary}), ROCKET
        if not p.startswith("/fresh/"):
            return None
        name = p[len("/fresh/"):]
        if name not in self.answers:
            return 404, {}, b""
        status, body, etag, cc = self.answers[name]
        inm = h.headers.get("If-None-Match")
        if inm is not None:
            self.conditional[name] = self.conditional.get(name, 0) + 1
        headers = dict(image, **{"Cache-Control": cc, "ETag": etag})
        if status == 200 and inm == etag:
            return 304, {"Cache-Control": cc, "ETag": etag}, b""
        return status, headers if status == 200 else {}, body if status == 200 else b""


def debug(h):
    return h.get("x-rendition", "")


def width(body):
    return dimensions(body)[1]


OUTCOMES = ("revalidations_not_modified", "revalidations_changed", "revalidations_gone",
            "revalidations_refused", "revalidation_errors", "revalidations_unknown")


def revalidations_settled(st):
    """Every conditional request sent has an outcome counted (a stale hit's revalidation runs
    in the background, after the hit was answered)."""
    return sum(st.get(k, 0) for k in OUTCOMES) >= st.get("revalidations", 0)


def idle(s):
    """The sidecar has nothing queued or revalidating, and the index caught up."""
    time.sleep(0.3)
    # Revalidations first: one that finds a new original queues its job before it is counted.
    wait_for(lambda: revalidations_settled(s.stats()), 30, "the revalidations to finish")
    wait_for(lambda: s.stats().get("queue_depth") == 0, 120, "the queue to drain")
    wait_for(s.index_caught_up, 30, "the index")


def main():
    rendition, envoy = binaries("freshness_e2e")
    versions = Versions()
    s = Stack(rendition, envoy, proactive=False, sidecar_args=["--records-empty-ttl-secs", "10"])
    with guarded(check, s, "freshness_e2e"):
        s.start()
        s.origin.hooks.append(versions)
        replaced_image(s, versions)
        stale_periods(s, versions)
        gone(s, versions)
        refusals(s)
        flood(s)
    for trusted in (True, False):
        t = Stack(rendition, envoy, proactive=False, https=True)
        if not trusted:
            t.trust_ca = False
        with guarded(check, t, f"https origin (CA trusted: {trusted})"):
            t.start()
            https_origin(t, trusted)
    sys.exit(check.summary())


def replaced_image(s, v):
    print("1. an image replaced under the same URL")
    v.set("a.jpg", ROCKET, '"r1"', "public, max-age=8")
    status, h, body = s.get("/fresh/a.jpg", AVIF_DESKTOP)
    check(status == 200 and body == ROCKET and debug(h).startswith("miss"), "first request: the original, a miss")
    wait_for(lambda: s.is_hit("/fresh/a.jpg"), 120, "the variant")
    status, h, body = s.get("/fresh/a.jpg", AVIF_DESKTOP)
    check(dimensions(body)[:2] == ("avif", 640), f"the variant: AVIF 640 px ({dimensions(body)})")
    check("max-age=8" in h.get("cache-control", ""), f"  carries the origin's Cache-Control ({h.get('cache-control')})")
    age = int(h.get("age", "-1"))
    check(0 <= age <= 8, f"  and an Age ({age} s)")
    # (A long lifetime for the new one: its own staleness would be another revalidation.)
    v.set("a.jpg", GARDEN, '"g1"', "public, max-age=600")
    status, h, body = s.get("/fresh/a.jpg", AVIF_DESKTOP)
    age = int(h.get("age", "99"))
    if age < 7:
        check(width(body) == 640 and v.conditional.get("a.jpg", 0) == 0,
              f"replaced at the origin, within max-age (Age {age}): still the old variant, the origin not asked")
    else:
        print(f"  info  the variant was already {age} s old: the within-max-age check is skipped")
    time.sleep(max(0, 8 - age) + 0.5)
    old_after_expiry, new = 0, None
    for _ in range(10):
        status, h, body = s.get("/fresh/a.jpg", AVIF_DESKTOP)
        if width(body) == 1600:
            new = (status, h, body)
            break
        old_after_expiry += 1
        idle(s)
    check(new is not None and dimensions(new[2])[0] == "avif",
          f"after max-age: the new image's variant (AVIF {dimensions(new[2]) if new else None})")
    check(old_after_expiry <= 1, f"  after at most one more old response ({old_after_expiry})")
    check(v.conditional.get("a.jpg", 0) == 1, f"  the origin saw one conditional request ({v.conditional.get('a.jpg', 0)})")
    st = s.stats()
    check(st.get("revalidations_changed") == 1, f"  counted: revalidations_changed {st.get('revalidations_changed')}")


def stale_periods(s, v):
    print("2. stale periods: one conditional request each, nothing decoded, no added latency")
    v.set("b.jpg", ROCKET, '"b1"', "public, max-age=3")
    v.set("fresh.jpg", ROCKET, '"f1"', "public, max-age=3600")
    v.set("stale.jpg", ROCKET, '"s1"', "public, max-age=0")
    for name in ("b.jpg", "fresh.jpg", "stale.jpg"):
        s.get(f"/fresh/{name}", AVIF_DESKTOP)
    for name in ("b.jpg", "fresh.jpg", "stale.jpg"):
        wait_for(lambda n=name: s.is_hit(f"/fresh/{n}"), 120, f"the variant of {name}")
    idle(s)
    before = s.stats()
    conditional_before = v.conditional.get("b.jpg", 0)
    started, hits, requests = time.monotonic(), 0, 0
    while time.monotonic() - started < 10.0:
        status, h, body = s.get("/fresh/b.jpg", AVIF_DESKTOP)
        requests += 1
        hits += status == 200 and debug(h).startswith("hit") and width(body) == 640
    seconds = time.monotonic() - started
    wait_for(lambda: revalidations_settled(s.stats()), 30, "the last revalidation to finish")
    after = s.stats()
    conditional = v.conditional.get("b.jpg", 0) - conditional_before
    # max-age=3, but Date has whole seconds: a renewed lifetime lasts 2 to 3 s.
    most = int(seconds / 2.0) + 1
    check(hits == requests and hits > 50, f"{hits} of {requests} requests in {seconds:.1f} s were hits with the variant")
    check(2 <= conditional <= most,
          f"  {conditional} conditional requests at the origin in {seconds:.1f} s of max-age=3 (at most one per stale period: {most})")
    check(after["images_processed"] == before["images_processed"],
          f"  nothing decoded (images_processed {before['images_processed']} -> {after['images_processed']})")
    renewed = after["revalidations_not_modified"] - before["revalidations_not_modified"]
    check(renewed == conditional, f"  each answered 304 and renewed the lifetime ({renewed})")
    # Latency: hits on a fresh source against hits on a source stale at every hit (each may
    # start a background revalidation, which the client never waits for).
    lat = {}
    for name in ("fresh.jpg", "stale.jpg", "fresh.jpg", "stale.jpg"):
        samples = lat.setdefault(name, [])
        for _ in range(100):
            t0 = time.perf_counter()
            s.get(f"/fresh/{name}", AVIF_DESKTOP)
            samples.append(time.perf_counter() - t0)
    fresh, stale = statistics.median(lat["fresh.jpg"]), statistics.median(lat["stale.jpg"])
    print(f"  info  median latency through Envoy: fresh hit {fresh * 1e3:.2f} ms, stale hit "
          f"{stale * 1e3:.2f} ms (x{stale / fresh:.2f}; 200 each, interleaved)")
    st = s.stats()
    check(st.get("stale_hits", 0) >= 200, f"  the stale hits were served stale ({st.get('stale_hits')})")


def gone(s, v):
    print("3. 410 at the origin after the variants exist")
    v.set("g.jpg", ROCKET, '"x1"', "public, max-age=1")
    s.get("/fresh/g.jpg", AVIF_DESKTOP)
    wait_for(lambda: s.is_hit("/fresh/g.jpg"), 120, "the variant")
    # Counted before the origin changes: with max-age=1 the last poll above may already have
    # started a background revalidation, which then meets the 410 itself.
    before = s.stats().get("revalidations_gone", 0)
    v.set("g.jpg", b"", '"x1"', "", status=410)
    time.sleep(1.2)
    s.get("/fresh/g.jpg", AVIF_DESKTOP)  # a stale hit finds out, unless that revalidation did
    try:
        wait_for(lambda: s.stats().get("revalidations_gone", 0) > before, 30, "the purge")
    except TimeoutError:
        st = s.stats()
        raise TimeoutError("waited 30s for the purge; revalidation counters: " + ", ".join(
            f"{k} {n}" for k, n in sorted(st.items()) if k.startswith("revalidation"))) from None
    idle(s)
    status, h, _ = s.get("/fresh/g.jpg", AVIF_DESKTOP)
    check(status == 410 and debug(h).startswith("miss"), f"purged: the client gets the origin's 410 ({status}, {debug(h)})")


def refusals(s):
    print("4. no-transform and Vary")
    for path in ("/nt/rocket.jpg", "/vary/accept/rocket.jpg", "/vary/cookie/rocket.jpg", "/vary/ae/rocket.jpg"):
        status, h, body = s.get(path, AVIF_DESKTOP)
        check(status == 200 and body == ROCKET, f"{path}: the original bytes")
    status, h, _ = s.get("/nt/rocket.jpg", AVIF_DESKTOP)
    check("vary" not in h and "accept-ch" not in h, "  no-transform: headers untouched too (no Vary, no Accept-CH added)")
    check.until(lambda: s.is_hit("/vary/ae/rocket.jpg"), 120, "Vary: Accept-Encoding is optimized")
    idle(s)
    for path in ("/nt/rocket.jpg", "/vary/accept/rocket.jpg", "/vary/cookie/rocket.jpg"):
        _, h, body = s.get(path, AVIF_DESKTOP)
        check(body == ROCKET and debug(h).startswith("miss"), f"{path}: still the original ({debug(h)})")
    counted = lambda: ((s.stat("wasmcustom.rendition.not_optimized.no_transform") or 0,  # noqa: E731
                        s.stat("wasmcustom.rendition.not_optimized.vary") or 0))
    settle(lambda: counted()[0] >= 3 and counted()[1] >= 4, 10)
    nt, vary = counted()
    check(nt >= 3 and vary >= 4, f"  counted by the filter: not_optimized.no_transform {nt}, .vary {vary}")
    fetched = {r[2].split("?")[0] for r in s.origin.requests
               if r[3].get("user-agent", "").startswith("rendition/")}
    refused = {"/nt/rocket.jpg", "/vary/accept/rocket.jpg", "/vary/cookie/rocket.jpg"}
    check(not (fetched & refused) and "/vary/ae/rocket.jpg" in fetched,
          "  the sidecar never fetched the refused ones, only Vary: Accept-Encoding")


def flood(s):
    print("5. a flood of refused URLs: the records return to their bound")
    idle(s)
    bound = s.stats()["store_sources"]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: s.get(f"/page.jpg?cb={i}", AVIF_DESKTOP), range(300)))
    idle(s)
    grown = s.stats()["store_sources"]
    _, h, _ = s.get("/page.jpg?cb=7", AVIF_DESKTOP)
    check(grown >= bound + 200 and "reason=refused" in debug(h),
          f"{grown - bound} refused records after the flood; the filter knows ({debug(h)})")
    wait_for(lambda: s.stats()["store_sources"] <= bound, 60, "the records to expire")
    st = s.stats()
    check(st["store_sources"] <= bound and st["records_deleted"] >= 200,
          f"  back to {st['store_sources']} records (bound {bound}) after records.empty_ttl_secs; "
          f"{st['records_deleted']} deleted")
    idle(s)
    _, h, _ = s.get("/page.jpg?cb=8", AVIF_DESKTOP)
    check("reason=no_variant" in debug(h), f"  the feed told the filter: the URL is asked about again ({debug(h)})")


def https_origin(s, trusted):
    print(f"6. an https origin, its CA {'trusted through --origin-ca-file' if trusted else 'not trusted'}")
    status, h, body = s.get("/img/rocket.jpg?tls", AVIF_DESKTOP)
    check(status == 200 and body == ROCKET, "the original at once (Envoy proxies it over http)")
    if trusted:
        wait_for(lambda: s.is_hit("/img/rocket.jpg?tls"), 120, "the variant")
        _, h, body = s.get("/img/rocket.jpg?tls", AVIF_DESKTOP)
        check(dimensions(body)[0] == "avif", f"optimized from the https origin ({debug(h)})")
        fetched = [r for r in s.origin.requests if r[3].get("user-agent", "").startswith("rendition/")]
        check(len(fetched) >= 1, f"  the sidecar fetched it ({len(fetched)} requests, over TLS: it has only the https base URL)")
    else:
        wait_for(lambda: s.stats().get("refused_tls") == 1, 60, "the TLS refusal")
        settle(lambda: "reason=refused" in debug(s.get("/img/rocket.jpg?tls", AVIF_DESKTOP)[1]), 30)
        _, h, body = s.get("/img/rocket.jpg?tls", AVIF_DESKTOP)
        check(body == ROCKET and "reason=refused" in debug(h), f"refused: the original, and the filter knows ({debug(h)})")
        line = next((l for l in s.sidecar_log().splitlines() if "fetch failed" in l), "")
        check("certificate" in line.lower() or "unknown" in line.lower(), f"  the reason names the certificate: {line.strip()[-140:]}")
        st = s.stats()
        check(st.get("refused_tls") == 1, f"  counted: refused_tls {st.get('refused_tls')}")
        check(st.get("images_processed") == 0, "  nothing was decoded")


if __name__ == "__main__":
    main()
