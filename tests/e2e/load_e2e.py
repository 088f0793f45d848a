#!/usr/bin/env python3
"""Load, on loopback, bounded, through the real Envoy + filter and the real sidecar.

    python3 tests/e2e/load_e2e.py [path/to/rendition]   (make test-e2e runs it)
    RENDITION_LOAD_SECONDS=60 RENDITION_STORM_URLS=5000 (the defaults)

  1. Hit load: wrk keeps 16 connections busy for RENDITION_LOAD_SECONDS on a URL that is a hit
     (served by the sidecar through Envoy). Every response must be a 2xx, no socket error, and
     the filter must have counted a hit for each request.
  2. Miss storm: RENDITION_STORM_URLS distinct image URLs, 16 at a time, none seen before.
     Every response is 200 with the original bytes; the sidecar's work queue never exceeds its
     capacity and its peak RSS stays under 1 GiB; notifies that do not fit are dropped and
     counted (the filter's per-worker queue, the sidecar's 429s); then, as clients keep asking,
     every URL's variant is produced and served (bounded: 15 minutes).
Throughput figures are printed, never asserted (the machine is shared and noisy).
"""

import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(__file__))
from harness import AVIF_DESKTOP as ACCEPT, ROOT, STORM, Checks, Stack, guarded, wait_for, settle  # noqa: E402

ENVOY = os.path.join(ROOT, ".tools/bin/envoy")
SECONDS = int(os.environ.get("RENDITION_LOAD_SECONDS", "60"))
URLS = int(os.environ.get("RENDITION_STORM_URLS", "5000"))
RSS_LIMIT = 1 << 30
# The sidecar's queue_depth counts queued and running sources: its default queue.capacity
# (1,024) plus queue.workers (one per core) being processed.
QUEUE_BOUND = 1024 + (os.cpu_count() or 1)

check = Checks("load_e2e")


def filter_stat(stack, name):
    return stack.stat(f"wasmcustom.rendition.{name}") or 0


def hit_load(rendition):
    print(f"load: {SECONDS} s of hits with wrk, 16 connections")
    stack = Stack(rendition, ENVOY).start()
    with guarded(check, stack, "hit load"):
        url = "/img/rocket.jpg"
        stack.get(url, ACCEPT)
        wait_for(lambda: stack.is_hit(url), 120, "a hit")
        hits0 = filter_stat(stack, "hits")
        failovers0 = filter_stat(stack, "hit_failovers")
        args = ["wrk", "-t2", "-c16", f"-d{SECONDS}s", "--latency", "--timeout", "10s"]
        for k, v in ACCEPT.items():
            args += ["-H", f"{k}: {v}"]
        out = subprocess.run(args + [f"http://127.0.0.1:{stack.envoy_port}{url}"], capture_output=True,
                             text=True, timeout=SECONDS + 60, check=False).stdout
        total = int(re.search(r"(\d+) requests in", out).group(1))
        non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
        sock = re.search(r"Socket errors: (.*)", out)
        rps = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
        p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)
        p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
        # the filter flushes its counters every 25 ms: a loaded machine may take longer
        settle(lambda: filter_stat(stack, "hits") - hits0 >= total, 15)
        hits = filter_stat(stack, "hits") - hits0
        failovers = filter_stat(stack, "hit_failovers") - failovers0
        check(total > 0 and non2xx == 0 and sock is None,
              f"{total} requests in {SECONDS} s ({rps}/s, p50 {p50}, p99 {p99}): 0 errors"
              f"{'' if sock is None else ', socket errors: ' + sock.group(1)}{', non-2xx: ' + str(non2xx) if non2xx else ''}")
        check(hits >= total and failovers == 0,
              f"every one a hit served by the sidecar ({hits} hits counted, {failovers} failovers)")
        check(stack.sidecar.poll() is None, f"sidecar peak RSS {stack.peak_rss() >> 20} MiB")


def miss_storm(rendition):
    print(f"load: a miss storm of {URLS} distinct image URLs")
    stack = Stack(rendition, ENVOY, proactive=False).start()
    watching = threading.Event()
    depth = {"max": 0}

    def watch():
        while not watching.is_set():
            depth["max"] = max(depth["max"], stack.stats().get("queue_depth", 0))
            time.sleep(0.05)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with guarded(check, stack, "miss storm", before_stop=watching.set):
        urls = [f"/storm/{i:05d}.jpg" for i in range(URLS)]

        def fetch(url):
            status, headers, body = stack.get(url, ACCEPT)
            return status, headers.get("x-rendition", ""), body

        t = time.time()
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(fetch, urls))
        took = time.time() - t
        good = sum(s == 200 and b == STORM for s, _, b in results)
        check(good == URLS, f"{good}/{URLS} answered 200 with the original bytes in {took:.0f} s "
                            f"({URLS / took:.0f}/s)")
        # notifies still in a worker's outbox are neither sent nor dropped yet
        settle(lambda: filter_stat(stack, "notifies_sent") + filter_stat(stack, "notifies_dropped") >= URLS, 15)
        sent, dropped = filter_stat(stack, "notifies_sent"), filter_stat(stack, "notifies_dropped")
        failed = filter_stat(stack, "notifies_failed")
        s = stack.stats()
        print(f"       filter: {sent} notifies sent, {dropped} dropped (per-worker queue full), {failed} failed; "
              f"sidecar: {s.get('notifications_received')} received, {s.get('queue_dropped')} dropped (429)")
        check(sent + dropped >= URLS, f"every miss notified or counted as dropped ({sent} + {dropped})")
        # Clients keep coming: each miss is notified again (at most every 10 s per URL).
        t = time.time()
        remaining = urls
        while remaining and time.time() - t < 900:
            with ThreadPoolExecutor(16) as pool:
                again = list(pool.map(fetch, remaining))
            bad = [u for u, (st, _, b) in zip(remaining, again) if st != 200 or not b]
            if bad:
                check(False, f"{len(bad)} requests failed during the drain: {bad[:3]}")
                break
            remaining = [u for u, (_, x, _) in zip(remaining, again) if not x.startswith("hit")]
            if remaining:
                time.sleep(2)
        s = stack.stats()
        check(not remaining, f"every URL's variant produced and served within {time.time() - t:.0f} s "
                             f"({URLS - len(remaining)}/{URLS} hits; sidecar processed {s.get('images_processed')})")
        watching.set()
        watcher.join(2)
        check(depth["max"] <= QUEUE_BOUND, f"the sidecar's queue stayed bounded (max depth {depth['max']}: "
                                          f"queued + running, bound {QUEUE_BOUND})")
        rss = stack.peak_rss()
        check(stack.sidecar.poll() is None and rss < RSS_LIMIT,
              f"the sidecar stayed up, peak RSS {rss >> 20} MiB (limit {RSS_LIMIT >> 20} MiB)")


def main():
    rendition = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/debug/rendition")
    only = os.environ.get("RENDITION_LOAD", "hit,storm").split(",")
    if "hit" in only:
        hit_load(rendition)
    if "storm" in only:
        miss_storm(rendition)
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
