#!/usr/bin/env python3
"""Hostile images end to end (docs/RELIABILITY.md): the corpus of tests/hostile/make_corpus.py served by the
test origin, requested through the real Envoy with the filter, processed by the real sidecar.

    python3 tests/e2e/hostile_e2e.py [path/to/rendition]

For every corpus file (manifest.json says what each is and what must happen):
  1. first request: 200 with the exact original bytes (sha256) and the origin's Content-Type;
     the filter notifies the sidecar (not for the JPEG served as text/plain);
  2. the sidecar processes every notify (its /stats counters add up), then, once the filter's
     index has caught up, a second request:
       refused    200 with the exact original bytes, `reason=refused` in x-rendition, the
                  sidecar fetched it once and logged `source refused: <reason>` for it;
       optimized  a variant from the sidecar that decodes (Pillow) at the right size (after
                  EXIF rotation), with the right colours (mean sRGB within MEAN_TOL of what
                  Little CMS makes of the file's profile, CMYK inversion included) and the
                  right pixels where the manifest samples them (quadrants, transparency);
       bypassed   200 with the original; the sidecar never fetched it;
  3. the sidecar is still the same process, /healthz answers 200, and its peak RSS (VmHWM)
     stayed under RSS_LIMIT_MIB (see there why that bound).
"""

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import CHROME, ROOT, Checks, Stack, binaries, guarded, wait_for, settle  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, ".tools", "py"))
try:
    from PIL import Image  # noqa: E402
except ImportError:
    sys.exit("hostile_e2e: Pillow missing: run scripts/setup.sh (installs it into .tools/py)")

# WebP, desktop, 1x: the full-size WebP slot (desktop_width 0 keeps the source width).
WEBP_DESKTOP = {"Accept": "image/webp,image/apng,image/*,*/*;q=0.8", "User-Agent": CHROME}
MEAN_TOL = 8      # levels per channel between the variant's mean colour and the expected one
SAMPLE_TOL = 40   # per channel at a sampled pixel (quadrant colours are >= 150 levels apart)
ALPHA_TOL = 10
# Peak RSS bound. The sidecar's memory-related limits (sidecar/src/pipeline/limits.rs, [limits])
# are max_source_bytes 10 MiB, max_pixels 50 MP (200 MB as one RGBA frame) and
# max_animation_pixels 200 MP (800 MB of frames); none is a byte budget for the process. The
# largest source this corpus lets through is 160x120 (77 KB of RGBA), so a correct sidecar
# stays near its idle footprint (sled, tokio, the codecs: ~40 MiB measured), while every
# refused input claims far more if decoded even in part: >= 1 GiB (iCCP and zTXt bombs),
# 900 MB (900-frame GIF), 17-40 GB (bomb headers, the 65535x65535 GIF frame). 256 MiB is
# idle + one max_pixels frame with room to spare: a sidecar that decoded any bomb, or a
# quarter of one max_pixels frame more than it should, fails it (before those fixes,
# the iCCP bomb alone reached 533 MB and the GIF frame bomb 4.2 GB).
RSS_LIMIT_MIB = 256

check = Checks("hostile_e2e")


def sha(b):
    return hashlib.sha256(b).hexdigest()


def debug(headers):
    return headers.get("x-rendition", "")


def main():
    started = time.time()
    rendition, envoy = binaries("hostile_e2e")
    corpus = tempfile.mkdtemp(prefix="rendition-hostile-")
    subprocess.run([sys.executable, os.path.join(ROOT, "tests", "hostile", "make_corpus.py"), corpus],
                   check=True)
    with open(os.path.join(corpus, "manifest.json")) as f:
        manifest = json.load(f)
    # Only the requested slot per source (no proactive siblings): fast. Refusals log at WARN,
    # notes (an ignored ICC profile) at INFO: the level is set, whatever the caller's RUST_LOG.
    os.environ["RUST_LOG"] = "info"
    stack = Stack(rendition, envoy, proactive=False)
    rows = []
    with guarded(check, stack, "hostile_e2e"):
        stack.start()
        for e in manifest:
            stack.origin.files["/hostile/" + e["name"]] = (os.path.join(corpus, e["name"]), e["content_type"])
        rows = run(stack, corpus, manifest)
    if os.environ.get("RENDITION_E2E_KEEP") != "1":
        shutil.rmtree(corpus, ignore_errors=True)
    if rows:
        print("\n  %-34s %-9s %-44s %s" % ("file", "expected", "what happened", "reason logged"))
        for r in rows:
            print("  %-34s %-9s %-44s %s" % r)
    print(f"hostile_e2e: {time.time() - started:.1f} s")
    sys.exit(check.summary())


