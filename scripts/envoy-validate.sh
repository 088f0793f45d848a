#!/usr/bin/env bash
# Validates envoy/envoy.yaml with the real Envoy against the built filter. `--mode validate`
# instantiates the V8 VMs and runs on_configure, so a module that traps or refuses its
# configuration fails here, not in production.
#   scripts/envoy-validate.sh [path/to/rendition_filter.wasm]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
wasm="${1:-dist/rendition_filter.wasm}"
envoy="$ROOT/.tools/bin/envoy"
[[ -x $envoy ]] || { echo "envoy-validate: $envoy missing; run scripts/setup.sh" >&2; exit 1; }
[[ -f $wasm ]] || { echo "envoy-validate: $wasm missing; run make wasm" >&2; exit 1; }
# The config names dist/rendition_filter.wasm; render a copy naming the module we were given.
config="$(mktemp --suffix=.yaml)"
trap 'rm -f "$config"' EXIT
sed "s#filename: dist/rendition_filter.wasm#filename: $(realpath "$wasm")#" envoy/envoy.yaml >"$config"
if out=$("$envoy" --mode validate -c "$config" --log-level warn 2>&1); then
  echo "envoy-validate: envoy/envoy.yaml OK with $(basename "$wasm") ($("$envoy" --version | grep -o '1\.[0-9]*\.[0-9]*' | head -1))"
else
  printf '%s\n' "$out" | tail -20 >&2
  echo "envoy-validate: envoy/envoy.yaml FAILED" >&2
  exit 1
fi
