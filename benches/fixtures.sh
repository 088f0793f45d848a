#!/usr/bin/env bash
# Real photos for the benches, from Debian's mate-backgrounds (nature photos, 1280-2560 px),
# extracted into benches/.fixtures/ (git-ignored). The bench builds its 2 MP and 12 MP inputs
# from these (see sidecar/benches/matrix.rs). Idempotent.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/benches/.fixtures"
mkdir -p "$OUT"
if [[ -f $OUT/Storm.jpg && -f $OUT/YellowFlower.jpg ]]; then exit 0; fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download mate-backgrounds >/dev/null 2>&1) || {
  echo "fixtures: apt-get download mate-backgrounds failed (run apt-get update?)" >&2
  exit 1
}
dpkg-deb -x "$tmp"/mate-backgrounds_*.deb "$tmp/x"
cp "$tmp"/x/usr/share/backgrounds/mate/nature/{Storm,Aqua,Garden,LadyBird,YellowFlower,Wood}.jpg "$OUT/"
echo "fixtures: $(ls "$OUT" | wc -l) photos in benches/.fixtures"