def run(s, corpus, manifest):
    def original(e):
        with open(os.path.join(corpus, e["name"]), "rb") as f:
            return f.read()

    def path(e):
        return "/hostile/" + e["name"]

    pid = s.sidecar.pid
    print(f"1. first request of {len(manifest)} files: the original, at once")
    for e in manifest:
        status, h, body = s.get(path(e), WEBP_DESKTOP)
        check(status == 200 and sha(body) == sha(original(e)) and h.get("content-type") == e["content_type"],
              f"{e['name']}: 200, original bytes, {e['content_type']} ({debug(h) or 'no x-rendition'})")

    print("2. the sidecar processes every notify")
    notified = sum(e["expect"] != "bypassed" for e in manifest)
    done = lambda st: st.get("images_processed", 0) + st.get("images_refused", 0) + st.get("fetch_errors", 0)  # noqa: E731
    settle(lambda: done(s.stats()) >= notified, 60)
    st = s.stats()
    check(done(st) == notified and st.get("fetch_errors") == 0,
          f"{notified} notified sources processed: {st.get('images_processed')} optimized, "
          f"{st.get('images_refused')} refused, {st.get('fetch_errors')} fetch errors")
    wait_for(s.index_caught_up, 30, "the index to catch up")
    optimized = [e for e in manifest if e["expect"] == "optimized"]
    settle(lambda: all(debug(s.get(path(e), WEBP_DESKTOP)[1]).startswith("hit") for e in optimized), 15)

    print("3. the second request of each")
    log = sidecar_log(s)  # (level, message, key) per event
    fetched = [p for p, ua in s.origin.seen if ua.startswith("rendition")]
    rows = []
    for e in manifest:
        status, h, body = s.get(path(e), WEBP_DESKTOP)
        name, expect = e["name"], e["expect"]
        events = [(level, msg) for level, msg, key in log if key.endswith(path(e))]
        reason = ""
        if expect == "refused":
            refusal = [msg.split(": ", 1)[1] for level, msg in events
                       if level == "WARN" and msg.startswith("source refused: ")]
            reason = refusal[0] if refusal else "(none)"
            ok = check(status == 200 and sha(body) == sha(original(e)) and "reason=refused" in debug(h),
                       f"{name}: refused, the original again ({debug(h)})")
            check(any(e["reason"] in r for r in refusal), f"  logged: source refused: {reason}"
                  + ("" if refusal and e["reason"] in reason else f" (want '{e['reason']}')"))
            check(fetched.count(path(e)) == 1, f"  fetched once by the sidecar ({fetched.count(path(e))})")
            rows.append((name, expect, "original (refused)" if ok else f"WRONG: {status} {debug(h)}", reason))
        elif expect == "bypassed":
            ok = check(status == 200 and sha(body) == sha(original(e)) and path(e) not in fetched,
                       f"{name}: original, never sent to the sidecar ({debug(h) or 'no x-rendition'})")
            rows.append((name, expect, "original, not fetched" if ok else "WRONG", "(none: never notified)"))
        else:
            what, ok = optimized_checks(e, status, h, body, len(original(e)))
            notes = [msg for level, msg in events if level == "INFO"]
            if "note" in e.get("checks", {}):
                check(any(e["checks"]["note"] in n for n in notes), f"  noted: {notes}")
            reason = "; ".join(notes)
            rows.append((name, expect, what if ok else "WRONG: " + what, reason or "-"))

    print("4. the sidecar survived, within its memory bound")
    check(s.sidecar.poll() is None and s.sidecar.pid == pid, f"the sidecar is the same process (pid {pid})")
    check(s.get_sidecar("/healthz")[0] == 200, "/healthz 200")
    hwm = s.peak_rss() >> 20
    check(0 < hwm < RSS_LIMIT_MIB, f"peak RSS (VmHWM) {hwm} MiB < {RSS_LIMIT_MIB} MiB")
    panics = [msg for _, msg, _ in sidecar_log(s) if "panicked" in msg]
    check(not panics, f"no panic in the sidecar log ({panics[:1]})")
    return rows


