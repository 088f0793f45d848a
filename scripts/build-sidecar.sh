#!/usr/bin/env bash
# Builds the `rendition` binary the way sidecar/Dockerfile does, and checks that it runs on
# the runtime image: the Dockerfile's build stage runs exactly this script, and
# tests/deploy/check_dockerfiles.py runs it outside Docker, so the image's build commands are
# tested where there is no Docker engine.
#
#   scripts/build-sidecar.sh [--profile release|dev] OUT_DIR
#
# 1. links the system libaom (scripts/system-aom.sh: the build is the same on any
#    architecture), 2. `cargo build --locked -p rendition-sidecar` in the profile (release
# by default, as in the image), 3. installs the binary as OUT_DIR/rendition, 4. checks its
# shared libraries: each must be one the runtime stage has (RUNTIME_LIBS below: what
# debian:bookworm-slim ships plus the Dockerfile's `apt-get install liblcms2-2`).
# Honours CARGO_TARGET_DIR (default: target/ in the workspace).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
die() { printf 'build-sidecar: ERROR: %s\n' "$*" >&2; exit 1; }

PROFILE=release
if [[ ${1:-} == --profile ]]; then PROFILE=${2:-}; shift 2; fi
[[ $PROFILE == release || $PROFILE == dev ]] || die "--profile is release or dev"
OUT=${1:-}
[[ -n $OUT && $# -eq 1 ]] || die "usage: scripts/build-sidecar.sh [--profile release|dev] OUT_DIR"

# The shared libraries of the runtime stage: libc6 and libgcc-s1 are in debian:bookworm-slim,
# liblcms2-2 is installed by the Dockerfile. Keep in step with its runtime `apt-get install`.
RUNTIME_LIBS="libc.so.6 libm.so.6 libgcc_s.so.1 liblcms2.so.2"

scripts/system-aom.sh "$ROOT"
cargo build --locked --profile "$PROFILE" -p rendition-sidecar
dir=$([[ $PROFILE == dev ]] && echo debug || echo "$PROFILE")
bin="${CARGO_TARGET_DIR:-target}/$dir/rendition"
install -D -m 0755 "$bin" "$OUT/rendition"

# NEEDED entries (not ldd: that resolves through this machine's libraries): the dynamic
# loader is the runtime's own, everything else must be in RUNTIME_LIBS.
needed=$(readelf -d "$OUT/rendition" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
[[ -n $needed ]] || die "readelf found no NEEDED entries in $OUT/rendition"
for lib in $needed; do
  case $lib in
    ld-linux*.so.*) continue ;;  # the dynamic loader (libc6), named per architecture
  esac
  case " $RUNTIME_LIBS " in
    *" $lib "*) ;;
    *) die "$OUT/rendition needs $lib, which the runtime image lacks: add its package to sidecar/Dockerfile and RUNTIME_LIBS" ;;
  esac
done
"$OUT/rendition" --version >/dev/null || die "$OUT/rendition --version failed"
printf 'build-sidecar: %s (%s profile) needs only %s\n' "$OUT/rendition" "$PROFILE" "$(echo $needed)"
