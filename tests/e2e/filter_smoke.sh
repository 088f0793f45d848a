#!/usr/bin/env bash
# Replays `make demo` once (real Envoy 1.40 with the built filter, the real sidecar, the demo
# origin) and checks what its README promises: the first page load gets the originals with
# `x-rendition: miss` and the client's mask; the second gets every client its own variant,
# smaller than the original.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
out=$(RENDITION_DEMO_ONCE=1 scripts/demo.sh 2>&1) || { printf '%s\n' "$out"; echo "filter_smoke: demo failed"; exit 1; }
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "filter_smoke: $*"; }
first=$(sed -n '/first page load/,/waiting for the sidecar/p' <<<"$out")
second=$(sed -n '/a moment later/,/filter stats/p' <<<"$out")
for want in "desktop Chrome (AVIF).*miss; mask=0x0a" "Android Chrome 80 (WebP only).*miss; mask=0x01" \
  "iPhone Safari, Save-Data.*miss; mask=0x32" "curl .*miss; mask=0x08"; do
  if grep -q -- "$want" <<<"$first"; then ok; else bad "first load: missing $want"; fi
done
# second load: 4 clients x 4 images, every one a hit smaller than its original
hits=0
while read -r got orig line; do
  if [[ $line == *"x-rendition: hit"* ]] && ((got < orig)); then hits=$((hits + 1)); else bad "second load: $line"; fi
done < <(grep -E '/img/' <<<"$second" | sed -E 's/^.*(\/img\/[a-z]+\.[a-z]+) +([0-9]+) vs +([0-9]+) bytes(.*)$/\2 \3 \1\4/')
if ((hits == 16)); then ok; else bad "second load: $hits of 16 hits"; fi
grep -q "avif .*variant=0x0a" <<<"$(grep 'desktop Chrome' <<<"$second")" && ok || bad "desktop Chrome got no AVIF"
grep -q "stopped origin, sidecar and Envoy" <<<"$out" && ok || bad "demo did not stop cleanly"
((fail == 0)) || printf '%s\n' "$out"
echo "filter_smoke: $pass passed, $fail failed"
((fail == 0))
