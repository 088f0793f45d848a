#!/usr/bin/env python3
"""First miss to first hit through Envoy, per photo size (docs/benchmarks.md).

    python3 benches/first_hit.py [--repeats 5] [path/to/rendition [path/to/envoy]]

The shipped stack (envoy/envoy.yaml with dist/rendition_filter.wasm, the release sidecar with
proactive variants, a local origin), the way tests/e2e starts it. Per repeat and photo, a
desktop Chrome (AVIF, 1x: the photo's own width, the largest first encode a client can ask
for) requests a new URL: the miss is answered with the original and notifies the sidecar.
The client then asks again every 20 ms until Envoy answers with a variant (`x-rendition: hit`).
The time between the first request and that answer is the first-hit latency: the origin
fetch, the decode, one verified encode of the asked slot, the store and the filter's index
sync. Each repeat's photo gets a distinct JPEG comment, so its bytes are new to the sidecar
(no content-hash reuse). Photos: 3 MP (a 2048x1536 crop of MATE's Wood) and 12 MP
(photo-12mp.jpg). Reports each time and the median per photo, and the sidecar's peak RSS.
"""

import argparse
import os
import statistics
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))
from harness import AVIF_DESKTOP, ROOT, Stack, wait_for  # noqa: E402

FIX = os.path.join(ROOT, "benches", ".fixtures")


def three_mp():
    """benches/.fixtures/photo-3mp.jpg: the centre 2048x1536 of Wood.jpg (Pillow, q92)."""
    path = os.path.join(FIX, "photo-3mp.jpg")
    if not os.path.exists(path):
        sys.path.insert(0, os.path.join(ROOT, ".tools", "py"))
        from PIL import Image
        with Image.open(os.path.join(FIX, "Wood.jpg")) as im:
            x, y = (im.width - 2048) // 2, (im.height - 1536) // 2
            im.crop((x, y, x + 2048, y + 1536)).save(path, quality=92)
    return path


def with_comment(jpeg, text):
    """The same JPEG with a COM segment after SOI: new bytes, the same pixels."""
    body = text.encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("rendition", nargs="?")
    ap.add_argument("envoy", nargs="?")
    args = ap.parse_args()
    rendition = args.rendition or os.path.join(ROOT, "target", "release", "rendition")
    envoy = args.envoy or os.path.join(ROOT, ".tools", "bin", "envoy")
    for f in (rendition, envoy, os.path.join(ROOT, "dist", "rendition_filter.wasm")):
        if not os.path.exists(f):
            sys.exit(f"first_hit: {f} missing (make build / make wasm / scripts/setup.sh)")
    subprocess.run([os.path.join(ROOT, "benches", "fixtures.sh")], check=True)
    twelve = os.path.join(FIX, "photo-12mp.jpg")
    if not os.path.exists(twelve):
        sys.exit("first_hit: no photo-12mp.jpg; run: RENDITION_BENCH=none cargo bench "
                 "-p rendition-sidecar --bench matrix")
    photos = [("3 MP (2048x1536)", three_mp()), ("12 MP (4000x3000)", twelve)]
    stack = Stack(rendition, envoy, proactive=True).start()
    try:
        results = {name: [] for name, _ in photos}
        for r in range(args.repeats):
            for name, path in photos:
                with open(path, "rb") as f:
                    jpeg = with_comment(f.read(), f"repeat {r} {time.time()}")
                url = f"/first-hit/{r}/{os.path.basename(path)}"
                file = os.path.join(stack.tmp, f"r{r}-{os.path.basename(path)}")
                with open(file, "wb") as f:
                    f.write(jpeg)
                stack.origin.files[url] = (file, "image/jpeg")
                started = time.monotonic()
                status, headers, _ = stack.get(url, AVIF_DESKTOP)
                assert status == 200 and not headers.get("x-rendition", "").startswith("hit")

                while not stack.get(url, AVIF_DESKTOP)[1].get("x-rendition", "").startswith("hit"):
                    if time.monotonic() - started > 120:
                        sys.exit(f"first_hit: no hit for {url} after 120 s\n{stack.logs()}")
                    time.sleep(0.02)
                took = time.monotonic() - started
                results[name].append(took)
                print(f"repeat {r}: {name}: {took:.2f} s", flush=True)
                # Let the siblings finish before the next photo, so each first hit starts
                # from an idle sidecar.
                sources = sum(len(times) for times in results.values())
                wait_for(lambda: stack.stats().get("images_processed", 0) >= sources, 600,
                         "the matrix")
        print()
        print("| photo | first miss to first hit (median) | runs |")
        print("|---|---|---|")
        for name, times in results.items():
            runs = ", ".join(f"{t:.2f}" for t in times)
            print(f"| {name} | **{statistics.median(times):.2f} s** | {runs} |")
        print(f"\nsidecar peak RSS: {stack.peak_rss() // (1 << 20)} MB")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
