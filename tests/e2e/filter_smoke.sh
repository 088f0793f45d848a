#!/usr/bin/env bash
# End-to-end smoke test: replays `make demo` once (real Envoy 1.40 with the built filter, the
# real sidecar, the demo origin) and checks what the filter decided for each client and that
# the sidecar produced and served variants smaller than the originals.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
out=$(RENDITION_DEMO_ONCE=1 scripts/demo.sh 2>&1) || { printf '%s\n' "$out"; echo "filter_smoke: demo failed"; exit 1; }
pass=0 fail=0
expect() {
  if grep -qF -- "$1" <<<"$out"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "filter_smoke: missing: $1"; fi
}
expect "desktop Chrome (AVIF)              x-rendition: miss; mask=0x0a"
expect "Android Chrome 80 (WebP only)      x-rendition: miss; mask=0x01"
expect "iPhone Safari, Save-Data           x-rendition: miss; mask=0x32"
expect "curl                               x-rendition: miss; mask=0x08"
expect "stopped origin, sidecar and Envoy"
# every image got a desktop AVIF and a mobile WebP from the sidecar, each smaller than the original
while read -r img orig avif _ _ _ webp; do
  [[ $img == /img/* ]] || continue
  if ((avif > 0 && avif < orig && webp > 0 && webp < orig)); then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "filter_smoke: $img: original $orig, AVIF $avif, WebP $webp"; fi
done < <(grep -E '^  /img/' <<<"$out" | awk '{print $1, $2, $3, $4, $5, $6, $7}')
((fail == 0)) || printf '%s\n' "$out"
echo "$pass passed, $fail failed"
((fail == 0))
