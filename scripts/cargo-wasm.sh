#!/usr/bin/env bash
# Run cargo for wasm32-wasip1, passing all arguments through:
#
#   scripts/cargo-wasm.sh build --release -p rendition-filter
#   scripts/cargo-wasm.sh clippy -p rendition-shared -- -D warnings
#
# Route 1 (rustup): if rustup has the wasm32-wasip1 target installed, this is just
#   `cargo <args> --target wasm32-wasip1`.
# Route 2 (Debian, installed by scripts/setup.sh): /usr/bin/cargo + /usr/bin/rustc (rustc-web)
#   with RUSTC_BOOTSTRAP=1 and -Zbuild-std=std,panic_abort (Debian ships no prebuilt wasm std;
#   it is built from rust-web-src), linking libc from wasi-libc in /usr/lib/wasm32-wasi.
#   rustup's directories are removed from PATH so no rustup proxy is picked up.
#   `clippy` runs Debian's rust-web-clippy (/usr/bin/cargo-clippy) directly; if that is not
#   installed, it falls back to `cargo check` with a note on stderr.
#
# Both routes build into their own target dir, $CARGO_TARGET_DIR/wasm (default <repo>/target/wasm),
# so the host and wasm toolchains never share fingerprints. Output:
#   <target-dir>/wasm/wasm32-wasip1/{debug,release}/*.wasm
set -euo pipefail

TARGET=wasm32-wasip1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if (($# == 0)); then
  echo "usage: $0 <cargo subcommand> [args...] [-- tool args]" >&2
  exit 2
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/wasm"

# Split the arguments at the first `--`: our flags go before it.
pre=() post=() seen_dd=0
for a in "$@"; do
  if ((seen_dd)); then post+=("$a")
  elif [[ $a == -- ]]; then seen_dd=1
  else pre+=("$a")
  fi
done
# First non-flag argument is the subcommand.
sub=""
for i in "${!pre[@]}"; do
  if [[ ${pre[$i]} != -* ]]; then sub=${pre[$i]}; sub_i=$i; break; fi
done

run() {
  # $1 = cargo binary; then extra flags inserted before `--`.
  local cargo=$1; shift
  if ((seen_dd)); then
    exec "$cargo" "${pre[@]}" "$@" -- "${post[@]}"
  else
    exec "$cargo" "${pre[@]}" "$@"
  fi
}

if command -v rustup >/dev/null 2>&1 && grep -qx "$TARGET" <<<"$(rustup target list --installed 2>/dev/null)"; then
  run cargo --target "$TARGET"
fi

# ---- Debian route
for f in /usr/bin/cargo /usr/bin/rustc /usr/bin/rust-lld; do
  [[ -e $f ]] || { echo "cargo-wasm: $f missing; run scripts/setup.sh" >&2; exit 1; }
done

# Drop rustup's bin dirs from PATH.
drop=("$HOME/.cargo/bin")
[[ -n ${CARGO_HOME:-} ]] && drop+=("${CARGO_HOME%/}/bin")
newpath=""
IFS=: read -ra parts <<<"$PATH"
for d in "${parts[@]}"; do
  skip=0
  for x in "${drop[@]}"; do [[ ${d%/} == "${x%/}" ]] && skip=1; done
  ((skip)) || newpath+="${newpath:+:}$d"
done
export PATH="$newpath"
unset RUSTUP_TOOLCHAIN
export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
wasi_flags="-L native=/usr/lib/wasm32-wasi"
export CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="${CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS:+$CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS }$wasi_flags"
# RUSTFLAGS, when set, overrides target rustflags entirely: add ours there too.
[[ -n ${RUSTFLAGS:-} ]] && export RUSTFLAGS="$RUSTFLAGS $wasi_flags"

if [[ $sub == clippy ]]; then
  if [[ -x /usr/bin/cargo-clippy ]]; then
    # Call Debian's cargo-clippy directly: `cargo clippy` would find rustup's proxy
    # first, because cargo looks up subcommands in $CARGO_HOME/bin before PATH.
    export CARGO=/usr/bin/cargo
    run /usr/bin/cargo-clippy -Zbuild-std=std,panic_abort --target "$TARGET"
  fi
  echo "cargo-wasm: no clippy for Debian rustc-web (apt install rust-web-clippy); running cargo check instead" >&2
  pre[sub_i]=check
  # clippy's own args after `--` (e.g. -D warnings) mean nothing to check.
  seen_dd=0 post=()
fi

run /usr/bin/cargo -Zbuild-std=std,panic_abort --target "$TARGET"
