#!/usr/bin/env python3
"""Envoy with and without the Rendition filter, side by side in one run (make bench).

    python3 benches/filter_bench.py [--seconds 5] [--repeats 5] [path/to/rendition]

Processes (all loopback, all stopped at the end):
  * static origin: an Envoy whose routes answer with fixed bytes (direct_response): the demo's
    1600 px JPEG, and the AVIF variant the sidecar made of it;
  * Envoy A: envoy/envoy.yaml as shipped (filter + index sync), origin = the static origin;
  * Envoy B: the same config without the filter and the sync;
  * the sidecar (release build when there is one), for the hit path.

Each Envoy under test runs with --concurrency 1; wrk runs 1 thread. Per repeat, A and B are
measured back to back (order alternating), and the report gives medians and A/B ratios:
  miss path: GET the JPEG (no variant indexed, sidecar stopped) through A vs through B;
  hit path:  AVIF client through A (filter -> sidecar) vs B proxying the same AVIF bytes from
             the static origin.
Throughput: wrk -c16; latency: wrk -c1 (p50/p99). Filter CPU per request: Envoy A's CPU
seconds (/proc) per request minus Envoy B's, on the throughput runs.
"""

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))
from harness import ROOT, free_port, request, wait_for  # noqa: E402

ENVOY = os.path.join(ROOT, ".tools", "bin", "envoy")
WASM = os.path.join(ROOT, "dist", "rendition_filter.wasm")
IMG = "/img/garden.jpg"
FILTER_CONFIG = ""
MISS_PATH = os.environ.get("MISS_PATH", "/img/garden.jpg?bench=miss")
AVIF = {"Accept": "image/avif,image/webp,*/*", "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0.0.0"}

