#!/usr/bin/env python3
"""Faults, end to end through the real Envoy + filter, the real sidecar and a local origin.

    python3 tests/e2e/faults_e2e.py [path/to/rendition]   (make test-e2e runs it)

  1. SIGKILL during writes, 20 times in a row: while a client keeps loading images through
     Envoy, the sidecar is given new sources to write and killed mid-write, then restarted on
     the same store. No request fails, every body is the original or a complete image of a type
     the client accepts with the source's aspect ratio (never torn, never another URL's); after
     the last restart the index catches up and every stored variant passes its checksum.
  2. SIGSTOP: once Envoy's health check marks the hung sidecar down, requests go straight to
     the origin: none is sent to the sidecar and none waits for a timeout.
  3. Disk full (the store on an 8 MiB tmpfs): the sidecar stops storing, counts store errors,
     stays up and keeps serving the variants it has; clients get the originals.
  4. A slow origin (over the sidecar's fetch timeout) and an erroring one: the fetch fails
     with a logged reason, the workers are not held, clients get the origin's own answer.
No check here depends on wall-clock speed: each waits for a state, bounded so the test ends.
"""

import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import AVIF_DESKTOP as ACCEPT, ROOT, SITE, Checks, Stack, dimensions, guarded, wait_for, settle  # noqa: E402

IMAGES = ["garden.jpg", "rocket.jpg", "coffee.png", "logo.png", "screenshot.png"]
ENVOY = os.path.join(ROOT, ".tools/bin/envoy")

check = Checks("faults_e2e")


def original(name):
    with open(os.path.join(SITE, "img", name), "rb") as f:
        return f.read()


ORIGINALS = {n: original(n) for n in IMAGES}
SHAS = {n: hashlib.sha256(b).hexdigest() for n, b in ORIGINALS.items()}
ASPECT = {n: dimensions(b)[1] / dimensions(b)[2] for n, b in ORIGINALS.items()}


def complete(body):
    """True when the bytes are a whole image file: every container's own length or end
    marker agrees with the byte count (a torn write cannot pass)."""
    if body[:3] == b"\xff\xd8\xff":
        return body[-2:] == b"\xff\xd9"
    if body[:8] == b"\x89PNG\r\n\x1a\n":
        return body[-12:-4] == b"\x00\x00\x00\x00IEND"
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return int.from_bytes(body[4:8], "little") + 8 == len(body)
    if body[4:8] == b"ftyp":  # ISOBMFF (AVIF): top-level boxes tile the file exactly
        i = 0
        while i < len(body):
            size = int.from_bytes(body[i:i + 4], "big")
            if size < 8:
                return False
            i += size
        return i == len(body)
    return False


def judge(name, status, headers, body):
    """None when the response is acceptable, else why not."""
    if status != 200:
        return f"status {status}"
    if hashlib.sha256(body).hexdigest() == SHAS[name]:
        return None
    if not complete(body):
        return f"torn or unknown body ({len(body)} bytes, {body[:12]!r})"
    ctype = headers.get("content-type", "")
    fmt, w, h = dimensions(body)
    if fmt not in ctype or fmt not in ("avif", "webp", "jpeg", "png"):
        return f"content-type {ctype} for a {fmt} body"
    if abs(w / h - ASPECT[name]) > 0.02 * ASPECT[name]:
        return f"{w}x{h} is not {name}'s aspect ratio (another URL's variant?)"
    return None


class Client(threading.Thread):
    """Loads the images through Envoy until stopped, judging every response."""

    def __init__(self, stack, urls):
        super().__init__(daemon=True)
        self.stack, self.urls, self.stop = stack, urls, threading.Event()
        self.requests, self.variants, self.bad = 0, 0, []

    def run(self):
        i = 0
        while not self.stop.is_set():
            url, name = self.urls[i % len(self.urls)]
            i += 1
            try:
                status, headers, body = self.stack.get(url, ACCEPT)
            except OSError as e:
                self.bad.append(f"{url}: {e}")
                continue
            self.requests += 1
            why = judge(name, status, headers, body)
            if why:
                self.bad.append(f"{url}: {why}")
            elif hashlib.sha256(body).hexdigest() != SHAS[name]:
                self.variants += 1


