#!/usr/bin/env python3
"""Generates the hostile-image corpus (docs/RELIABILITY.md) deterministically into a directory:

    python3 tests/hostile/make_corpus.py OUT_DIR

Writes every file plus OUT_DIR/manifest.json, a list of entries:

    {"name": "bomb_png_100000x100000.png",   # the file, served by the test origin at /hostile/<name>
     "content_type": "image/png",            # what the origin sends (some lie on purpose)
     "expect": "refused",                    # refused | optimized | bypassed
     "reason": "100000x100000 is over",      # refused: a substring of the sidecar's logged reason
     "what": "...",                          # one line for the report
     "checks": {...}}                        # optimized: what the served variant must show

`optimized` entries are valid but unusual inputs (CMYK, YCCK, 16-bit, palette + tRNS, EXIF
orientations, Display P3 / Adobe RGB / CMYK ICC profiles, a PNG under an image/jpeg
Content-Type): a variant must be made and be right. Their `checks`:
    size        [w, h] of the full-size variant (after EXIF rotation)
    mean_rgb    [r, g, b] mean sRGB colour of the opaque pixels, computed here with Pillow/Little
                CMS from the file itself; `wrong_rgb` is what a pipeline that ignored the
                profile (or missed the Adobe CMYK inversion) would show, kept >= 20 levels away
    samples     [[x, y, [r, g, b, a]], ...] pixels that must match (orientation, transparency;
                null: any value)
    animated    the variant must still be an animation
    note        a substring of an INFO note the sidecar must log for it (an ignored profile)
`bypassed`: the filter must not even notify (a JPEG served as text/plain).

Nothing here is committed as binary: every file, including the ICC profiles (matrix/TRC v2
profiles with the Display P3 and Adobe RGB (1998) primaries, and a CMYK lut16 profile), is
built from code. Pillow is used where it can write the file (it comes from .tools/py, installed
by scripts/setup.sh); the rest (bomb headers, huge chunks, thousands of GIF frames, 16-bit PNGs
with tRNS, YCCK) is written byte by byte.
"""

import io
import json
import math
import os
import random
import struct
import sys
import zlib

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, ".tools", "py"))
try:
    from PIL import Image, ImageCms, ImageOps
except ImportError:  # pragma: no cover
    sys.exit("make_corpus: Pillow missing: run scripts/setup.sh (installs it into .tools/py)")

W, H = 160, 120  # size of the "photo" sources: small, so a debug sidecar makes them quickly
MIN_PROFILE_SHIFT = 20  # levels a colour-managed mean must differ from the untagged one


# ----------------------------------------------------------------------------- byte writers

