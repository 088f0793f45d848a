#!/usr/bin/env bash
# Links the system's libaom (Debian's libaom-dev: libaom.a, its headers, aom.pc) into
# .tools/system-aom/{lib,include,pkgconfig}, the fixed paths .cargo/config.toml gives the AVIF
# encoder's build (libaom-sys), so the same config works on every architecture: pkg-config
# says where libaom lives here (/usr/lib/x86_64-linux-gnu, /usr/lib/aarch64-linux-gnu, ...).
# Linking the system's static libaom instead of compiling aom from source saves most of a
# cold build on 2 cores.
#
#   scripts/system-aom.sh [ROOT]   (ROOT: the workspace, default this repository)
#
# Run by scripts/setup.sh and scripts/build-sidecar.sh (so by sidecar/Dockerfile too).
# Idempotent. Needs pkg-config and libaom-dev.
set -euo pipefail
ROOT="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
die() { printf 'system-aom: ERROR: %s\n' "$*" >&2; exit 1; }

command -v pkg-config >/dev/null 2>&1 || die "pkg-config missing (scripts/setup.sh installs it)"
pkg-config --exists aom || die "pkg-config finds no aom: install libaom-dev (scripts/setup.sh does)"
libdir=$(pkg-config --variable=libdir aom)
includedir=$(pkg-config --variable=includedir aom)
pcdir=$(pkg-config --variable=pcfiledir aom)
[[ -f $libdir/libaom.a ]] || die "$libdir/libaom.a missing: the static library comes with libaom-dev"
[[ -f $includedir/aom/aom_encoder.h ]] || die "$includedir/aom/aom_encoder.h missing (libaom-dev)"

dir="$ROOT/.tools/system-aom"
mkdir -p "$dir"
ln -sfn "$libdir" "$dir/lib"
ln -sfn "$includedir" "$dir/include"
ln -sfn "$pcdir" "$dir/pkgconfig"
printf 'system-aom: .tools/system-aom -> %s (aom %s)\n' "$libdir" "$(pkg-config --modversion aom)"
