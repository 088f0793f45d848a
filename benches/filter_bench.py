#!/usr/bin/env python3
"""What the filter costs inside Envoy, pinned and beside its controls (docs/benchmarks.md).

    python3 benches/filter_bench.py [--seconds 4] [--repeats 5] [--paths nonimage,miss,hit]
        [--candidate NAME=[MODULE.wasm][@FILTER_JSON] ...] [path/to/rendition]

Every Envoy under test runs envoy/envoy.yaml (--concurrency 1) pinned to core 1; the load
generator (wrk -t1), the static origin, the sidecar and this script run on core 0, so an
Envoy's CPU per request (/proc/PID/stat) is its own and not wrk's, the origin's or the
sidecar's. Rows, each its own Envoy, all in the same run:

  none       envoy/envoy.yaml without the wasm HTTP filter and without the index-sync singleton
  none2      the same again (A/A: what noise alone makes of two equal Envoys)
  empty      control: benches/controls/empty.wat in the filter's place (exports create/delete
             only: two VM entries per request), no singleton
  hdrs       control: benches/controls/hdrs.wat (reads the request and response header maps)
  edits      control: benches/controls/edits.wat (hdrs + sets `vary` and `accept-ch` on the
             response, as every image response through Rendition gets)
  rendition  envoy/envoy.yaml as shipped (filter + index-sync singleton)
  NAME       --candidate: the shipped config with another module and/or filter configuration

The controls are built from their .wat with wat2wasm (`scripts/setup.sh bench` installs it).
Paths: `nonimage` GET /about.html; `hit` the AVIF client on /img/garden.jpg, routed by the
filter to the sidecar (the other rows GET /img/variant.avif, the very bytes, from the static
origin: the same bytes through Envoy without Rendition); `miss` /img/garden.jpg?bench=miss
with the sidecar stopped. Per repeat every row is measured once, in rotating order; per row
and repeat: 1 s warm-up, then wrk -c8 for `--seconds` (requests/s and Envoy CPU per request)
and wrk -c1 for `--seconds` (p50/p99 latency and CPU per request at one connection). Each
Envoy's idle CPU rate, measured first with no traffic, is subtracted from its CPU during the
runs and reported on its own. Medians over the repeats; "spread" is the range of the
per-repeat difference to `none` (rows of one repeat run back to back).
"""

import argparse
import copy
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from harness import ROOT, free_port, request, wait_for  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, ".tools", "py"))
try:
    import yaml  # noqa: E402  (PyYAML, installed into .tools/py by scripts/setup.sh)
except ImportError:
    sys.exit("filter_bench: PyYAML missing: run scripts/setup.sh (installs it into .tools/py)")

ENVOY = os.path.join(ROOT, ".tools", "bin", "envoy")
WASM = os.path.join(ROOT, "dist", "rendition_filter.wasm")
CONTROLS = os.path.join(HERE, "controls")
WASM_FILTER = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
CORE_UNDER_TEST, CORE_OTHERS = 1, 0
IMG = "/img/garden.jpg"
VARIANT = "/img/variant.avif"
PAGE = "/about.html"
MISS = IMG + "?bench=miss"
# One Host for every row (each Envoy listens on its own port): a source's key is the same
# whichever row asks, so a row without the filter can name the variant the shipped row made.
HOST = "bench.example"
AVIF = {"Accept": "image/avif,image/webp,*/*", "Host": HOST,
        "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0.0.0"}
