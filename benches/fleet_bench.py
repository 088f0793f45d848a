#!/usr/bin/env python3
"""What the shared tier saves a fleet, side by side in one run (docs/fleet.md, docs/benchmarks.md).

    python3 benches/fleet_bench.py [--sources 30] [--pods 3] [--repeats 3] [path/to/rendition]

Three sidecars (`rendition serve`, release build, each with its own sled store) are asked to
make the same `--sources` distinct sources (every one notified to every pod at once, the way
every pod's filter notifies its own misses), in two configurations per repeat, order
alternating:
  * alone:  no shared tier: every pod makes every variant;
  * shared: the tier on a real S3 server (SeaweedFS, loopback): one pod makes each, the others
            copy it.
Then, in the shared configuration, a fourth pod on an empty store is asked for everything
(warm start: how long until it serves all of it, and what that cost it).

Measured per configuration: encodes fleet-wide (`variants_written` summed), copies from the
tier, the sidecars' CPU seconds (utime + stime from /proc/PID/stat, summed), and the wall time
from the first notify until every pod serves every variant. The sidecars are pinned to core 1;
the origin (this script's threads) and SeaweedFS to core 0. Reports medians over the repeats.
"""

import argparse
import concurrent.futures
import http.client
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))
from harness import ROOT, SeaweedFS, free_port, key_of, request, wait_for  # noqa: E402
from freshness_bench import cpu_seconds  # noqa: E402  (utime + stime from /proc/PID/stat)

HOST = "bench.example"
MASK = 0x0A  # AVIF, desktop width: slot 10 (shared/src/mask.rs)
SLOT = MASK & 0x3F
BUCKET = "rendition"
PHOTOS = [open(os.path.join(ROOT, "examples", "site", "img", n), "rb").read()
          for n in ("garden.jpg", "rocket.jpg", "coffee.png", "screenshot.png")]


class Origin(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        # /p/{i}.img: photo i mod 4, each path its own source with its own validator.
        try:
            i = int(self.path.split("/")[-1].split(".")[0])
        except ValueError:
            self.send_error(404)
            return
        body = PHOTOS[i % len(PHOTOS)]
        ctype = "image/png" if body[:4] == b"\x89PNG" else "image/jpeg"
        self.send_response(200)
        for k, v in (("Content-Type", ctype), ("ETag", f'"p{i}"'), ("Cache-Control", "public, max-age=3600"),
                     ("Content-Length", str(len(body)))):
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


def stats(port):
    return json.loads(request(port, "/stats")[2])


class Pod:
    def __init__(self, rendition, tmp, name, origin_port, weed=None, prefix=""):
        self.port = free_port()
        self.name = name
        conf = os.path.join(tmp, f"{name}.toml")
        lines = []
        if weed:
            lines = ["[shared_store]", "enabled = true", f'endpoint = "{weed.endpoint()}"', f'bucket = "{BUCKET}"',
                     f'prefix = "{prefix}"', "anonymous = true", f'node_id = "{name}"']
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(
            ["taskset", "-c", "1", rendition, "serve", "--config", conf, "--listen", f"127.0.0.1:{self.port}",
             "--data-dir", os.path.join(tmp, f"{name}-data"), "--origin", f"http://127.0.0.1:{origin_port}"],
            stdout=open(os.path.join(tmp, f"{name}.log"), "wb"), stderr=subprocess.STDOUT)
        wait_for(lambda: self.healthy(), 60, f"{name} to start")

    def healthy(self):
        try:
            return request(self.port, "/healthz")[0] == 200
        except OSError:
            return False

    def notify(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request("POST", "/notify", json.dumps({"host": HOST, "path": path, "mask": MASK}),
                  {"Content-Type": "application/json"})
        c.getresponse().read()
        c.close()

    def serves(self, key):
        return request(self.port, f"/v/{key}/{SLOT:x}")[0] == 200

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def key_id(path):
    return key_of(HOST, path)


def make_everything(pods, paths):
    """Notifies every path to every pod at once; returns the wall time until all serve all."""
    keys = [key_id(p) for p in paths]
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda job: job[0].notify(job[1]), [(pod, p) for p in paths for pod in pods]))
    for pod in pods:
        for k in keys:
            wait_for(lambda pod=pod, k=k: pod.serves(k), 900, f"{pod.name} to serve {k}")
    return time.monotonic() - start