STATIC_ORIGIN = """
admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }} }}
static_resources:
  listeners:
  - address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: static
          route_config:
            max_direct_response_body_size_bytes: 10485760
            virtual_hosts:
            - name: static
              domains: ["*"]
              routes:
              - match: {{ path: "{img}" }}
                direct_response: {{ status: 200, body: {{ filename: "{jpeg}" }} }}
                response_headers_to_add:
                - header: {{ key: content-type, value: image/jpeg }}
                - header: {{ key: cache-control, value: "public, max-age=600" }}
              - match: {{ path: "/variant.avif" }}
                direct_response: {{ status: 200, body: {{ filename: "{avif}" }} }}
                response_headers_to_add:
                - header: {{ key: content-type, value: image/avif }}
                - header: {{ key: cache-control, value: "public, max-age=600" }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""


def render(tmp, name, listen, admin, origin, sidecar, with_filter):
    with open(os.path.join(ROOT, "envoy", "envoy.yaml")) as f:
        c = f.read()
    for old, new in ((10000, listen), (9901, admin), (8080, origin), (8181, sidecar)):
        c = c.replace(f"port_value: {old} ", f"port_value: {new} ")
    c = c.replace("filename: dist/rendition_filter.wasm", "filename: " + WASM)
    if FILTER_CONFIG:
        c = c.replace("""value: '{"debug_header": true}'""", "value: '" + FILTER_CONFIG + "'")
    if not with_filter:
        c = c[:c.index("bootstrap_extensions:")] + c[c.index("static_resources:"):]
        c = c[:c.index("          - name: envoy.filters.http.wasm")] + c[c.index("          - name: envoy.filters.http.router"):]
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(c)
    return path


class Proc:
    def __init__(self, args, log):
        self.p = subprocess.Popen(args, stdout=open(log, "ab"), stderr=subprocess.STDOUT)

    def cpu_seconds(self):
        with open(f"/proc/{self.p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()


def envoy_version():
    out = subprocess.run([ENVOY, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"/(\d+\.\d+\.\d+)/", out)
    return m.group(1) if m else "?"


def envoy(tmp, config, admin, name):
    p = Proc([ENVOY, "-c", config, "--disable-hot-restart", "--concurrency", "1", "--log-level", "error"],
             os.path.join(tmp, name + ".log"))
    wait_for(lambda: request(admin, "/ready")[0] == 200, 60, name + " ready")
    return p


def wrk(port, path, headers, conns, seconds):
    args = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency"]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    out = subprocess.run(args + [f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = sum(int(x) for x in re.findall(r"(?:Non-2xx or 3xx responses|Socket errors:.*?):?\s+(\d+)", out))

    def pct(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out)
        return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]
    return {"rps": rps, "p50": pct(50), "p99": pct(99), "requests": total, "errors": errors}


def measure_runs(runs, headers, repeats, seconds):
    """Medians per run name over `repeats`, the runs measured in rotating order within each
    repeat (so a slow spell of the machine hits every run alike). `runs`: (name, Proc, port,
    path). Per run: requests/s at 16 connections, p50/p99 at 1, Envoy CPU per request at both."""
    rows = {name: [] for name, _, _, _ in runs}
    for r in range(repeats):
        k = r % len(runs)
        for name, proc, port, path in runs[k:] + runs[:k]:
            cpu0 = proc.cpu_seconds()
            t = wrk(port, path, headers, 16, seconds)
            t["cpu_us"] = (proc.cpu_seconds() - cpu0) / max(t["requests"], 1) * 1e6
            cpu1 = proc.cpu_seconds()
            lat = wrk(port, path, headers, 1, seconds)
            t["cpu1_us"] = (proc.cpu_seconds() - cpu1) / max(lat["requests"], 1) * 1e6
            t["p50"], t["p99"], t["errors"] = lat["p50"], lat["p99"], t["errors"] + lat["errors"]
            rows[name].append(t)
    return {k: {m: statistics.median(x[m] for x in v) for m in ("rps", "p50", "p99", "cpu_us", "cpu1_us", "errors")}
            for k, v in rows.items()}


def measure(label, a, b, path_a, path_b, headers, args):
    med = measure_runs([("A", a[0], a[1], path_a), ("B", b[0], b[1], path_b)], headers, args.repeats, args.seconds)
    a_, b_ = med["A"], med["B"]
    print(f"\n{label}  (medians of {args.repeats} repeats, {args.seconds}s each)")
    print(f"  {'':28} {'req/s':>9} {'p50 us':>8} {'p99 us':>8} {'CPU us/req':>11} {'(c=1)':>7} {'errors':>7}")
    for name, m in (("A: Envoy + Rendition", a_), ("B: Envoy alone", b_)):
        print(f"  {name:28} {m['rps']:9.0f} {m['p50']:8.0f} {m['p99']:8.0f} {m['cpu_us']:11.1f} {m['cpu1_us']:7.1f} {m['errors']:7.0f}")
    print(f"  A/B requests/s {a_['rps'] / b_['rps']:.2f}   added p50 {a_['p50'] - b_['p50']:+.0f} us   "
          f"added p99 {a_['p99'] - b_['p99']:+.0f} us   Envoy CPU per request {a_['cpu1_us'] - b_['cpu1_us']:+.1f} us (c=1), "
          f"{a_['cpu_us'] - b_['cpu_us']:+.1f} us (c=16)")
    return med


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--filter-config", default="", help="JSON for the filter instead of envoy.yaml's")
    ap.add_argument("--only", choices=["hit", "miss"], help="run one path")
    ap.add_argument("rendition", nargs="?")
    args = ap.parse_args()
    global FILTER_CONFIG
    FILTER_CONFIG = args.filter_config
    persistent = os.path.expanduser("~/.cache/rendition/target")  # the Makefile's choice, too
    target = os.environ.get("CARGO_TARGET_DIR") or (persistent if os.path.isdir(persistent) else os.path.join(ROOT, "target"))
    rendition = args.rendition or next(
        (p for p in (os.path.join(target, "release", "rendition"), os.path.join(target, "debug", "rendition")) if os.path.exists(p)), None)
    for f in (ENVOY, WASM, rendition or "rendition"):
        if not os.path.exists(f):
            sys.exit(f"filter_bench: {f} missing (make build)")
    tmp = tempfile.mkdtemp(prefix="rendition-bench-")
    procs = []
    try:
        ports = {k: free_port() for k in ("origin", "origin_admin", "a", "a_admin", "b", "b_admin", "sidecar")}
        jpeg = os.path.join(ROOT, "examples", "site", IMG.lstrip("/"))
        avif_file = os.path.join(tmp, "variant.avif")
        open(avif_file, "wb").close()
        # 1. the sidecar makes the variants (through Envoy A, as in production)
        sidecar = Proc([rendition, "serve", "--listen", f"127.0.0.1:{ports['sidecar']}", "--data-dir", os.path.join(tmp, "data"),
                        "--origin", f"http://127.0.0.1:{ports['origin']}"], os.path.join(tmp, "sidecar.log"))
        procs.append(sidecar)
        static_cfg = os.path.join(tmp, "static.yaml")

        def start_static():
            with open(static_cfg, "w") as f:
                f.write(STATIC_ORIGIN.format(admin=ports["origin_admin"], port=ports["origin"], img=IMG, jpeg=jpeg, avif=avif_file))
            return envoy(tmp, static_cfg, ports["origin_admin"], "static")
        static = start_static()
        procs.append(static)
        a = envoy(tmp, render(tmp, "a.yaml", ports["a"], ports["a_admin"], ports["origin"], ports["sidecar"], True), ports["a_admin"], "envoy-a")
        b = envoy(tmp, render(tmp, "b.yaml", ports["b"], ports["b_admin"], ports["origin"], ports["sidecar"], False), ports["b_admin"], "envoy-b")
        procs += [a, b]
        wait_for(lambda: request(ports["sidecar"], "/healthz")[0] == 200, 30, "sidecar")
        variant = b""
        if args.only != "miss":
            request(ports["a"], IMG, AVIF)
            wait_for(lambda: request(ports["a"], IMG, AVIF)[1].get("x-rendition", "").startswith("hit"), 120, "the AVIF variant")
            variant = request(ports["a"], IMG, AVIF)[2]
        with open(avif_file, "wb") as f:
            f.write(variant)
        static.stop()
        static = start_static()  # now serving the variant bytes too
        procs.append(static)
        print(f"filter_bench: source {os.path.getsize(jpeg)} B JPEG, AVIF variant {len(variant)} B; "
              f"Envoy {envoy_version()}, "
              f"wrk -t1, --concurrency 1, {os.cpu_count()} cores")
        hit = None if args.only == "miss" else measure("HIT: AVIF client, A routes to the sidecar; B proxies the same bytes from the static origin",
                      (a, ports["a"]), (b, ports["b"]), IMG, "/variant.avif", AVIF, args)
        # 2. miss path: the sidecar stopped (nothing indexed is routable; notifies fail fast)
        sidecar.stop()
        time.sleep(1)
        miss = measure("MISS: A (filter, no variant) and B proxy the JPEG from the static origin",
                       (a, ports["a"]), (b, ports["b"]), MISS_PATH, MISS_PATH, AVIF, args)
        if hit:
            print("\ngoals: miss added p50 <= 30 us and A/B >= 0.80; hit A/B >= 0.80")
            print(f"  miss: added p50 {miss['A']['p50'] - miss['B']['p50']:+.0f} us, A/B {miss['A']['rps'] / miss['B']['rps']:.2f}; "
                  f"hit: A/B {hit['A']['rps'] / hit['B']['rps']:.2f}")
    finally:
        for p in procs:
            p.stop()


if __name__ == "__main__":
    main()