def optimized_checks(e, status, h, body, source_len):
    """Decodes the served variant and applies the manifest's checks; returns (summary, ok)."""
    name, c = e["name"], e.get("checks", {})
    if not check(status == 200 and debug(h).startswith("hit") and h.get("content-type", "").startswith("image/"),
                 f"{name}: a variant ({h.get('content-type')}; {debug(h)})"):
        return f"no variant: {debug(h)}", False
    try:
        img = Image.open(io.BytesIO(body))
        img.load()
    except Exception as err:  # noqa: BLE001
        check(False, f"  decodes ({err})")
        return "undecodable variant", False
    fmt = img.format.lower()
    ok = check(len(body) < source_len, f"  {len(body)} bytes, smaller than the {source_len}-byte source")
    rgba = img.convert("RGBA")
    if "size" in c:
        ok &= check(list(img.size) == c["size"], f"  {fmt} {img.size[0]}x{img.size[1]} (want {c['size'][0]}x{c['size'][1]})")
    if c.get("animated"):
        n = getattr(img, "n_frames", 1)
        ok &= check(n > 1, f"  still animated ({n} frames)")
    if "mean_rgb" in c:
        got = mean_rgb(rgba)
        diff = max(abs(a - b) for a, b in zip(got, c["mean_rgb"]))
        wrong = max(abs(a - b) for a, b in zip(got, c["wrong_rgb"])) if "wrong_rgb" in c else None
        ok &= check(diff <= MEAN_TOL, f"  mean sRGB {fmt_rgb(got)} vs expected {fmt_rgb(c['mean_rgb'])}: off by {diff:.1f}"
                    + (f" (a wrong colour path would be {fmt_rgb(c['wrong_rgb'])}, {wrong:.0f} away)" if wrong is not None else ""))
    for x, y, want in c.get("samples", []):
        got = rgba.getpixel((x, y))
        good = all(w is None or abs(g - w) <= (ALPHA_TOL if i == 3 else SAMPLE_TOL)
                   for i, (g, w) in enumerate(zip(got, want)))
        ok &= check(good, f"  pixel ({x},{y}) {got} ~ {tuple(want)}")
    summary = f"{fmt} {img.size[0]}x{img.size[1]}, {len(body)} B"
    if "mean_rgb" in c:
        summary += f", mean {fmt_rgb(mean_rgb(rgba))}"
    return summary, ok


def mean_rgb(img):
    px = [p for p in getattr(img, "get_flattened_data", img.getdata)() if p[3] == 255]
    return [sum(p[i] for p in px) / max(1, len(px)) for i in range(3)]


def fmt_rgb(c):
    return "(" + ",".join(f"{v:.0f}" for v in c) + ")"


def sidecar_log(s):
    """The sidecar's log as (level, message, key) events: ANSI colours removed, continuation
    lines joined to their event, the `key=` field split off (empty when absent)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", s.sidecar_log())
    events = []
    for line in text.splitlines():
        m = re.match(r"^\d{4}-\d\d-\d\dT\S+\s+([A-Z]+)\s+(.*)$", line)
        if m:
            events.append([m.group(1), m.group(2)])
        elif events:
            events[-1][1] += " " + line.strip()
        else:
            events.append(["", line])
    out = []
    for level, msg in events:
        key = re.search(r"\s+key=(\S+)$", msg)
        out.append((level, msg[:key.start()] if key else msg, key.group(1) if key else ""))
    return out


if __name__ == "__main__":
    main()