CONNECTIONS = 8

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
                - header: {{ key: etag, value: '"garden-1"' }}
              - match: {{ path: "{variant}" }}
                direct_response: {{ status: 200, body: {{ filename: "{avif}" }} }}
                response_headers_to_add:
                - header: {{ key: content-type, value: image/avif }}
                - header: {{ key: cache-control, value: "public, max-age=600" }}
                - header: {{ key: etag, value: '"variant-1"' }}
              - match: {{ path: "{page}" }}
                direct_response: {{ status: 200, body: {{ filename: "{html}" }} }}
                response_headers_to_add:
                - header: {{ key: content-type, value: text/html }}
                - header: {{ key: cache-control, value: "public, max-age=600" }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""


# ---- Envoy configurations


CONFIG = os.path.join(ROOT, "envoy", "envoy.yaml")


def shipped():
    with open(CONFIG) as f:
        return yaml.safe_load(f)


def hcm(cfg):
    return cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def wasm_filter(cfg):
    return next(f for f in hcm(cfg)["http_filters"] if f.get("typed_config", {}).get("@type") == WASM_FILTER)


def set_modules(node, path):
    """Every `filename: *.wasm` under `node` becomes `path`."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "filename" and str(v).endswith(".wasm"):
                node[k] = path
            else:
                set_modules(v, path)
    elif isinstance(node, list):
        for v in node:
            set_modules(v, path)


def envoy_config(kind, ports, module=None, filter_json=None):
    """envoy/envoy.yaml for one row. kind: none | control | rendition."""
    cfg = copy.deepcopy(shipped())
    cfg["admin"]["address"]["socket_address"]["port_value"] = ports["admin"]
    cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = ports["listen"]
    for c in cfg["static_resources"]["clusters"]:
        if c["name"] in ("origin", "sidecar"):
            c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] = ports[c["name"]]
    set_modules(cfg, module or WASM)
    if kind in ("none", "control"):
        cfg.pop("bootstrap_extensions", None)
    if kind == "none":
        hcm(cfg)["http_filters"].remove(wasm_filter(cfg))
    elif kind == "control":
        wasm_filter(cfg)["typed_config"]["config"]["configuration"]["value"] = ""
    elif filter_json is not None:
        wasm_filter(cfg)["typed_config"]["config"]["configuration"]["value"] = filter_json
    return cfg


# ---- processes


def pin(pid, core):
    """Pins every thread of `pid` (taskset -a)."""
    subprocess.run(["taskset", "-a", "-p", "-c", str(core), str(pid)], check=True, capture_output=True)


class Proc:
    def __init__(self, args, log, core):
        prefix = ["taskset", "-c", str(core)]
        self.p = subprocess.Popen(prefix + args, stdout=open(log, "ab"), stderr=subprocess.STDOUT)

    def cpu_seconds(self):
        """utime + stime of every thread (/proc/PID/stat), in seconds."""
        with open(f"/proc/{self.p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def cpu_ns(self):
        """The same from the scheduler's nanosecond counters (/proc/PID/task/*/schedstat): the
        idle rates are a few ms per second, below /proc/PID/stat's 10 ms resolution."""
        total = 0
        for tid in os.listdir(f"/proc/{self.p.pid}/task"):
            try:
                with open(f"/proc/{self.p.pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except OSError:
                pass
        return total

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()


class Row:
    """One Envoy under test and what it is asked on each path."""

    def __init__(self, name, cfg, tmp, rendition, targets=None):
        self.name, self.rendition, self.targets = name, rendition, targets or {}
        self.port = cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"]
        self.admin = cfg["admin"]["address"]["socket_address"]["port_value"]
        path = os.path.join(tmp, name + ".yaml")
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f)
        self.proc = Proc([ENVOY, "-c", path, "--disable-hot-restart", "--concurrency", "1", "--log-level", "error"],
                         os.path.join(tmp, name + ".log"), CORE_UNDER_TEST)
        self.idle = {}  # phase -> CPU seconds per second with no traffic

    def ready(self):
        wait_for(lambda: request(self.admin, "/ready")[0] == 200, 60, self.name + " ready")

    def target(self, path):
        """(URL path, headers) this row is asked for `path`."""
        if path in self.targets:
            return self.targets[path](self)
        if path == "nonimage":
            return PAGE, AVIF
        if path == "hit" and not self.rendition:
            return VARIANT, AVIF
        return (IMG if path == "hit" else MISS), AVIF

    def stat(self, name):
        body = request(self.admin, "/stats?filter=" + re.escape(name) + "$")[2].decode()
        m = re.search(rf"^{re.escape(name)}: (\d+)$", body, re.M)
        return int(m.group(1)) if m else None


def wrk(port, path, headers, conns, seconds, latency=False):
    args = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s"] + (["--latency"] if latency else [])
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    out = subprocess.run(args + [f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True,
                         timeout=seconds + 30).stdout
    r = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
         "requests": int(re.search(r"(\d+) requests in", out).group(1)),
         "errors": sum(int(x) for x in re.findall(r"(?:Non-2xx or 3xx responses|Socket errors:.*?):?\s+(\d+)", out))}
    if latency:
        def pct(p):
            m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out)
            return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]
        r["p50"], r["p99"] = pct(50), pct(99)
    return r


