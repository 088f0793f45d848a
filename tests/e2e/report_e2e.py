#!/usr/bin/env python3
"""The sidecar's /report page in a real headless Chromium (Debian `chromium`).

    python3 tests/e2e/report_e2e.py [path/to/rendition]   (make test-e2e runs it)

The demo page's six images (photos, a PNG photo, a logo with alpha, a UI screenshot, an
animated GIF) are requested through the real Envoy + filter, so the sidecar makes their
variants the way it does in production. Then Chromium loads /report and the test checks what
a person would see there: one section per image, one matrix row and one picture per stored
variant, an SSIMULACRA2 score on every scored variant inside the target band, every image
actually decoded by the browser (the page's own script counts loaded and broken images), and a
screenshot that is a real, non-blank picture. The screenshot is kept at
$RENDITION_ARTIFACTS/report.png (default: the system temp dir); docs/report.webp is one of
them, converted to WebP.
"""

import html.parser
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(__file__))
from harness import AVIF_DESKTOP as DESKTOP, ROOT, Checks, Stack, guarded, wait_for  # noqa: E402

IMAGES = ["/img/garden.jpg", "/img/rocket.jpg", "/img/coffee.png", "/img/logo.png",
          "/img/screenshot.png", "/img/pan.gif"]
WINDOW = (1400, 1800)

check = Checks("report_e2e")


def chromium(*args):
    """Runs headless Chromium the way it works on a machine with no outside network."""
    profile = tempfile.mkdtemp(prefix="rendition-chromium-")
    try:
        return subprocess.run(
            ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}", *args],
            capture_output=True, timeout=120, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class ReportParser(html.parser.HTMLParser):
    """What the rendered DOM shows: body data, sections with their rows and pictures."""

    def __init__(self):
        super().__init__()
        self.body = {}
        self.sections = []
        self.cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "body":
            self.body = a
        elif tag == "section" and "source" in classes:
            self.sections.append({"key": a.get("data-key"), "variants": int(a["data-variants"]),
                                  "rows": 0, "scores": [], "imgs": [], "refused": False})
        elif not self.sections:
            return
        elif tag == "tr" and "variant" in classes:
            self.sections[-1]["rows"] += 1
            self.sections[-1]["scores"].append({})
        elif tag == "td" and classes and classes[-1] in ("score", "slots"):
            self.cell = classes[-1]
        elif tag == "img":
            self.sections[-1]["imgs"].append((a.get("src"), "broken" in classes))
        elif tag == "span" and "refused" in classes:
            self.sections[-1]["refused"] = True

    def handle_data(self, data):
        if self.cell and data.strip():
            self.sections[-1]["scores"][-1][self.cell] = data.strip()
        self.cell = None


def png_pixels(path):
    """(width, height, raw scanlines) of an 8-bit PNG, with only the standard library."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    idat, i = b"", 8
    while i < len(data):
        (n,) = struct.unpack(">I", data[i:i + 4])
        if data[i + 4:i + 8] == b"IDAT":
            idat += data[i + 8:i + 8 + n]
        i += 12 + n
    return width, height, zlib.decompress(idat)


def main():
    rendition = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/debug/rendition")
    if shutil.which("chromium") is None:
        print("report_e2e: chromium missing (scripts/setup.sh installs it)")
        return 1
    stack = Stack(rendition, os.path.join(ROOT, ".tools/bin/envoy")).start()
    with guarded(check, stack, "report_e2e"):
        print("report_e2e: the demo images through Envoy, then /report in headless Chromium")
        for img in IMAGES:
            status, headers, _ = stack.get(img, DESKTOP)
            check(status == 200 and headers.get("x-rendition", "").startswith("miss"),
                  f"{img}: first request answered from the origin ({status})")

        def processed():
            s = stack.stats()
            return s["images_processed"] + s.get("images_refused", 0) >= len(IMAGES) \
                and s["queue_depth"] == 0
        wait_for(processed, 300, "the sidecar to process the demo images")

        status, headers, body = stack.get_sidecar("/report")
        check(status == 200 and headers.get("content-type", "").startswith("text/html"),
              "GET /report answers HTML")

        out = chromium("--virtual-time-budget=20000", "--dump-dom",
                       f"http://127.0.0.1:{stack.sidecar_port}/report")
        dom = out.stdout.decode("utf-8", "replace")
        page = ReportParser()
        page.feed(dom)
        keys = sorted(s["key"].split("/", 1)[1] for s in page.sections)
        check(keys == sorted(i.lstrip("/") for i in IMAGES),
              f"one section per source image ({len(page.sections)}: {', '.join(keys)})")
        total_imgs = sum(len(s["imgs"]) for s in page.sections)
        for s in page.sections:
            name = s["key"].split("/", 1)[1]
            check(not s["refused"] and s["variants"] > 0 and s["rows"] == s["variants"],
                  f"{name}: {s['rows']} matrix rows for {s['variants']} stored variants")
            check(len(s["imgs"]) == s["variants"] + 1 and s["imgs"][0][0].startswith("/report/source/"),
                  f"{name}: the original and {len(s['imgs']) - 1} variants side by side")
            # Every scored variant reaches the low edge of its band: target 70, or 55 for
            # Save-Data (savedata_score_reduction 15). Lossless and animated ones show no score.
            scored = [(float(r["score"]), "save-data" in r.get("slots", ""))
                      for r in s["scores"] if r.get("score", "–") != "–"]
            low = [(x, sd) for x, sd in scored if x < (55 if sd else 70) - 3 - 0.5]
            check(not low and (scored or name in ("img/pan.gif", "img/logo.png")),
                  f"{name}: {len(scored)} SSIMULACRA2 scores shown, none below its band "
                  f"({min((x for x, _ in scored), default=0):.1f} lowest){' ' + str(low) if low else ''}")
        check(page.body.get("data-loaded") == str(total_imgs) and page.body.get("data-broken") == "0",
              f"Chromium decoded every picture on the page ({page.body.get('data-loaded')} loaded, "
              f"{page.body.get('data-broken')} broken of {total_imgs})")

        artifacts = os.environ.get("RENDITION_ARTIFACTS", tempfile.gettempdir())
        os.makedirs(artifacts, exist_ok=True)
        shot = os.path.join(artifacts, "report.png")
        if os.path.exists(shot):
            os.remove(shot)
        chromium("--virtual-time-budget=20000", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                 f"--screenshot={shot}", f"http://127.0.0.1:{stack.sidecar_port}/report")
        if os.path.exists(shot):
            w, h, raw = png_pixels(shot)
            distinct = len(set(raw[:: max(1, len(raw) // 200_000)]))
            check((w, h) == WINDOW and distinct > 64,
                  f"screenshot {shot}: {w}x{h}, {distinct} distinct byte values (not blank)")
        else:
            check(False, f"screenshot written ({out.stderr.decode()[-400:]})")
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
