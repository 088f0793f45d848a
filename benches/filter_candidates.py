#!/usr/bin/env python3
"""Several builds or configurations of the filter side by side against Envoy without it.

    python3 benches/filter_candidates.py REPEATS name=module.wasm[@filter-json] ... [SECS=4]

The miss path of benches/filter_bench.py (no sidecar), but with one Envoy per candidate, all
in front of the same static origin and measured in rotating order within each repeat, so a
change is compared with what it replaces in one run on this noisy machine (docs/benchmarks.md).
Prints medians per candidate and against B (the same Envoy config without the filter):
requests/s at 16 connections, p50 at 1 connection, Envoy CPU per request at both.
Example: the shipped module with and without its debug header:
    python3 benches/filter_candidates.py 5 now=dist/rendition_filter.wasm 'nodebug=dist/rendition_filter.wasm@{"debug_header":false}'
"""

import os
import sys
import tempfile

import filter_bench as fb  # puts tests/e2e on sys.path for harness
from harness import free_port, request  # noqa: E402


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    repeats, secs = int(sys.argv[1]), int(os.environ.get("SECS", 4))
    candidates = []
    for arg in sys.argv[2:]:
        name, rest = arg.split("=", 1)
        wasm, _, config = rest.partition("@")
        candidates.append((name, os.path.abspath(wasm), config))
    path = fb.MISS_PATH
    tmp = tempfile.mkdtemp(prefix="rendition-candidates-")
    origin, origin_admin, sidecar = free_port(), free_port(), free_port()
    jpeg = os.path.join(fb.ROOT, "examples", "site", fb.IMG.lstrip("/"))
    avif = os.path.join(tmp, "variant.avif")
    open(avif, "wb").close()
    static_cfg = os.path.join(tmp, "static.yaml")
    with open(static_cfg, "w") as f:
        f.write(fb.STATIC_ORIGIN.format(admin=origin_admin, port=origin, img=fb.IMG, jpeg=jpeg, avif=avif))
    procs = [fb.envoy(tmp, static_cfg, origin_admin, "static")]
    runs = []
    try:
        for name, wasm, config in candidates + [("B", "", "")]:
            port, admin = free_port(), free_port()
            fb.WASM, fb.FILTER_CONFIG = wasm or fb.WASM, config
            p = fb.envoy(tmp, fb.render(tmp, name + ".yaml", port, admin, origin, sidecar, name != "B"), admin, name)
            procs.append(p)
            runs.append((name, p, port, path))
            print(f"{name}: x-rendition {request(port, path, fb.AVIF)[1].get('x-rendition')}", flush=True)
        med = fb.measure_runs(runs, fb.AVIF, repeats, secs)
        b = med["B"]
        print(f"\n{'':8} {'req/s':>7} {'p50 us':>7} {'CPU/req c1':>11} {'c16':>6}  vs B: {'A/B':>5} {'+p50':>6} {'+CPU c1':>8} {'c16':>6}")
        for k, m in med.items():
            print(f"{k:8} {m['rps']:7.0f} {m['p50']:7.0f} {m['cpu1_us']:11.1f} {m['cpu_us']:6.1f}        "
                  f"{m['rps'] / b['rps']:5.2f} {m['p50'] - b['p50']:+6.0f} {m['cpu1_us'] - b['cpu1_us']:+8.1f} {m['cpu_us'] - b['cpu_us']:+6.1f}")
    finally:
        for p in procs:
            p.stop()


if __name__ == "__main__":
    main()