def core_busy(core):
    """(busy, steal) seconds of one core so far (/proc/stat)."""
    with open("/proc/stat") as f:
        v = next(l for l in f if l.startswith(f"cpu{core} ")).split()[1:]
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(int(x) for x in v[:3] + v[5:7]) / ticks, int(v[7]) / ticks)


def measure_idle(rows, phase, seconds):
    """Each row's CPU per second with no traffic at all (ticks, health checks, long-polls)."""
    time.sleep(1)
    t0, c0 = time.monotonic(), {r.name: r.proc.cpu_ns() for r in rows}
    time.sleep(seconds)
    dt = time.monotonic() - t0
    for r in rows:
        r.idle[phase] = (r.proc.cpu_ns() - c0[r.name]) / 1e9 / dt


CONTEXT = {}  # per run: the ports and rows, for experiments' targets (benches/filter_hit_paths.py)
FOREIGN = []  # per run: CPU seconds per second on the core under test not spent by our Envoys


def cpu_per_request(rows, row, phase, run):
    """Runs `run()` (a wrk call) and returns (its result, Envoy CPU us per request, idle removed).
    Also notes how busy the core under test was with anything but these Envoys (FOREIGN)."""
    t0, c0 = time.monotonic(), row.proc.cpu_seconds()
    all0, (core0, steal0) = sum(r.proc.cpu_seconds() for r in rows), core_busy(CORE_UNDER_TEST)
    r = run()
    dt = time.monotonic() - t0
    busy = row.proc.cpu_seconds() - c0 - row.idle[phase] * dt
    core1, steal1 = core_busy(CORE_UNDER_TEST)
    FOREIGN.append(((core1 - core0) - (sum(r_.proc.cpu_seconds() for r_ in rows) - all0)) / dt + (steal1 - steal0) / dt)
    return r, busy / max(r["requests"], 1) * 1e6