def pixels(img):
    """Every pixel as a tuple (Pillow 13 renamed getdata)."""
    return list(getattr(img, "get_flattened_data", img.getdata)())


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_file(width, height, bit_depth, color_type, rows, before_idat=(), after_idat=(), idat=None):
    """A PNG from raw rows (bytes per row, without the filter byte; filter 0 is used)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    if idat is None:
        idat = zlib.compress(b"".join(b"\0" + r for r in rows), 9)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
    for kind, data in before_idat:
        out += png_chunk(kind, data)
    out += png_chunk(b"IDAT", idat)
    for kind, data in after_idat:
        out += png_chunk(kind, data)
    return out + png_chunk(b"IEND", b"")


def rows_of(img):
    """Raw rows of an 8-bit RGB(A) Pillow image, for png_file."""
    n = img.size[0] * len(img.getbands())
    raw = img.tobytes()
    return [raw[i:i + n] for i in range(0, len(raw), n)]


def zlib_of_zeros(n_mib):
    """A zlib stream of n_mib MiB of zeros: a compression bomb of about 1/1000 of its output.
    One MiB is deflated once (ending on a full flush, so it depends on nothing before it) and
    the block repeated: compressing 1 GiB itself would take seconds."""
    block = bytes(1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    end = c.flush(zlib.Z_FINISH)
    adler = ((n_mib << 20) % 65521) << 16 | 1  # Adler-32 of zeros: A stays 1, B counts bytes
    return b"\x78\xda" + first + again * (n_mib - 1) + end + struct.pack(">I", adler)


def gif_file(screen_w, screen_h, frames):
    """A GIF89a with a 4-colour global table; each frame (x, y, w, h, lzw_data) is preceded by
    a graphic control extension (50 ms). lzw_data is the raw LZW byte string (min code 2)."""
    out = b"GIF89a" + struct.pack("<HHBBB", screen_w, screen_h, 0x81, 0, 0)
    out += bytes([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])  # black, red, green, blue
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever
    for x, y, w, h, data in frames:
        out += b"\x21\xf9\x04\x00" + struct.pack("<H", 5) + b"\x00\x00"
        out += b"\x2c" + struct.pack("<HHHHB", x, y, w, h, 0) + b"\x02"
        for i in range(0, len(data), 255):
            block = data[i:i + 255]
            out += bytes([len(block)]) + block
        out += b"\x00"
    return out + b"\x3b"


ONE_PIXEL_LZW = b"\x44\x01"  # clear, index 0, end: a 1x1 frame


# ------------------------------------------------------------------------------ ICC profiles

def s15(v):
    return struct.pack(">i", int(round(v * 65536)))


def icc_text_desc(text):
    a = text.encode("ascii") + b"\0"
    return (b"desc\0\0\0\0" + struct.pack(">I", len(a)) + a + b"\0\0\0\0" + b"\0\0\0\0"
            + b"\0\0" + b"\0" + bytes(67))


def icc_profile(device_class, color_space, pcs, tags):
    """An ICC v2.1 profile from (signature, data) tags."""
    table_len = 4 + 12 * len(tags)
    offset = 128 + table_len
    entries, blobs = b"", b""
    for sig, data in tags:
        data += bytes(-len(data) % 4)
        entries += sig + struct.pack(">II", offset + len(blobs), len(data))
        blobs += data
    size = 128 + table_len + len(blobs)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + device_class
              + color_space + pcs + struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + b"APPL"
              + bytes(4) + bytes(8) + bytes(8) + struct.pack(">I", 0)
              + s15(0.9642) + s15(1.0) + s15(0.8249) + b"rndt" + bytes(16) + bytes(28))
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + entries + blobs


D50 = (0.9642, 1.0, 0.8249)
BRADFORD = ((0.8951, 0.2664, -0.1614), (-0.7502, 1.7135, 0.0367), (0.0389, -0.0685, 1.0296))


def mat_mul(a, b):
    return [[sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)] for i in range(3)]


def mat_vec(a, v):
    return [sum(a[i][k] * v[k] for k in range(3)) for i in range(3)]


def mat_inv(m):
    (a, b, c), (d, e, f), (g, h, i) = m
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    return [[(e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det],
            [(f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det],
            [(d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det]]


def rgb_to_xyz_d50(primaries, white):
    """The D50-adapted (Bradford) RGB->XYZ matrix for xy primaries and white point, as the
    rXYZ/gXYZ/bXYZ tags of a matrix/TRC profile hold it."""
    xyz = lambda x, y: [x / y, 1.0, (1 - x - y) / y]  # noqa: E731
    cols = [xyz(*p) for p in primaries]
    m = [[cols[j][i] for j in range(3)] for i in range(3)]
    wxyz = xyz(*white)
    s = mat_vec(mat_inv(m), wxyz)
    m = [[m[i][j] * s[j] for j in range(3)] for i in range(3)]
    src, dst = mat_vec(BRADFORD, wxyz), mat_vec(BRADFORD, D50)
    scale = [[dst[i] / src[i] if i == j else 0 for j in range(3)] for i in range(3)]
    adapt = mat_mul(mat_inv(BRADFORD), mat_mul(scale, BRADFORD))
    return mat_mul(adapt, m)


def xyz_tag(x, y, z):
    return b"XYZ \0\0\0\0" + s15(x) + s15(y) + s15(z)


def matrix_trc_profile(name, primaries, white, curve):
    m = rgb_to_xyz_d50(primaries, white)
    tags = [(b"desc", icc_text_desc(name)), (b"cprt", b"text\0\0\0\0No copyright, test data\0"),
            (b"wtpt", xyz_tag(*D50))]
    for i, sig in enumerate((b"rXYZ", b"gXYZ", b"bXYZ")):
        tags.append((sig, xyz_tag(m[0][i], m[1][i], m[2][i])))
    for sig in (b"rTRC", b"gTRC", b"bTRC"):
        tags.append((sig, curve))
    return icc_profile(b"mntr", b"RGB ", b"XYZ ", tags)


def srgb_curve_table(n=1024):
    def f(v):
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4
    return b"curv\0\0\0\0" + struct.pack(">I", n) + b"".join(
        struct.pack(">H", round(f(i / (n - 1)) * 65535)) for i in range(n))


D65 = (0.3127, 0.3290)
DISPLAY_P3 = matrix_trc_profile("Display P3 (Rendition test profile)",
                                [(0.680, 0.320), (0.265, 0.690), (0.150, 0.060)], D65,
                                srgb_curve_table())
ADOBE_RGB = matrix_trc_profile("Adobe RGB (1998) compatible (Rendition test profile)",
                               [(0.640, 0.330), (0.210, 0.710), (0.150, 0.060)], D65,
                               b"curv\0\0\0\0" + struct.pack(">IH", 1, 0x0233))  # gamma 563/256


def lab_d50(xyz):
    def f(t):
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29
    fx, fy, fz = (f(xyz[i] / D50[i]) for i in range(3))
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def cmyk_profile():
    """A CMYK -> Lab lut16 (mft2) input profile: a 5-point CLUT of a simple ink model with
    unwanted absorptions and dot gain, so it differs clearly from the naive formula."""
    srgb_to_xyz = rgb_to_xyz_d50([(0.64, 0.33), (0.30, 0.60), (0.15, 0.06)], D65)
    g = 5
    clut = b""
    for ci in range(g):
        for mi in range(g):
            for yi in range(g):
                for ki in range(g):
                    c, m, y, k = (v / (g - 1) for v in (ci, mi, yi, ki))
                    lin = [(1 - 0.85 * c) * (1 - 0.12 * m) * (1 - 0.02 * y),
                           (1 - 0.30 * c) * (1 - 0.85 * m) * (1 - 0.08 * y),
                           (1 - 0.10 * c) * (1 - 0.20 * m) * (1 - 0.90 * y)]
                    lin = [v * (1 - 0.92 * k) * 0.9 for v in lin]  # paper white at 90 %
                    L, a, b = lab_d50(mat_vec(srgb_to_xyz, lin))
                    # ICC v2 16-bit Lab encoding (lut16): L * 652.80, (a + 128) * 256.
                    clut += struct.pack(">HHH", round(L * 652.8), round((a + 128) * 256),
                                        round((b + 128) * 256))
    n = 256
    gain = b"".join(struct.pack(">H", round(min(1.0, t + 0.18 * math.sin(math.pi * t)) * 65535))
                    for t in (i / (n - 1) for i in range(n)))
    ident = b"".join(struct.pack(">H", round(i / (n - 1) * 65535)) for i in range(n))
    matrix = b"".join(s15(1.0 if i == j else 0.0) for i in range(3) for j in range(3))
    a2b0 = (b"mft2\0\0\0\0" + bytes([4, 3, g, 0]) + matrix + struct.pack(">HH", n, n)
            + gain * 4 + clut + ident * 3)
    return icc_profile(b"prtr", b"CMYK", b"Lab ", [
        (b"desc", icc_text_desc("CMYK coated (Rendition test profile)")),
        (b"cprt", b"text\0\0\0\0No copyright, test data\0"),
        (b"wtpt", xyz_tag(*D50)),
        (b"A2B0", a2b0)])


CMYK_PROFILE = cmyk_profile()


# ------------------------------------------------------------------------------ pixel sources

def noise(rnd, n, sigma):
    """n uniform noise values with standard deviation about sigma (fast and seeded)."""
    amp = round(sigma * 1.73)
    return [(v * (2 * amp + 1) >> 8) - amp for v in rnd.randbytes(n)]


def clamp(v):
    return 0 if v < 0 else 255 if v > 255 else int(v)


def photo(seed, base=(150, 110, 80), size=(W, H), sigma=10):
    """A photo-like RGB image: a smooth two-way gradient around `base` with mild noise, so a
    high-quality source JPEG/PNG is clearly larger than a WebP at the perceptual target."""
    w, h = size
    n = iter(noise(random.Random(seed), w * h * 3, sigma))
    out = bytearray()
    for y in range(h):
        gy = (y / h - 0.5) * 30
        for x in range(w):
            gx = (x / w - 0.5) * 40
            out += bytes((clamp(base[0] + gx + next(n)), clamp(base[1] + gy + next(n)),
                          clamp(base[2] + gx + next(n))))
    return Image.frombytes("RGB", size, bytes(out))


def flat_noisy(seed, color, size=(W, H), sigma=5, mode="RGB"):
    """A near-uniform patch (colour checks): `color` plus mild noise."""
    k = len(color)
    n = noise(random.Random(seed), size[0] * size[1] * k, sigma)
    return Image.frombytes(mode, size, bytes(clamp(color[i % k] + v) for i, v in enumerate(n)))


QUADRANTS = {"tl": (220, 40, 40), "tr": (40, 200, 60), "bl": (40, 60, 220), "br": (230, 220, 50)}
OW, OH = 120, 80


def canonical_oriented():
    """What every orientation file must look like once rotated: 120x80, four coloured
    quadrants (red, green / blue, yellow) with a little noise."""
    n = iter(noise(random.Random(8), OW * OH * 3, 6))
    out = bytearray()
    for y in range(OH):
        for x in range(OW):
            q = ("t" if y < OH // 2 else "b") + ("l" if x < OW // 2 else "r")
            out += bytes(clamp(c + next(n)) for c in QUADRANTS[q])
    return Image.frombytes("RGB", (OW, OH), bytes(out))


# ------------------------------------------------------------------------------ the corpus

def save(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def mean_rgb(img):
    img = img.convert("RGBA")
    n, acc = 0, [0, 0, 0]
    for p in pixels(img):
        if p[3] == 255:
            n += 1
            for i in range(3):
                acc[i] += p[i]
    return [round(a / n, 1) for a in acc]


def srgb_of(img, profile_bytes, in_mode):
    """The file's pixels converted to sRGB by Little CMS (Pillow's ImageCms), perceptual."""
    src = ImageCms.ImageCmsProfile(io.BytesIO(profile_bytes))
    t = ImageCms.buildTransform(src, ImageCms.createProfile("sRGB"), in_mode, "RGB",
                                renderingIntent=ImageCms.Intent.PERCEPTUAL)
    return ImageCms.applyTransform(img, t)


def naive_cmyk(img):
    """The sidecar's profile-less CMYK conversion: R = (255 - C)(255 - K) / 255 on ink values."""
    out = Image.new("RGB", img.size)
    out.putdata([tuple((255 - v) * (255 - p[3]) // 255 for v in p[:3]) for p in pixels(img)])
    return out


def inverted(img):
    """CMYK read the wrong way round (Adobe inversion missed)."""
    return img.point(lambda v: 255 - v)


def ycck_jpeg(cmyk_ink):
    """A YCCK JPEG (Photoshop's CMYK JPEG flavour): Pillow writes a 4-component Adobe CMYK JPEG
    of the component values we give it (it inverts them, as Photoshop files store them); we
    give it Y, Cb, Cr of the inks and K, then mark the Adobe segment transform=2 (YCCK).
    libjpeg's YCCK->CMYK gives back C = 255 - R(Y,Cb,Cr) = 255 - ink, i.e. Adobe-inverted CMYK."""
    comps = []
    for c, m, y, k in pixels(cmyk_ink):
        Y = 0.299 * c + 0.587 * m + 0.114 * y
        cb = 128 - 0.168736 * c - 0.331264 * m + 0.5 * y
        cr = 128 + 0.5 * c - 0.418688 * m - 0.081312 * y
        # stored = (Y, Cb, Cr, 255 - k); Pillow stores 255 - value
        comps.append(tuple(255 - max(0, min(255, int(round(v)))) for v in (Y, cb, cr)) + (k,))
    img = Image.new("CMYK", cmyk_ink.size)
    img.putdata(comps)
    data = bytearray(save(img, "JPEG", quality=95))
    i = data.find(b"\xff\xee\x00\x0eAdobe")
    assert i > 0, "no Adobe segment"
    assert data[i + 4 + 11] == 0, "Adobe transform was not 0 (CMYK)"
    data[i + 4 + 11] = 2
    return bytes(data)


def build():
    entries = []
    files = {}

    def add(name, data, content_type, expect, reason=None, what="", **checks):
        assert name not in files
        files[name] = data
        e = {"name": name, "content_type": content_type, "expect": expect, "what": what}
        if reason:
            e["reason"] = reason
        if checks:
            e["checks"] = checks
        entries.append(e)

    jpeg = save(photo(1), "JPEG", quality=95)
    prog = save(photo(2), "JPEG", quality=95, progressive=True)
    png8 = save(photo(3), "PNG")
    webp_lossy = save(photo(4), "WEBP", quality=95)
    webp_lossless = save(photo(5, sigma=3), "WEBP", lossless=True)
    anim_frames = [photo(10 + i, base=(60 + 40 * i, 90, 140), size=(64, 48), sigma=2) for i in range(4)]
    gif_anim = save(anim_frames[0].convert("P"), "GIF", save_all=True,
                    append_images=[f.convert("P") for f in anim_frames[1:]], duration=80, loop=0)

    # -- truncated files of every format
    add("truncated_jpeg_half.jpg", jpeg[:len(jpeg) // 2], "image/jpeg", "refused",
        "no end-of-image after the scan data", "baseline JPEG cut in the middle of the scan")
    add("truncated_jpeg_progressive.jpg", prog[:len(prog) * 2 // 3], "image/jpeg", "refused",
        "no end-of-image after the scan data", "progressive JPEG cut after 2/3")
    add("truncated_jpeg_header.jpg", jpeg[:120], "image/jpeg", "refused", "no frame header",
        "JPEG cut before its frame header")
    add("truncated_png_half.png", png8[:len(png8) // 2], "image/png", "refused", "malformed: png",
        "PNG cut in the middle of IDAT")
    add("truncated_png_ihdr.png", png8[:20], "image/png", "refused", "png: no IHDR",
        "PNG cut inside IHDR")
    add("truncated_gif_half.gif", gif_anim[:len(gif_anim) // 2], "image/gif", "refused",
        "malformed: gif", "animated GIF cut in a frame")
    add("truncated_webp_lossy.webp", webp_lossy[:len(webp_lossy) // 2], "image/webp", "refused",
        "malformed: webp", "lossy WebP cut in half")
    add("truncated_webp_lossless.webp", webp_lossless[:len(webp_lossless) // 2], "image/webp",
        "refused", "malformed: webp", "lossless WebP cut in half")
    add("truncated_webp_header.webp", webp_lossy[:16], "image/webp", "refused", "malformed: webp",
        "WebP cut inside its first chunk header")

    # -- zero and huge dimensions (decompression bombs: tiny files, enormous headers)
    def jpeg_with_size(w, h):
        b = bytearray(jpeg)
        sof = b.find(b"\xff\xc0")
        b[sof + 5:sof + 9] = struct.pack(">HH", h, w)
        return bytes(b)

    add("zero_jpeg_0x120.jpg", jpeg_with_size(0, 120), "image/jpeg", "refused",
        "zero width or height", "JPEG frame header width 0")
    add("zero_png_0x0.png", png_file(0, 0, 8, 2, []), "image/png", "refused",
        "zero width or height", "PNG IHDR 0x0")
    add("zero_gif_0x0.gif", gif_file(0, 0, [(0, 0, 1, 1, ONE_PIXEL_LZW)]), "image/gif", "refused",
        "zero width or height", "GIF logical screen 0x0")
    add("bomb_jpeg_65535x65535.jpg", jpeg_with_size(65535, 65535), "image/jpeg", "refused",
        "65535x65535 is over the 50000000-pixel limit", "real JPEG data, SOF says 65535x65535")
    one_row = zlib.compress(b"\0" + bytes(3 * 16), 9)
    add("bomb_png_100000x100000.png", png_file(100000, 100000, 8, 2, [], idat=one_row),
        "image/png", "refused", "100000x100000 is over the 50000000-pixel limit",
        "IHDR 100000x100000, 40 GB of RGBA")
    add("bomb_png_65535x65535.png", png_file(65535, 65535, 16, 6, [], idat=one_row),
        "image/png", "refused", "65535x65535 is over the 50000000-pixel limit",
        "16-bit RGBA IHDR 65535x65535")
    add("bomb_gif_65535x65535.gif", gif_file(65535, 65535, [(0, 0, 1, 1, ONE_PIXEL_LZW)]),
        "image/gif", "refused", "65535x65535 is over the 50000000-pixel limit",
        "GIF logical screen 65535x65535")
    add("bomb_gif_frame_65535x65535.gif", gif_file(16, 16, [(0, 0, 65535, 65535, ONE_PIXEL_LZW)]),
        "image/gif", "refused", "65535x65535 is over the 50000000-pixel limit",
        "16x16 GIF whose one frame claims 65535x65535")
    vp8x = (b"RIFF" + struct.pack("<I", 4 + 18 + 8) + b"WEBP" + b"VP8X" + struct.pack("<I", 10)
            + b"\0\0\0\0" + (16383).to_bytes(3, "little") * 2 + b"VP8L" + struct.pack("<I", 0))
    add("bomb_webp_16384x16384.webp", vp8x, "image/webp", "refused",
        "16384x16384 is over the 50000000-pixel limit", "WebP VP8X canvas 16384x16384")
    vp8l_bits = 16383 | (16383 << 14)
    vp8l = (b"RIFF" + struct.pack("<I", 4 + 8 + 6) + b"WEBP" + b"VP8L" + struct.pack("<I", 6)
            + b"\x2f" + struct.pack("<I", vp8l_bits) + b"\0")
    add("bomb_webp_vp8l_16384x16384.webp", vp8l, "image/webp", "refused",
        "16384x16384 is over the 50000000-pixel limit", "lossless WebP header 16384x16384")

    # -- huge chunks
    iccp_bomb = b"icc\0\0" + zlib_of_zeros(1024)
    add("png_iccp_bomb.png", png_file(W, H, 8, 2, rows_of(photo(20)),
                                      before_idat=[(b"iCCP", iccp_bomb)]),
        "image/png", "refused", "ICC profile (iCCP) inflates past 8388608 bytes",
        "iCCP chunk inflating to 1 GiB (%d bytes)" % len(iccp_bomb))
    ztxt_bomb = b"Comment\0\0" + zlib_of_zeros(1024)
    big_text = b"Comment\0" + b"hostile " * (512 * 1024)  # 4 MiB of tEXt
    add("png_ztxt_bomb.png", png_file(W, H, 8, 2, rows_of(photo(21)),
                                      before_idat=[(b"zTXt", ztxt_bomb), (b"tEXt", big_text)]),
        "image/png", "optimized", what="zTXt inflating to 1 GiB + 4 MiB tEXt, valid pixels",
        size=[W, H], mean_rgb=mean_rgb(photo(21)))

    # -- GIF frame counts
    add("gif_3000_frames.gif", gif_file(8, 8, [(0, 0, 1, 1, ONE_PIXEL_LZW)] * 3000), "image/gif",
        "refused", "3000 frames, over the 1000-frame limit", "3000 frames of 8x8")
    add("gif_900_frames_500x500.gif", gif_file(500, 500, [(0, 0, 1, 1, ONE_PIXEL_LZW)] * 900),
        "image/gif", "refused", "over the 200000000-pixel limit",
        "900 frames of a 500x500 canvas: 225 MP decoded (900 MB RGBA)")
    anim_webp = save(anim_frames[0], "WEBP", save_all=True, append_images=anim_frames[1:],
                     duration=80, loop=0, quality=90)
    add("animated_webp.webp", anim_webp, "image/webp", "refused", "animated WebP",
        "a 4-frame animated WebP: the decoder would return a still first frame")
    apng = save(anim_frames[0], "PNG", save_all=True, append_images=anim_frames[1:],
                duration=80, loop=0)
    add("animated_png.png", apng, "image/png", "refused", "animated PNG (APNG)",
        "a 4-frame APNG: the decoder would return a still default image")
    add("gif_animated.gif", gif_anim, "image/gif", "optimized",
        what="a valid 4-frame animated GIF (control)", size=[64, 48], animated=True)

    # -- CMYK and YCCK JPEG
    ink = (40, 170, 30, 20)  # C, M, Y, K ink values (0 = no ink)
    cmyk_img = flat_noisy(30, ink, mode="CMYK")
    cmyk = save(cmyk_img, "JPEG", quality=95)
    decoded = Image.open(io.BytesIO(cmyk))
    add("cmyk.jpg", cmyk, "image/jpeg", "optimized",
        what="Adobe CMYK JPEG, no profile (naive conversion)", size=[W, H],
        mean_rgb=mean_rgb(naive_cmyk(decoded)), wrong_rgb=mean_rgb(naive_cmyk(inverted(decoded))))
    cmyk_icc = save(cmyk_img, "JPEG", quality=95, icc_profile=CMYK_PROFILE)
    decoded = Image.open(io.BytesIO(cmyk_icc))
    add("cmyk_icc.jpg", cmyk_icc, "image/jpeg", "optimized",
        what="Adobe CMYK JPEG with a CMYK lut16 profile", size=[W, H],
        mean_rgb=mean_rgb(srgb_of(decoded, CMYK_PROFILE, "CMYK")),
        wrong_rgb=mean_rgb(naive_cmyk(decoded)))
    ycck = ycck_jpeg(flat_noisy(31, ink, mode="CMYK"))
    decoded = Image.open(io.BytesIO(ycck))
    assert decoded.mode == "CMYK"
    assert all(abs(a - b) < 8 for a, b in zip(decoded.resize((1, 1)).getpixel((0, 0)), ink)), \
        ("YCCK round trip", decoded.resize((1, 1)).getpixel((0, 0)))
    add("ycck.jpg", ycck, "image/jpeg", "optimized", what="Adobe YCCK JPEG (transform 2)",
        size=[W, H], mean_rgb=mean_rgb(naive_cmyk(decoded)),
        wrong_rgb=mean_rgb(naive_cmyk(inverted(decoded))))

    # -- 16-bit and palette PNGs with tRNS; the expected means are those of the opaque pixels
    # written, at 8 bits (v / 257): a byte-order or expansion mistake moves them far.
    rnd = random.Random(40)
    n = iter(noise(rnd, W * H * 10, 8))
    key = (0x1234, 0x5678, 0x9ABC)  # 16-bit tRNS colour key: the left quarter
    rows16, opaque = [], []
    for y in range(H):
        row = bytearray()
        for x in range(W):
            if x < W // 4:
                row += struct.pack(">HHH", *key)
                continue
            base = (150 + (x - W / 2) * 0.2, 100 + (y - H / 2) * 0.2, 70)
            v = [max(0, min(65535, int((c + next(n)) * 257) + next(n))) for c in base]
            row += struct.pack(">HHH", *v)
            opaque.append([c / 257 for c in v])
        rows16.append(bytes(row))
    mean16 = [round(sum(p[i] for p in opaque) / len(opaque), 1) for i in range(3)]
    add("png16_rgb_trns.png", png_file(W, H, 16, 2, rows16,
                                       before_idat=[(b"tRNS", struct.pack(">HHH", *key))]),
        "image/png", "optimized", what="16-bit RGB with a 16-bit tRNS colour key (left quarter)",
        size=[W, H], mean_rgb=mean16,
        samples=[[10, 60, [None, None, None, 0]], [120, 60, [None, None, None, 255]]])
    rows16a, opaque = [], []
    for y in range(H):
        row = bytearray()
        for x in range(W):
            a = 65535 if y >= H // 2 else 32768
            v = [max(0, min(65535, int((c + next(n)) * 257))) for c in (90, 140, 200)]
            row += struct.pack(">HHHH", *v, a)
            if a == 65535:
                opaque.append([c / 257 for c in v])
        rows16a.append(bytes(row))
    add("png16_rgba.png", png_file(W, H, 16, 6, rows16a), "image/png", "optimized",
        what="16-bit RGBA, top half 50% alpha", size=[W, H],
        mean_rgb=[round(sum(p[i] for p in opaque) / len(opaque), 1) for i in range(3)],
        samples=[[80, 30, [90, 140, 200, 128]], [80, 90, [90, 140, 200, 255]]])
    palette, trns = [], []
    for i in range(256):  # a warm ramp; 0 transparent, 1 half transparent, the rest opaque
        palette.append((min(255, 60 + i * 3 // 4), min(255, 40 + i // 2), min(255, 30 + i // 4)))
        trns.append(0 if i == 0 else 128 if i == 1 else 255)
    prow, opaque = [], []
    for y in range(H):
        row = bytearray()
        for x in range(W):
            i = 0 if x < 30 else 1 if x < 60 else max(2, min(255, int(2 + (x - 60) * 2.4 + next(n))))
            row.append(i)
            if i >= 2:
                opaque.append(palette[i])
        prow.append(bytes(row))
    add("png_palette_trns.png", png_file(W, H, 8, 3, prow, before_idat=[
        (b"PLTE", bytes(c for p in palette for c in p)), (b"tRNS", bytes(trns))]),
        "image/png", "optimized",
        what="8-bit palette with tRNS (transparent, half-transparent and opaque entries)",
        size=[W, H], mean_rgb=[round(sum(p[i] for p in opaque) / len(opaque), 1) for i in range(3)],
        samples=[[15, 60, [None, None, None, 0]], [45, 60] + [list(palette[1]) + [128]],
                 [140, 60, [None, None, None, 255]]])

    # -- EXIF orientations 1-8: each file displays as the same 120x80 picture
    canon = canonical_oriented()
    display = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
               4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
               6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
               8: Image.Transpose.ROTATE_90}
    inverse = {2: display[2], 3: display[3], 4: display[4], 5: display[5],
               6: Image.Transpose.ROTATE_90, 7: display[7], 8: Image.Transpose.ROTATE_270}
    quadrant_samples = [[OW // 4, OH // 4, list(QUADRANTS["tl"]) + [255]],
                        [OW * 3 // 4, OH // 4, list(QUADRANTS["tr"]) + [255]],
                        [OW // 4, OH * 3 // 4, list(QUADRANTS["bl"]) + [255]],
                        [OW * 3 // 4, OH * 3 // 4, list(QUADRANTS["br"]) + [255]]]
    for o in range(1, 9):
        stored = canon if o == 1 else canon.transpose(inverse[o])
        exif = Image.Exif()
        exif[0x0112] = o
        data = save(stored, "JPEG", quality=95, exif=exif.tobytes())
        shown = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
        assert shown.size == (OW, OH), (o, shown.size)
        add(f"orientation_{o}.jpg", data, "image/jpeg", "optimized",
            what=f"EXIF orientation {o}, stored {stored.size[0]}x{stored.size[1]}",
            size=[OW, OH], samples=quadrant_samples)

    # -- non-sRGB ICC profiles (and a broken one)
    p3_color = (40, 190, 70)  # a saturated P3 green: sRGB needs a much less saturated value
    p3_img = flat_noisy(50, p3_color)
    p3 = save(p3_img, "JPEG", quality=95, icc_profile=DISPLAY_P3)
    decoded = Image.open(io.BytesIO(p3)).convert("RGB")
    add("icc_display_p3.jpg", p3, "image/jpeg", "optimized", what="JPEG tagged Display P3",
        size=[W, H], mean_rgb=mean_rgb(srgb_of(decoded, DISPLAY_P3, "RGB")),
        wrong_rgb=mean_rgb(decoded))
    argb_color = (200, 70, 50)
    argb_img = flat_noisy(51, argb_color)
    argb = save(argb_img, "PNG", icc_profile=ADOBE_RGB)
    add("icc_adobe_rgb.png", argb, "image/png", "optimized", what="PNG tagged Adobe RGB (1998)",
        size=[W, H], mean_rgb=mean_rgb(srgb_of(argb_img, ADOBE_RGB, "RGB")),
        wrong_rgb=mean_rgb(argb_img))
    bad_icc = save(photo(52), "JPEG", quality=95, icc_profile=b"not an ICC profile" * 20)
    add("icc_broken.jpg", bad_icc, "image/jpeg", "optimized",
        what="JPEG with a garbage ICC profile: ignored (as browsers do), noted in the log",
        size=[W, H], note="ICC profile ignored")

    # -- lying Content-Type and not-images
    png_photo = save(photo(60), "PNG")
    add("png_served_as_jpeg.jpg", png_photo, "image/jpeg", "optimized",
        what="a PNG under image/jpeg and a .jpg name: sniffed", size=[W, H],
        mean_rgb=mean_rgb(Image.open(io.BytesIO(png_photo))))
    add("webp_served_as_png.png", webp_lossy, "image/png", "optimized",
        what="a WebP under image/png: sniffed", size=[W, H],
        mean_rgb=mean_rgb(Image.open(io.BytesIO(webp_lossy))))
    add("jpeg_served_as_text.jpg", jpeg, "text/plain", "bypassed",
        what="a real JPEG under text/plain: the filter never looks at it")
    add("html_served_as_jpeg.jpg", b"<!doctype html>\n<html><head><title>502 Bad Gateway</title>"
        b"</head><body><h1>502 Bad Gateway</h1></body></html>\n", "image/jpeg", "refused",
        "not an image: text or markup", "an HTML error page under image/jpeg")
    add("empty_body.jpg", b"", "image/jpeg", "refused", "not an image: empty body",
        "200 with an empty body under image/jpeg")
    add("random_bytes.png", random.Random(70).randbytes(4096), "image/png", "refused",
        "not an image: unknown magic bytes", "4 KiB of random bytes under image/png")
    avif = save(photo(71), "AVIF", quality=80)
    add("avif_served_as_jpeg.jpg", avif, "image/jpeg", "refused", "unsupported: AVIF source",
        "an AVIF under image/jpeg")

    # Every colour-managed check must be able to fail: the profile must move the colour.
    for e in entries:
        c = e.get("checks", {})
        if "wrong_rgb" in c:
            shift = max(abs(a - b) for a, b in zip(c["mean_rgb"], c["wrong_rgb"]))
            assert shift >= MIN_PROFILE_SHIFT, (e["name"], c["mean_rgb"], c["wrong_rgb"])
    return entries, files


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    entries, files = build()
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(entries, f, indent=1)
        f.write("\n")
    total = sum(len(d) for d in files.values())
    print(f"make_corpus: {len(entries)} files, {total} bytes, in {out}")


if __name__ == "__main__":
    main()
