#!/usr/bin/env python3
"""Where each row's Envoy CPU per request goes: the wasm code, Envoy itself, the kernel.

    FILTER_BENCH_PERF=/tmp/fperf python3 benches/filter_bench.py --json /tmp/fperf.json ...
    python3 benches/filter_perf_split.py /tmp/fperf.json /tmp/fperf

filter_bench.py with FILTER_BENCH_PERF set records each row's Envoy with `perf record -e
cpu-clock` (a software clock: this machine's VM exposes no hardware counters) during its
8-connection runs. This script sorts the samples by where they landed: `[JIT]` is code V8
generated, which for these modules is the wasm code (a filter's own logic, or a control's);
`envoy` is Envoy's own code, including the host side of every proxy-wasm call and V8's
runtime outside generated code; `kernel` is the network stack and scheduling. Each share is
multiplied by the row's median CPU per request from the same run, so the columns are µs per
request and add up to it. Sampling costs CPU itself: read the differences between rows of
one run, not the totals.

Envoy from PyPI is stripped, so samples in it are not split further by function.
"""

import collections
import glob
import json
import os
import re
import statistics
import subprocess
import sys


def category(dso):
    if dso.startswith("[JIT]") or dso.startswith("perf-"):
        return "wasm (JIT)"
    if dso == "envoy":
        return "envoy"
    if dso.startswith("[kernel"):
        return "kernel"
    return "libs"


def shares(data_file):
    out = subprocess.run(["perf", "report", "-i", data_file, "--sort", "dso", "--stdio"],
                         capture_output=True, text=True).stdout
    split = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(.+?)\s*$", line)
        if m:
            split[category(m.group(2))] += float(m.group(1)) / 100
    return split


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    samples = json.load(open(sys.argv[1]))["samples"]
    cols = ["wasm (JIT)", "envoy", "kernel", "libs"]
    for path, rows in samples.items():
        print(f"{path.upper()}: µs per request (median CPU x median share over the repeats)")
        print(f"  {'row':12s} {'total':>7s} " + " ".join(f"{c:>11s}" for c in cols))
        for row, reps in rows.items():
            files = sorted(glob.glob(os.path.join(sys.argv[2], f"{row}-{path}-*.data")))
            if not files:
                continue
            per_file = [shares(f) for f in files]
            cpu = statistics.median(r["cpu"] for r in reps)
            split = {c: statistics.median(s[c] for s in per_file) * cpu for c in cols}
            print(f"  {row:12s} {cpu:7.1f} " + " ".join(f"{split[c]:11.1f}" for c in cols))


if __name__ == "__main__":
    main()