def profiled(row, path, rep, run):
    """Runs `run()`; with FILTER_BENCH_PERF=DIR set, under `perf record -e cpu-clock` of the row's
    Envoy into DIR/ROW-PATH-REPEAT.data, for benches/filter_perf_split.py. The sampling costs
    CPU of its own, so a run with it on is for where the time goes, not for the figures."""
    out_dir = os.environ.get("FILTER_BENCH_PERF")
    if not out_dir:
        return run()
    os.makedirs(out_dir, exist_ok=True)
    perf = subprocess.Popen(["taskset", "-c", str(CORE_OTHERS), "perf", "record", "-q", "-e", "cpu-clock",
                             "-F", "2000", "-p", str(row.proc.p.pid), "-o",
                             os.path.join(out_dir, f"{row.name}-{path}-{rep}.data")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return run()
    finally:
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=30)


def measure(rows, path, phase, repeats, seconds):
    """Per row, one dict per repeat: rps and cpu (wrk -c8), p50, p99 and cpu1 (wrk -c1), errors.
    Within a repeat every row runs once, back to back, in an order that rotates per repeat: a
    slow spell of the machine then lands on every row alike, and each repeat gives one paired
    difference per row."""
    out = {r.name: [] for r in rows}
    for rep in range(repeats):
        k = rep % len(rows)
        for row in rows[k:] + rows[:k]:
            url, headers = row.target(path)
            t, cpu = profiled(row, path, rep, lambda: cpu_per_request(
                rows, row, phase, lambda: wrk(row.port, url, headers, CONNECTIONS, seconds)))
            lat, cpu1 = cpu_per_request(rows, row, phase, lambda: wrk(row.port, url, headers, 1, seconds, latency=True))
            out[row.name].append({"rps": t["rps"], "cpu": cpu, "p50": lat["p50"], "p99": lat["p99"], "cpu1": cpu1,
                                  "errors": t["errors"] + lat["errors"]})
    return out


def quartiles(xs):
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else [xs[0]] * 3
    return q[0], q[1], q[2]


def summarize(samples, base="none"):
    """Per row: the median of each measure, and per measure the median and interquartile range of
    the per-repeat difference to `base` (rps as a ratio)."""
    out = {}
    for n, runs in samples.items():
        row = {m: statistics.median(s[m] for s in runs) for m in runs[0]}
        for m in ("cpu", "cpu1", "p50", "p99"):
            row["d_" + m] = quartiles([s[m] - b[m] for s, b in zip(runs, samples[base])])
        row["x_rps"] = quartiles([s["rps"] / b["rps"] for s, b in zip(runs, samples[base])])
        out[n] = row
    return out


def report(title, samples, rows, repeats, seconds):
    med = summarize(samples)
    print(f"\n{title}\n  {repeats} repeats; per row and repeat wrk -t1 -c{CONNECTIONS} {seconds} s (req/s, CPU) and -c1 {seconds} s "
          f"(latency, CPU c=1). 'over none': median of the per-repeat differences [interquartile range]")
    print(f"  {'':10} {'CPU us/req':>10} {'over none':>20} {'req/s':>6} {'x none':>15} {'p50 us':>6} {'+p50':>15} "
          f"{'CPU c=1':>7} {'over none':>20} {'errors':>6}")
    iq = lambda q, f="+.1f": f"{q[1]:{f}} [{q[0]:{f}},{q[2]:{f}}]"  # noqa: E731
    for r in rows:
        m = med[r.name]
        print(f"  {r.name:10} {m['cpu']:10.1f} {iq(m['d_cpu']):>20} {m['rps']:6.0f} {iq(m['x_rps'], '.2f'):>15} "
              f"{m['p50']:6.0f} {iq(m['d_p50'], '+.0f'):>15} {m['cpu1']:7.1f} {iq(m['d_cpu1']):>20} {m['errors']:6.0f}")
    return med


def build_controls(tmp):
    if not shutil.which("wat2wasm"):
        sys.exit("filter_bench: wat2wasm missing (Debian: wabt): run scripts/setup.sh bench")
    out = {}
    for name in ("empty", "hdrs", "edits", "route"):
        out[name] = os.path.join(tmp, name + ".wasm")
        subprocess.run(["wat2wasm", os.path.join(CONTROLS, name + ".wat"), "-o", out[name]], check=True)
    return out


def envoy_version():
    out = subprocess.run([ENVOY, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"/(\d+\.\d+\.\d+)/", out)
    return m.group(1) if m else "?"


def find_rendition(arg):
    if arg:
        return arg
    target = os.environ.get("CARGO_TARGET_DIR") or next(
        (p for p in (os.path.expanduser("~/.cache/rendition/target"),) if os.path.isdir(p)), os.path.join(ROOT, "target"))
    return next((p for p in (os.path.join(target, "release", "rendition"), os.path.join(target, "debug", "rendition"))
                 if os.path.exists(p)), None)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--seconds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--idle", type=int, default=5, help="seconds of the idle measurement")
    ap.add_argument("--paths", default="nonimage,miss,hit")
    ap.add_argument("--candidate", action="append", default=[], metavar="NAME=[MODULE][@JSON]",
                    help="another module and/or filter configuration in the shipped config")
    ap.add_argument("--json", help="write the samples to this file")
    ap.add_argument("--config", default=CONFIG, help="the Envoy config under test (default envoy/envoy.yaml)")
    ap.add_argument("--module", default=WASM, help="the module of the rendition row (default dist/rendition_filter.wasm)")
    ap.add_argument("rendition", nargs="?")
    return ap.parse_args(argv)


def main(argv=None, extra_rows=()):
    """`extra_rows`: (name, function(ports) -> Envoy config dict, rendition?) for experiments."""
    args = parse_args(argv)
    global CONFIG, WASM
    CONFIG, WASM = os.path.abspath(args.config), os.path.abspath(args.module)
    paths = args.paths.split(",")
    if os.cpu_count() < 2:
        sys.exit("filter_bench: needs two cores (one for the Envoy under test, one for the rest)")
    os.sched_setaffinity(0, {CORE_OTHERS})  # this script, wrk and every helper it starts
    rendition = find_rendition(args.rendition)
    for f in (ENVOY, WASM, rendition or "rendition", shutil.which("wrk") or "wrk"):
        if not os.path.exists(f):
            sys.exit(f"filter_bench: {f} missing (make wasm; cargo build --release -p rendition-sidecar; scripts/setup.sh)")
    tmp = tempfile.mkdtemp(prefix="rendition-bench-")
    controls = build_controls(tmp)
    CONTEXT["controls"] = controls
    procs, rows = [], []
    try:
        ports = {k: free_port() for k in ("origin", "origin_admin", "sidecar")}
        jpeg = os.path.join(ROOT, "examples", "site", IMG.lstrip("/"))
        html = os.path.join(ROOT, "examples", "site", "index.html")
        avif = os.path.join(tmp, "variant.avif")
        open(avif, "wb").close()
        static_cfg = os.path.join(tmp, "static.yaml")

        def start_static():
            with open(static_cfg, "w") as f:
                f.write(STATIC_ORIGIN.format(admin=ports["origin_admin"], port=ports["origin"], img=IMG, jpeg=jpeg,
                                             variant=VARIANT, avif=avif, page=PAGE, html=html))
            p = Proc([ENVOY, "-c", static_cfg, "--disable-hot-restart", "--concurrency", "1", "--log-level", "error"],
                     os.path.join(tmp, "static.log"), CORE_OTHERS)
            wait_for(lambda: request(ports["origin_admin"], "/ready")[0] == 200, 60, "static origin")
            return p

        static = start_static()
        procs.append(static)
        sidecar = Proc([rendition, "serve", "--listen", f"127.0.0.1:{ports['sidecar']}", "--data-dir",
                        os.path.join(tmp, "data"), "--origin", f"http://127.0.0.1:{ports['origin']}"],
                       os.path.join(tmp, "sidecar.log"), f"{CORE_OTHERS},{CORE_UNDER_TEST}")
        procs.append(sidecar)

        def add(name, cfg, is_rendition, targets=None):
            row = Row(name, cfg, tmp, is_rendition, targets)
            procs.append(row.proc)
            rows.append(row)

        def row_ports():
            return {"listen": free_port(), "admin": free_port(), "origin": ports["origin"], "sidecar": ports["sidecar"]}
        add("none", envoy_config("none", row_ports()), False)
        # A second, identical Envoy without the filter: its difference to `none` is what the
        # machine's noise alone makes of two equal configurations.
        add("none2", envoy_config("none", row_ports()), False)
        for name in ("empty", "hdrs", "edits"):
            add(name, envoy_config("control", row_ports(), module=controls[name]), False)
        add("rendition", envoy_config("rendition", row_ports()), True)
        for spec in args.candidate:
            name, rest = spec.split("=", 1)
            module, _, config = rest.partition("@")
            add(name, envoy_config("rendition", row_ports(), module=os.path.abspath(module) if module else None,
                                   filter_json=config or None), True)
        for name, make, is_rendition, *targets in extra_rows:
            add(name, make(row_ports()), is_rendition, targets[0] if targets else None)
        for r in rows:
            r.ready()
        wait_for(lambda: request(ports["sidecar"], "/healthz")[0] == 200, 30, "sidecar")
        CONTEXT.update(ports=ports, rows=rows)

        # The variant, made by the sidecar through the shipped row (the sidecar on both cores
        # for that), then the static origin restarted to serve the same bytes.
        shipped_row = next(r for r in rows if r.name == "rendition")
        variant = b""
        if "hit" in paths:
            request(shipped_row.port, IMG, AVIF)
            wait_for(lambda: request(shipped_row.port, IMG, AVIF)[1].get("x-rendition", "").startswith("hit"), 180,
                     "the AVIF variant")
            wait_for(lambda: json.loads(request(ports["sidecar"], "/stats")[2])["queue_depth"] == 0, 120, "an idle sidecar")
            variant = request(shipped_row.port, IMG, AVIF)[2]
        with open(avif, "wb") as f:
            f.write(variant)
        static.stop()
        procs.remove(static)
        static = start_static()
        procs.append(static)
        pin(sidecar.p.pid, CORE_OTHERS)
        print(f"filter_bench: Envoy {envoy_version()}, {os.cpu_count()} cores; Envoys under test on core {CORE_UNDER_TEST} "
              f"(--concurrency 1), wrk -t1 / static origin / sidecar on core {CORE_OTHERS}; "
              f"source {os.path.getsize(jpeg)} B JPEG, AVIF variant {len(variant)} B, page {os.path.getsize(html)} B", flush=True)
        for r in rows:
            for p in paths:
                url, h = r.target(p)
                if p == "miss":
                    continue
                _, rh, _ = request(r.port, url, h)
                print(f"  {r.name:10} {p:8} {url:18} {rh.get('content-type', '-'):10} "
                      f"x-rendition: {rh.get('x-rendition', '-')}", flush=True)

        results = {}
        if "nonimage" in paths or "hit" in paths:
            for r in rows:  # warm-up: connections, V8's optimized tier
                for p in ("nonimage", "hit"):
                    if p in paths:
                        wrk(r.port, *r.target(p), CONNECTIONS, 2)
            measure_idle(rows, "up", args.idle)
            for p in ("nonimage", "hit"):
                if p in paths:
                    results[p] = measure(rows, p, "up", args.repeats, args.seconds)
        if "miss" in paths:
            sidecar.stop()
            time.sleep(2)  # the sync notices (its next poll fails) and marks the sidecar down
            measure_idle(rows, "down", args.idle)
            for r in rows:
                _, rh, _ = request(r.port, *r.target("miss"))
                print(f"  {r.name:10} miss     {MISS:18} x-rendition: {rh.get('x-rendition', '-')}", flush=True)
                wrk(r.port, *r.target("miss"), CONNECTIONS, 2)
            results["miss"] = measure(rows, "miss", "down", args.repeats, args.seconds)

        titles = {"nonimage": f"NON-IMAGE: GET {PAGE} (the filter is not on this route)",
                  "miss": f"MISS: GET {MISS}, AVIF client, sidecar stopped",
                  "hit": f"HIT: AVIF client; rendition rows GET {IMG} (the filter routes it to the sidecar), "
                         f"the others GET {VARIANT} (the same bytes) from the static origin"}
        summary = {}
        for p in ("nonimage", "miss", "hit"):
            if p in results:
                summary[p] = report(titles[p], results[p], rows, args.repeats, args.seconds)
        print("\nIDLE: Envoy CPU with no traffic (ms per second; one worker)")
        for r in rows:
            print(f"  {r.name:10} " + "  ".join(f"sidecar {ph}: {v * 1e3:6.2f}" for ph, v in r.idle.items()))
        if FOREIGN:
            print(f"\nQUIET CHECK: core {CORE_UNDER_TEST} busy with anything but the Envoys under test (plus steal), "
                  f"per run: median {statistics.median(FOREIGN) * 100:.1f}%, max {max(FOREIGN) * 100:.1f}%")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"samples": results, "summary": summary,
                           "idle_ms_per_s": {r.name: {ph: v * 1e3 for ph, v in r.idle.items()} for r in rows}}, f, indent=1)
        return summary, rows
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
