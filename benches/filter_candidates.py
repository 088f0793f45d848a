#!/usr/bin/env python3
"""Builds or configurations of the filter side by side, with the control rows, on one path.

    python3 benches/filter_candidates.py [--path miss] [--repeats 5] [--seconds 2] \
        name=[module.wasm][@filter-json] ...

benches/filter_bench.py with extra rows: each candidate is envoy/envoy.yaml as shipped with
another module and/or another filter configuration, measured in the same run, pinned the same
way and in the same rotating order as `none`, the controls and the shipped filter, so a single
change is compared with what it replaces. Example, the debug header's cost on the miss path:

    python3 benches/filter_candidates.py 'nodebug=@{"debug_header":false}'
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import filter_bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser(usage=__doc__.strip().splitlines()[2].strip())
    ap.add_argument("--path", default="miss", choices=("nonimage", "miss", "hit"))
    ap.add_argument("--repeats", default="5")
    ap.add_argument("--seconds", default="2")
    ap.add_argument("candidates", nargs="+", metavar="name=[module.wasm][@filter-json]")
    args = ap.parse_args()
    argv = ["--paths", args.path, "--repeats", args.repeats, "--seconds", args.seconds]
    for c in args.candidates:
        if "=" not in c:
            sys.exit(f"filter_candidates: {c!r} is not name=[module.wasm][@filter-json]")
        argv += ["--candidate", c]
    filter_bench.main(argv)


if __name__ == "__main__":
    main()
