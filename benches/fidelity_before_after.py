#!/usr/bin/env python3
"""Before/after numbers for the image-fidelity fixes: runs `rendition optimize --no-verify` on
generated inputs and reads the outputs back (WebP chunks, pixel means, sizes, refusal reasons).
    PYTHONPATH=.tools/py python3 benches/fidelity_before_after.py path/to/rendition
(docs/RELIABILITY.md, "Image fidelity": run it on a build before and after the fixes)
"""
import io, json, os, struct, subprocess, sys, tempfile
from PIL import Image

rendition = sys.argv[1]
tmp = tempfile.mkdtemp(prefix="fidelity-")

def optimize(name, data):
    src = os.path.join(tmp, name)
    open(src, "wb").write(data)
    out = os.path.join(tmp, "out-" + name)
    rep = os.path.join(tmp, name + ".json")
    subprocess.run([rendition, "optimize", src, "--out", out, "--json", rep, "--no-verify"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    return json.load(open(rep))[0]

def webp_timing(b):
    at, loop, durs = 12, None, []
    while at + 8 <= len(b):
        tag, size = b[at:at+4], struct.unpack("<I", b[at+4:at+8])[0]
        p = b[at+8:at+8+size]
        if tag == b"ANIM":
            loop = struct.unpack("<H", p[4:6])[0]
        elif tag == b"ANMF":
            durs.append(int.from_bytes(p[12:15], "little"))
        at += 8 + size + (size & 1)
    return loop, durs

# 1. GIF timing: delays 0,1,2,7,13 cs, NETSCAPE loop 3 (3 repeats: 4 plays)
frames = []
for i in range(5):
    im = Image.new("P", (64, 48), i % 4)
    im.putpalette([(j * 7) % 256 for j in range(768)])
    im.putpixel((i, 0), 200)
    frames.append(im)
buf = io.BytesIO()
frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=[0, 10, 20, 70, 130],
               loop=3, optimize=False, disposal=1)
r = optimize("anim.gif", buf.getvalue())
webps = [v for v in r["variants"] if v["format"] == "webp"]
timing = webp_timing(open(webps[0]["file"], "rb").read()) if webps else None
print(f"gif delays 0,1,2,7,13 cs loop=3: webp loop count, frame ms = {timing} (browsers: 4, [100, 100, 20, 70, 130])")

# 2. grey PNG with a linear (gamma 1.0) GRAY profile
def tag_desc(text):
    t = text.encode() + b"\0"
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(t)) + t + b"\0" * 8 + b"\0" * 3 + b"\0" * 67
def xyz(x, y, z):
    f = lambda v: struct.pack(">i", round(v * 65536))
    return b"XYZ " + b"\0" * 4 + f(x) + f(y) + f(z)
curv = b"curv" + b"\0" * 4 + struct.pack(">I", 1) + struct.pack(">H", 0x0100) + b"\0\0"
tags = [(b"desc", tag_desc("linear grey")), (b"wtpt", xyz(0.9642, 1.0, 0.8249)), (b"kTRC", curv)]
off = 128 + 4 + 12 * len(tags)
table, body = b"", b""
for sig, data in tags:
    while (off + len(body)) % 4:
        body += b"\0"
    table += sig + struct.pack(">II", off + len(body), len(data))
    body += data
size = off + len(body)
header = (struct.pack(">I", size) + b"\0" * 4 + struct.pack(">I", 0x02100000) + b"mntrGRAYXYZ "
          + b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0) + xyz(0.9642, 1.0, 0.8249)[8:] + b"\0" * 48)
assert len(header) == 128, len(header)
icc = header + struct.pack(">I", len(tags)) + table + body
g = Image.new("L", (64, 48))
g.putdata([(20 + (i % 64) * 2 + i // 64) % 256 for i in range(64 * 48)])
buf = io.BytesIO(); g.save(buf, "PNG", icc_profile=icc)
r = optimize("grey.png", buf.getvalue())
src_mean = sum(g.get_flattened_data()) / (64 * 48)
srgb = lambda v: 255 * (12.92 * v / 255 if v / 255 <= 0.0031308 else 1.055 * (v / 255) ** (1 / 2.4) - 0.055)
want = sum(srgb(v) for v in g.get_flattened_data()) / (64 * 48)
png = [v for v in r["variants"] if v["format"] == "png"] or r["variants"]
out = Image.open(png[0]["file"]).convert("L")
got = sum(out.get_flattened_data()) / (out.width * out.height)
print(f"grey PNG, linear grey profile: output mean {got:.1f} (pixel values {src_mean:.1f}, colour-managed {want:.1f}); notes {r['notes']}")

# 3. thin strips
for w, h in [(4000, 40), (65000, 8)]:
    im = Image.new("RGB", (w, h))
    im.putdata([((x * 255) // w, (y * 255) // h, (x + y) % 256) for y in range(h) for x in range(w)])
    buf = io.BytesIO(); im.save(buf, "PNG")
    r = optimize(f"strip{w}x{h}.png", buf.getvalue())
    import re
    sizes = {(v["width"], v["height"]) for v in r["variants"]}
    for k in r.get("skipped", []):  # encoded, then dropped by the size gate: the size still shows
        m = re.search(r" (\d+)x(\d+) is ", k["reason"])
        if m:
            sizes.add((int(m.group(1)), int(m.group(2))))
    sizes = sorted(sizes)
    print(f"{w}x{h} PNG: variant sizes {sizes} refused {r['refused']}")

# 4. arithmetic-coded JPEG (a baseline file's SOF0 relabelled SOF9)
im = Image.new("RGB", (64, 48), (100, 150, 200)); buf = io.BytesIO(); im.save(buf, "JPEG")
b = bytearray(buf.getvalue()); i = b.find(b"\xff\xc0"); b[i + 1] = 0xC9
r = optimize("arith.jpg", bytes(b))
print(f"arithmetic-coded JPEG: refused {r['refused']!r}")
