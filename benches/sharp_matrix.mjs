// The anchor for benches/sharp_anchor.sh: what a Next.js user's image optimizer (sharp, libvips)
// spends making the same matrix Rendition makes, at fixed dials and without verification.
//
//   node benches/sharp_matrix.mjs OUT_DIR FILE...
//
// Per photo, the encodes of Rendition's 36-slot matrix at the default widths: mobile 480 and
// 960 (2x), tablet 768 and 1536, desktop at the photo's own width (1x and 2x share it), each
// in WebP q75, AVIF q50 effort 4 and mozjpeg q75, once for the normal and once for the
// Save-Data slots: 30 encodes, the count Rendition makes. Save-Data gets the same dials here
// (sharp has no target to lower), so its encodes repeat the others' work, as Rendition's
// repeat theirs at a lower target. Widths never upscale. Photos are processed one after
// another; a photo's 30 encodes run at once on sharp's thread pool (every core), the way a
// server answering many requests would keep them busy. Prints one JSON line: photos,
// encodes, bytes written, milliseconds.
import { mkdirSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const sharp = require(process.env.SHARP_MODULE || "sharp");

const [outDir, ...files] = process.argv.slice(2);
if (!outDir || files.length === 0) {
  console.error("usage: node benches/sharp_matrix.mjs OUT_DIR FILE...");
  process.exit(2);
}

const WIDTHS = [480, 960, 768, 1536, 0]; // 0: the photo's own width
const FORMATS = [
  ["webp", (s) => s.webp({ quality: 75 })],
  ["avif", (s) => s.avif({ quality: 50, effort: 4 })],
  ["jpg", (s) => s.jpeg({ quality: 75, mozjpeg: true })],
];

const started = process.hrtime.bigint();
let encodes = 0;
let bytes = 0;
for (const file of files) {
  const { width } = await sharp(file).metadata();
  const dir = join(outDir, basename(file));
  mkdirSync(dir, { recursive: true });
  const jobs = [];
  for (const saveData of [false, true]) {
    for (const w of new Set(WIDTHS.map((w) => (w === 0 ? width : Math.min(w, width))))) {
      for (const [ext, encode] of FORMATS) {
        jobs.push(
          encode(sharp(file).resize({ width: w, withoutEnlargement: true }))
            .toBuffer()
            .then((buf) => {
              writeFileSync(join(dir, `${w}${saveData ? "-sd" : ""}.${ext}`), buf);
              encodes += 1;
              bytes += buf.length;
            }),
        );
      }
    }
  }
  await Promise.all(jobs);
}
const ms = Number(process.hrtime.bigint() - started) / 1e6;
console.log(JSON.stringify({ photos: files.length, encodes, bytes, ms: Math.round(ms) }));
