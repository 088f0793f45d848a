#!/usr/bin/env python3
"""The price of verification, against an anchor, side by side in one run (docs/benchmarks.md).

    python3 benches/sharp_anchor.py [--repeats 3] [--sets 4mp,12mp] [path/to/rendition]

Three rows per photo set, in rotating order within each repeat, all on the same 2 cores:
  * sharp:      benches/sharp_matrix.mjs, sharp 0.34.5 (libvips 8.17) making the same 30 encodes
                per photo at fixed dials (WebP q75, AVIF q50 effort 4, mozjpeg q75), unverified;
  * unverified: `rendition optimize --no-verify` (one encode per variant at the codec dials);
  * verified:   `rendition optimize` as shipped (every lossy variant scored with SSIMULACRA2
                and searched into its band, first quality from the learned model).
Both tools get every photo of the set at once and use both cores (sharp's thread pool; one
optimize job per core). Sets: `4mp` is the six MATE photos of benches/fixtures.sh (2.5-4.9 MP),
`12mp` is photo-12mp.jpg twice (two files: one source per core). Reports the median wall time
and peak RSS per row and the ratios verified/unverified and verified/sharp.

sharp is installed into .tools/sharp on first use (npm registry); the fixtures come from
benches/fixtures.sh, and photo-12mp.jpg from `RENDITION_BENCH=none cargo bench -p
rendition-sidecar --bench matrix` (it builds the inputs and runs nothing else).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
FIX = os.path.join(ROOT, "benches", ".fixtures")
SHARP_VERSION = "0.34.5"
SHARP_DIR = os.path.join(ROOT, ".tools", "sharp")
SHARP_MODULE = os.path.join(SHARP_DIR, "node_modules", "sharp")
MATE = ["Storm", "Aqua", "Garden", "LadyBird", "YellowFlower", "Wood"]


def install_sharp():
    pkg = os.path.join(SHARP_MODULE, "package.json")
    if os.path.exists(pkg) and json.load(open(pkg))["version"] == SHARP_VERSION:
        return
    subprocess.run(["npm", "install", "--prefix", SHARP_DIR, "--no-save", "--no-package-lock",
                    "--no-audit", "--no-fund", "--loglevel=error", f"sharp@{SHARP_VERSION}"],
                   check=True)


def photo_set(name, tmp):
    if name == "4mp":
        subprocess.run([os.path.join(ROOT, "benches", "fixtures.sh")], check=True)
        return [os.path.join(FIX, f"{n}.jpg") for n in MATE]
    twelve = os.path.join(FIX, "photo-12mp.jpg")
    if not os.path.exists(twelve):
        sys.exit("sharp_anchor: no photo-12mp.jpg; run: RENDITION_BENCH=none cargo bench "
                 "-p rendition-sidecar --bench matrix")
    copies = []
    for i in (1, 2):
        copy = os.path.join(tmp, f"photo-12mp-{i}.jpg")
        shutil.copyfile(twelve, copy)
        copies.append(copy)
    return copies


def timed(argv, env=None):
    """Runs argv under /usr/bin/time; returns (seconds, peak RSS in MB)."""
    out = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M"] + argv, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = [ln for ln in out.stderr.splitlines() if ln.startswith("TIME ")]
    if out.returncode != 0 or not line:
        sys.exit(f"sharp_anchor: {argv[:3]} failed:\n{out.stderr[-2000:]}")
    _, secs, kb = line[-1].split()
    return float(secs), int(kb) // 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sets", default="4mp,12mp")
    ap.add_argument("rendition", nargs="?",
                    default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                                         "release", "rendition"))
    args = ap.parse_args()
    install_sharp()
    env = dict(os.environ, SHARP_MODULE=SHARP_MODULE)
    tmp = tempfile.mkdtemp(prefix="sharp-anchor-")
    try:
        rows = {
            "sharp": lambda files, out: ["node", os.path.join(ROOT, "benches", "sharp_matrix.mjs"),
                                         out] + files,
            "unverified": lambda files, out: [args.rendition, "optimize", "--no-verify",
                                              "--out", out] + files,
            "verified": lambda files, out: [args.rendition, "optimize", "--out", out] + files,
        }
        print("| set | row | wall time (median) | peak RSS | runs |")
        print("|---|---|---|---|---|")
        for name in args.sets.split(","):
            files = photo_set(name, tmp)
            got = {row: [] for row in rows}
            order = list(rows)
            for r in range(args.repeats):
                for row in order[r % len(order):] + order[:r % len(order)]:
                    out = os.path.join(tmp, "out")
                    shutil.rmtree(out, ignore_errors=True)
                    got[row].append(timed(rows[row](files, out), env))
            med = {row: (statistics.median(t for t, _ in v), max(m for _, m in v))
                   for row, v in got.items()}
            for row, (secs, mb) in med.items():
                runs = ", ".join(f"{t:.1f}" for t, _ in got[row])
                print(f"| {name} ({len(files)} photos) | {row} | {secs:.1f} s | {mb} MB | {runs} |")
            v, u, s = med["verified"][0], med["unverified"][0], med["sharp"][0]
            print(f"| {name} | **verified / unverified** | **{v / u:.2f}x** | | |")
            print(f"| {name} | **verified / sharp** | **{v / s:.2f}x** | | |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
