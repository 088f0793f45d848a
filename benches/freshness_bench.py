#!/usr/bin/env python3
"""What a stale hit costs against a fresh one, side by side in one run (docs/benchmarks.md).

    python3 benches/freshness_bench.py [--seconds 5] [--repeats 5] [path/to/rendition]

The release sidecar is pinned to core 1; the origin (this script's threads) and wrk to core 0.
Two sources of the same photo: `fresh.jpg` (max-age=3600) and `stale.jpg` (max-age=0: every
hit is stale and may start a background revalidation; the origin answers 304). Per repeat,
both are measured back to back (order alternating) on `GET /v/{key}/{slot}`:
  * requests/s at 16 connections and the sidecar's CPU per request (from /proc/PID/stat);
  * median and p99 latency at 1 connection;
  * the origin's conditional requests per stale hit.
Reports medians over the repeats and the stale/fresh ratios.
"""

import argparse
import http.client
import http.server
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))
from harness import ROOT, free_port, key_of, request, wait_for  # noqa: E402

ROCKET = open(os.path.join(ROOT, "examples", "site", "img", "rocket.jpg"), "rb").read()
TICK = os.sysconf("SC_CLK_TCK")


class Origin(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, port):
        self.conditional = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        cc = "public, max-age=0" if self.path.startswith("/stale") else "public, max-age=3600"
        etag = '"v1"'
        if self.headers.get("If-None-Match") == etag:
            with self.server.lock:
                self.server.conditional += 1
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Cache-Control", cc)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        for k, v in (("Content-Type", "image/jpeg"), ("ETag", etag), ("Cache-Control", cc),
                     ("Content-Length", str(len(ROCKET)))):
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(ROCKET)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wrk(url, connections, seconds):
    out = subprocess.run(["taskset", "-c", "0", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
                          "--latency", url], capture_output=True, text=True, check=True).stdout
    n = int(re.search(r"(\d+) requests in", out)[1])
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    def ms(label):
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        return float(m[1]) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m[2]]
    return n, rps, ms("50"), ms("99")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("rendition", nargs="?", default=os.path.join(ROOT, "target", "release", "rendition"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="rendition-freshness-bench-")
    origin_port, sidecar_port = free_port(), free_port()
    origin = Origin(origin_port)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    os.sched_setaffinity(0, {0})
    sidecar = subprocess.Popen(
        ["taskset", "-c", "1", a.rendition, "serve", "--listen", f"127.0.0.1:{sidecar_port}",
         "--data-dir", os.path.join(tmp, "data"), "--origin", f"http://127.0.0.1:{origin_port}"],
        stdout=open(os.path.join(tmp, "sidecar.log"), "wb"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: request(sidecar_port, "/healthz")[0] == 200, 30, "the sidecar")
        keys = {}
        for name in ("fresh", "stale"):
            body = json.dumps({"host": "bench.example", "path": f"/{name}.jpg", "mask": 0x09})
            c = http.client.HTTPConnection("127.0.0.1", sidecar_port)
            c.request("POST", "/notify", body, {"Content-Type": "application/json"})
            c.getresponse().read()
            keys[name] = key_of("bench.example", f"/{name}.jpg")
        for name, key in keys.items():
            wait_for(lambda k=key: request(sidecar_port, f"/v/{k}/9")[0] == 200, 120, f"{name}'s variant")
        rows = {n: [] for n in keys}
        for r in range(a.repeats):
            order = list(keys) if r % 2 == 0 else list(reversed(keys))
            for name in order:
                url = f"http://127.0.0.1:{sidecar_port}/v/{keys[name]}/9"
                before_cond = origin.conditional
                c0 = cpu_seconds(sidecar.pid)
                n, rps, _, _ = wrk(url, 16, a.seconds)
                c1 = cpu_seconds(sidecar.pid)
                cond = origin.conditional - before_cond
                _, _, p50, p99 = wrk(url, 1, a.seconds)
                rows[name].append(dict(rps=rps, cpu_us=(c1 - c0) * 1e6 / n, p50=p50, p99=p99,
                                       cond_per_hit=cond / n, n=n))
                print(f"  repeat {r + 1} {name:5}: {rps:9.0f} req/s  {(c1 - c0) * 1e6 / n:6.1f} us CPU/req  "
                      f"p50 {p50 * 1e3:6.0f} us  p99 {p99 * 1e3:6.0f} us  conditional {cond} of {n} hits",
                      flush=True)
        med = {n: {k: statistics.median(x[k] for x in v) for k in v[0]} for n, v in rows.items()}
        print(f"\n| measure (median of {a.repeats} x {a.seconds} s) | fresh hit | stale hit | stale / fresh |")
        print("|---|---|---|---|")
        for label, k, fmt in (("requests/s, 16 connections", "rps", "{:.0f}"),
                              ("sidecar CPU per request", "cpu_us", "{:.1f} µs"),
                              ("latency p50, 1 connection", "p50", None),
                              ("latency p99, 1 connection", "p99", None)):
            f, s = med["fresh"][k], med["stale"][k]
            show = (lambda v: f"{v * 1e3:.0f} µs") if fmt is None else (lambda v, fmt=fmt: fmt.format(v))
            print(f"| {label} | {show(f)} | {show(s)} | {s / f:.2f} |")
        print(f"| conditional requests at the origin per hit | {med['fresh']['cond_per_hit']:.5f} | "
              f"{med['stale']['cond_per_hit']:.5f} | |")
    finally:
        sidecar.terminate()
        sidecar.wait(10)
        origin.shutdown()


if __name__ == "__main__":
    main()