def sigkill_during_writes(rendition):
    print("faults: SIGKILL during writes, 20 times")
    stack = Stack(rendition, ENVOY).start()
    rng = random.Random(7)
    with guarded(check, stack, "sigkill"):
        # Stored variants to hit while the sidecar dies: one page, optimized first.
        base = [(f"/img/{n}", n) for n in IMAGES]
        for url, _ in base:
            stack.get(url, ACCEPT)
        wait_for(lambda: stack.stats().get("queue_depth") == 0
                 and stack.stats().get("images_processed", 0) >= len(IMAGES), 300, "the page")
        wait_for(stack.index_caught_up, 30, "the index")
        client = Client(stack, base)
        client.start()
        kills_mid_write = 0
        for k in range(20):
            # New sources: the sidecar fetches, encodes and writes their variants.
            for n in IMAGES[:3]:
                stack.get(f"/img/{n}?round={k}", ACCEPT)
            before = stack.stats().get("variants_written", 0)
            wait_for(lambda: stack.stats().get("variants_written", 0) > before, 60, "a write")
            time.sleep(rng.uniform(0.0, 0.4))
            kills_mid_write += stack.stats().get("queue_depth", 0) > 0
            stack.kill_sidecar(signal.SIGKILL)
            time.sleep(rng.uniform(0.1, 0.5))  # requests meet a dead sidecar
            stack.start_sidecar()
        wait_for(stack.index_caught_up, 30, "the index after the last restart")
        time.sleep(1)
        client.stop.set()
        client.join(10)
        check(kills_mid_write >= 15, f"{kills_mid_write}/20 kills landed with work queued or running")
        check(not client.bad and client.requests > 0,
              f"{client.requests} requests through Envoy during 20 kills: none failed, none torn or wrong "
              f"({client.variants} variants, the rest originals){' ' + str(client.bad[:3]) if client.bad else ''}")
        # Every stored variant of every source, read back through the checksummed serve path.
        status, _, page = stack.get_sidecar("/report?limit=200")
        srcs = page.decode().count("<section class=source")
        imgs = [p.split('"')[0] for p in page.decode().split('<img src="/v/')[1:]]
        served = [stack.get_sidecar("/v/" + p) for p in imgs]
        errors = stack.stats().get("store_errors", -1)
        check(status == 200 and imgs and all(s == 200 and complete(b) for s, _, b in served) and errors == 0,
              f"after the last restart: {len(imgs)} stored variants of {srcs} sources, every one complete "
              f"and checksum-clean (store_errors {errors})")
        # The index follower retries every second; once it reaches the restarted sidecar, hits.
        def all_hits():
            return all(stack.is_hit(u) for u, _ in base)
        settle(all_hits, 30)
        for url, name in base:
            status, headers, body = stack.get(url, ACCEPT)
            check(headers.get("x-rendition", "").startswith("hit") and judge(name, status, headers, body) is None,
                  f"{url}: a hit again ({headers.get('x-rendition')})")
        log = stack.sidecar_log()
        check("panicked" not in log and log.count("rendition sidecar ready") == 21,
              f"21 starts on the same store, no panic ({log.count('rendition sidecar ready')} ready lines)")


def sigstop(rendition):
    print("faults: SIGSTOP, the sidecar hung")
    stack = Stack(rendition, ENVOY).start()
    with guarded(check, stack, "sigstop"):
        url = "/img/rocket.jpg"
        stack.get(url, ACCEPT)
        wait_for(lambda: stack.is_hit(url), 120, "a hit")
        stack.kill_sidecar(signal.SIGSTOP)
        wait_for(lambda: b"failed_active_hc" in stack.admin("/clusters")[2], 30, "the health check to fail")
        sent = stack.stat("cluster.sidecar.upstream_rq_total")
        timeouts = stack.stat("cluster.sidecar.upstream_rq_per_try_timeout") or 0
        results = [stack.get(url, ACCEPT) for _ in range(20)]
        good = sum(s == 200 and b == ORIGINALS["rocket.jpg"] for s, _, b in results)
        check(good == 20, f"20/20 answered with the original while the sidecar is down ({good})")
        check(stack.stat("cluster.sidecar.upstream_rq_total") == sent
              and (stack.stat("cluster.sidecar.upstream_rq_per_try_timeout") or 0) == timeouts,
              "after the health check: no request sent to the hung sidecar, none waited for a timeout")
        stack.kill_sidecar(signal.SIGCONT)
        check.until(lambda: stack.is_hit(url) and stack.stat("cluster.sidecar.upstream_rq_total") > sent,
                    30, "resumed: hits served by the sidecar again")