def run(rendition, tmp, origin_port, paths, n_pods, weed, prefix, warm_start):
    pods = [Pod(rendition, tmp, f"{prefix}-pod{i}", origin_port, weed, prefix) for i in range(n_pods)]
    try:
        cpu0 = sum(cpu_seconds(p.proc.pid) for p in pods)
        wall = make_everything(pods, paths)
        cpu = sum(cpu_seconds(p.proc.pid) for p in pods) - cpu0
        s = [stats(p.port) for p in pods]
        row = dict(encodes=sum(x.get("variants_written", 0) for x in s),
                   copies=sum(x.get("shared_copies", 0) for x in s), cpu=cpu, wall=wall)
        if warm_start:
            late = Pod(rendition, tmp, f"{prefix}-late", origin_port, weed, prefix)
            pods.append(late)
            c0 = cpu_seconds(late.proc.pid)
            row["late_wall"] = make_everything([late], paths)
            row["late_cpu"] = cpu_seconds(late.proc.pid) - c0
            ls = stats(late.port)
            row["late_encodes"] = ls.get("variants_written", 0)
            row["late_copies"] = ls.get("shared_copies", 0)
        return row
    finally:
        for p in pods:
            p.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=30)
    ap.add_argument("--pods", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("rendition", nargs="?", default=os.path.join(ROOT, "target", "release", "rendition"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="rendition-fleet-bench-")
    os.sched_setaffinity(0, {0})
    origin_port = free_port()
    origin = Origin(("127.0.0.1", origin_port), Handler)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    weed = SeaweedFS(os.path.join(tmp, "weed"))
    weed.start()
    try:
        os.sched_setaffinity(weed.proc.pid, {0})
        if weed.create_bucket(BUCKET) != 200:
            sys.exit("fleet_bench: SeaweedFS did not create the bucket")
        wait_for(lambda: weed.put(BUCKET, "ready", b"1") == 200, 60, "SeaweedFS to take writes")
        rows = {"alone": [], "shared": []}
        for r in range(a.repeats):
            order = ["alone", "shared"] if r % 2 == 0 else ["shared", "alone"]
            for mode in order:
                # A new path set and bucket prefix per run: nothing carried over.
                paths = [f"/r{r}{mode[0]}/p/{i}.img" for i in range(a.sources)]
                row = run(a.rendition, tmp, origin_port, paths, a.pods, weed if mode == "shared" else None,
                          f"r{r}{mode}", warm_start=mode == "shared")
                rows[mode].append(row)
                print(f"  repeat {r + 1} {mode:6}: " + "  ".join(
                    f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
        med = {m: {k: statistics.median(x[k] for x in v) for k in v[0]} for m, v in rows.items()}
        al, sh = med["alone"], med["shared"]
        print(f"\n{a.pods} pods, {a.sources} sources, every source notified to every pod; medians of {a.repeats}\n")
        print("| measure | alone | shared tier | shared / alone |")
        print("|---|---|---|---|")
        print(f"| encodes fleet-wide | {al['encodes']:.0f} | {sh['encodes']:.0f} | {sh['encodes'] / al['encodes']:.2f} |")
        print(f"| copies from the tier | {al['copies']:.0f} | {sh['copies']:.0f} | |")
        print(f"| sidecar CPU seconds, all pods | {al['cpu']:.1f} | {sh['cpu']:.1f} | {sh['cpu'] / al['cpu']:.2f} |")
        print(f"| wall time until every pod serves everything | {al['wall']:.1f} s | {sh['wall']:.1f} s | "
              f"{sh['wall'] / al['wall']:.2f} |")
        print(f"\nA {a.pods + 1}th pod on an empty store (shared tier): every variant served after "
              f"{sh['late_wall']:.2f} s, {sh['late_cpu']:.2f} CPU s, {sh['late_encodes']:.0f} encodes, "
              f"{sh['late_copies']:.0f} copies; one pod alone made them in {al['cpu'] / a.pods:.1f} CPU s.")
    finally:
        weed.stop(grace=15)
        origin.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
