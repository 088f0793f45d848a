#!/usr/bin/env bash
# `make corpus`: the training corpus of the quality model, from these sources only (docs/quality.md, "Corpus"):
# Debian plasma-workspace-wallpapers, mate-backgrounds, gnome-backgrounds, desktop-base,
# gimp-help-en, openclipart-png, tuxpaint-stamps-default, imagemagick-6-doc; PyPI scikit-image
# and scikit-learn sample images; headless-Chromium screenshots of HTML documents rendered here
# at 1x and 2x. Packages are downloaded (apt-get download, not installed) into .corpus/debs and
# unpacked; a deterministic sample is copied to .corpus/images/{photo,graphic,screenshot}/.
# Idempotent: a second run only re-samples. .corpus/ is git-ignored.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
C="$ROOT/.corpus"
mkdir -p "$C/debs" "$C/x" "$C/pypi" "$C/images"
say() { printf 'corpus: %s\n' "$*"; }

PKGS=(plasma-workspace-wallpapers mate-backgrounds gnome-backgrounds desktop-base gimp-help-en
  openclipart-png tuxpaint-stamps-default imagemagick-6-doc)
(
  cd "$C/debs"
  for p in "${PKGS[@]}"; do
    ls "${p}"_*.deb >/dev/null 2>&1 || apt-get download "$p" >/dev/null 2>&1 ||
      { apt-get update >/dev/null 2>&1 && apt-get download "$p" >/dev/null; }
  done
)
for deb in "$C"/debs/*.deb; do
  name=$(basename "$deb" | cut -d_ -f1)
  [[ -d $C/x/$name ]] || dpkg-deb -x "$deb" "$C/x/$name"
done
if [[ ! -d $C/pypi/skimage ]]; then
  python3 -m pip download --no-deps --only-binary=:all: -d "$C/pypi/wheels" scikit-image scikit-learn >/dev/null
  for w in "$C"/pypi/wheels/*.whl; do
    python3 -m zipfile -e "$w" "$C/pypi/" >/dev/null
  done
fi
say "packages unpacked in .corpus/x, wheels in .corpus/pypi"

# Screenshots of HTML documents we render ourselves (gimp-help-en and imagemagick docs are HTML).
if ! command -v chromium >/dev/null; then
  apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium >/dev/null; }
fi
shots="$C/shots"
mkdir -p "$shots"
if [[ -z $(ls "$shots" 2>/dev/null) ]]; then
  mapfile -t pages < <(find "$C/x/gimp-help-en" "$C/x/imagemagick-6-doc" -name '*.html' -size +6k | sort | awk 'NR % 97 == 1' | head -8)
  for page in "${pages[@]}"; do
    base=$(echo "$page" | md5sum | cut -c1-8)
    for scale in 1 2; do
      timeout 60 chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars \
        --force-device-scale-factor=$scale --window-size=1000,800 \
        --screenshot="$shots/html-$base-${scale}x.png" "file://$page" >/dev/null 2>&1 || true
    done
  done
fi

# The sample: every k-th file of each pool, so the corpus is the same on every machine.
sample() { # dest k files...
  local dest=$1 k=$2; shift 2
  mkdir -p "$C/images/$dest"
  local i=0 f
  for f in "$@"; do
    if ((i % k == 0)); then cp -n "$f" "$C/images/$dest/$(echo "$f" | md5sum | cut -c1-8)-$(basename "$f")"; fi
    i=$((i + 1))
  done
}
mapfile -t photos < <(find "$C/x/plasma-workspace-wallpapers" "$C/x/mate-backgrounds" "$C/x/gnome-backgrounds" \
  -type f \( -name '*.jpg' -o -name '*.jpeg' \) -size +100k | sort)
mapfile -t skphotos < <(find "$C/pypi/skimage/data" "$C/pypi/sklearn/datasets/images" -type f \
  \( -name '*.jpg' -o -name '*.png' \) -size +60k | sort)
mapfile -t graphics < <(find "$C/x/openclipart-png" "$C/x/tuxpaint-stamps-default" "$C/x/desktop-base" \
  -type f -name '*.png' -size +8k | sort)
mapfile -t screens < <(find "$C/x/gimp-help-en" "$C/x/imagemagick-6-doc" -type f -name '*.png' -size +12k | sort)
sample photo $(((${#photos[@]} + 23) / 24)) "${photos[@]}"
sample photo 1 "${skphotos[@]}"
sample graphic $(((${#graphics[@]} + 39) / 40)) "${graphics[@]}"
sample screenshot $(((${#screens[@]} + 29) / 30)) "${screens[@]}"
sample screenshot 1 "$shots"/*.png
for d in photo graphic screenshot; do say "$d: $(ls "$C/images/$d" | wc -l) images"; done