def disk_full(rendition):
    print("faults: disk full (the store on an 8 MiB tmpfs)")
    probe = Stack(rendition, ENVOY)
    mnt = os.path.join(probe.tmp, "small")
    os.makedirs(mnt)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt],
                      capture_output=True, check=False).returncode != 0:
        check(False, "mount a tmpfs (needs root; CI runs as root)")
        return
    stack = probe
    stack.data_dir = os.path.join(mnt, "data")
    with guarded(check, stack, "disk full"):
        stack.start()
        first = "/img/rocket.jpg"
        stack.get(first, ACCEPT)
        wait_for(lambda: stack.is_hit(first), 120, "a hit")
        stored = stack.get(first, ACCEPT)[2]
        # Take what is left of the disk, then ask for new sources until a store write fails.
        # (Filling it with new sources alone would take hundreds of full matrices: the same
        # image under another URL stores its bytes once, by content hash.)
        with open(os.path.join(mnt, "filler"), "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        k = 0
        while stack.stats().get("store_errors", 0) == 0 and k < 20:
            for n in ("coffee.png", "screenshot.png", "garden.jpg"):
                stack.get(f"/img/{n}?fill={k}", ACCEPT)
            k += 1
            wait_for(lambda: stack.stats().get("queue_depth", 1) == 0, 120, "the queue to drain")
        s = stack.stats()
        check(s.get("store_errors", 0) > 0, f"the disk full: store writes fail after {3 * k} new sources "
              f"(store_errors {s.get('store_errors')}, payload {s.get('store_payload_bytes')} bytes)")
        check(stack.sidecar.poll() is None and stack.get_sidecar("/healthz")[0] in (200, 503),
              f"the sidecar is still up (healthz {stack.get_sidecar('/healthz')[0]})")
        status, headers, body = stack.get(first, ACCEPT)
        check(status == 200 and body == stored and headers.get("x-rendition", "").startswith("hit"),
              "what it has is still served (the same variant as before the disk filled)")
        status, headers, body = stack.get(f"/img/logo.png?full={k}", ACCEPT)
        check(status == 200 and body == ORIGINALS["logo.png"], "a new image: the original, at once")
        log = stack.sidecar_log()
        check("No space left" in log or "space" in log.lower(), "the reason is logged (no space left on device)")
    subprocess.run(["umount", "-l", mnt], check=False)  # after the stack has stopped


def bad_origins(rendition):
    print("faults: a slow origin and an erroring one")
    config = os.path.join(ROOT, ".run", "faults-sidecar.toml")
    os.makedirs(os.path.dirname(config), exist_ok=True)
    with open(config, "w") as f:
        f.write("[origins]\ntimeout_ms = 1000\n")
    stack = Stack(rendition, ENVOY, sidecar_args=["--config", config]).start()
    with guarded(check, stack, "bad origins"):
        stack.origin.slow_seconds = 2.0
        status, _, body = stack.get("/slow/rocket.jpg", ACCEPT)
        check(status == 200 and body == ORIGINALS["rocket.jpg"], "slow origin: the client gets the original")
        # Meanwhile the workers are free: another image is optimized while the slow one fails.
        stack.get("/img/logo.png", ACCEPT)
        wait_for(lambda: stack.stats().get("fetch_errors", 0) >= 1, 30, "the slow fetch to fail")
        check.until(lambda: stack.is_hit("/img/logo.png"), 120,
                    "slow origin: the fetch timed out (fetch_errors), other work went on (logo.png optimized)")
        status, _, _ = stack.get("/error/rocket.jpg", ACCEPT)
        check(status == 503, "erroring origin: the client gets the origin's own 503")
        before = stack.stats().get("fetch_errors", 0)
        status, _, body = stack.get("/flaky/coffee.png", ACCEPT)
        check(status == 200 and body == ORIGINALS["coffee.png"], "origin failing the sidecar only: the original")
        wait_for(lambda: stack.stats().get("fetch_errors", 0) > before, 30, "the flaky fetch to fail")
        status, headers, body = stack.get("/flaky/coffee.png", ACCEPT)
        check(status == 200 and body == ORIGINALS["coffee.png"] and stack.sidecar.poll() is None,
              f"  and again: the original, the sidecar up ({headers.get('x-rendition')})")
        log = stack.sidecar_log()
        check("timed out" in log and "503" in log, "both reasons are logged (timed out, answered 503)")


def main():
    rendition = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/debug/rendition")
    only = os.environ.get("RENDITION_FAULTS", "sigkill,sigstop,disk,origin").split(",")
    for name, fn in (("sigkill", sigkill_during_writes), ("sigstop", sigstop), ("disk", disk_full),
                     ("origin", bad_origins)):
        if name in only:
            fn(rendition)
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
