#!/usr/bin/env bash
# `make fuzz`: runs each cargo-fuzz target (fuzz/fuzz_targets/) for a bounded time, and exits
# non-zero when any of them finds a crash, a timeout or an out-of-memory. Idempotent: installs
# cargo-fuzz when it is missing, seeds each corpus from real inputs, then fuzzes.
#
#   scripts/fuzz.sh                         # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh sniff_decode
#
# Targets (see each file's header):
#   mask_parse    request head -> classify, ClientProfile::from_headers, SourceKey, select
#   index_record  index record / entry / feed page / table meta / bucket bytes, sync::follow
#   notify_parse  POST /notify body -> rendition_shared::wire::Notify
#   sniff_decode  sniff -> probe limits -> decode -> ICC -> orientation (mozjpeg, image, lcms2)
#
# Environment:
#   FUZZ_SECONDS=60        run time per target (libFuzzer -max_total_time)
#   FUZZ_TIMEOUT=10        seconds one input may take before it counts as a hang (-timeout)
#   FUZZ_RSS_MB=2048       memory limit (-rss_limit_mb; also the largest single malloc)
#   FUZZ_TOOLCHAIN=nightly toolchain cargo-fuzz builds with (sanitizers need nightly)
#   FUZZ_SANITIZER=address sanitizer for every target; FUZZ_SANITIZER_<target> for one
#   FUZZ_NICE=10           nice level of builds and runs (0 to not renice)
#
# The corpus grows in fuzz/corpus/<target>/ (git-ignored; seeds come from fuzz/seeds/ and
# tests/headers/browsers.toml), crashers land in fuzz/artifacts/<target>/. A fixed crasher is
# kept as a test in its crate's tests/ (shared/tests/fuzz_regressions.rs,
# sidecar/tests/pipeline_hostile.rs, ...). Builds go to ~/.cache/rendition/fuzz-target when
# that directory exists (mkdir it to opt in), else fuzz/target.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf 'fuzz: %s\n' "$*"; }

FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
FUZZ_TIMEOUT="${FUZZ_TIMEOUT:-10}"
FUZZ_RSS_MB="${FUZZ_RSS_MB:-2048}"
FUZZ_TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
FUZZ_SANITIZER="${FUZZ_SANITIZER:-address}"
FUZZ_NICE="${FUZZ_NICE:-10}"
ALL_TARGETS=(mask_parse index_record notify_parse sniff_decode)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

PERSISTENT_TARGET="$HOME/.cache/rendition/fuzz-target"
if [ -z "${CARGO_TARGET_DIR_FUZZ:-}" ]; then
  if [ -d "$PERSISTENT_TARGET" ]; then CARGO_TARGET_DIR_FUZZ="$PERSISTENT_TARGET"; else CARGO_TARGET_DIR_FUZZ="$ROOT/fuzz/target"; fi
fi
export CARGO_TARGET_DIR="$CARGO_TARGET_DIR_FUZZ"

# --- tools ---------------------------------------------------------------------------------
if ! rustup run "$FUZZ_TOOLCHAIN" rustc --version >/dev/null 2>&1; then
  say "installing the $FUZZ_TOOLCHAIN toolchain"
  rustup toolchain install "$FUZZ_TOOLCHAIN" --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
NICE=()
if [ "$FUZZ_NICE" != 0 ]; then NICE=(nice -n "$FUZZ_NICE"); fi

# --- corpora -------------------------------------------------------------------------------
for t in "${TARGETS[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  if [ -d "fuzz/seeds/$t" ]; then cp -n "fuzz/seeds/$t"/* "fuzz/corpus/$t"/ 2>/dev/null || true; fi
done
if [[ " ${TARGETS[*]} " == *" mask_parse "* ]]; then
  # One request per browsers.toml case: 8 bytes of stored slots, then the request head.
  python3 - "$ROOT/tests/headers/browsers.toml" "$ROOT/fuzz/corpus/mask_parse" <<'EOF'
import sys, tomllib, struct
cases = tomllib.load(open(sys.argv[1], "rb"))["case"]
valid = [i for i in range(64) if (i >> 2) & 3 != 3 and (i & 3 != 3 or i == 0x0B)]
every = sum(1 << i for i in valid)
no_avif = sum(1 << i for i in valid if i & 3 != 2)
for n, case in enumerate(cases):
    stored = (every, 0, no_avif, 1 << 0x08)[n % 4]
    head = "GET /img/photo-%d.jpg?w=%d\nHost: shop.example\n" % (n, n)
    head += "".join("%s: %s\n" % (k, v) for k, v in case["headers"])
    with open("%s/browsers-%03d" % (sys.argv[2], n), "wb") as f:
        f.write(struct.pack("<Q", stored) + head.encode())
EOF
fi

# --- build, then fuzz each target ------------------------------------------------------------
sanitizer_for() { local v="FUZZ_SANITIZER_$1"; echo "${!v:-$FUZZ_SANITIZER}"; }
extra_args() {
  case "$1" in
    sniff_decode) echo "-max_len=32768" ;;
    *) echo "-max_len=4096" ;;
  esac
}
LOGS="$ROOT/fuzz/artifacts/logs"
mkdir -p "$LOGS"
failed=()
summary=()
for t in "${TARGETS[@]}"; do
  san="$(sanitizer_for "$t")"
  start=$(date +%s)
  "${NICE[@]}" cargo "+$FUZZ_TOOLCHAIN" fuzz build -s "$san" "$t"
  say "$t: built in $(($(date +%s) - start)) s (sanitizer $san)"
  mkdir -p "fuzz/artifacts/$t"
  dict=()
  if [ -f "fuzz/dicts/$t.dict" ]; then dict=("-dict=$ROOT/fuzz/dicts/$t.dict"); fi
  set +e
  # shellcheck disable=SC2046
  "${NICE[@]}" cargo "+$FUZZ_TOOLCHAIN" fuzz run -s "$san" "$t" "$ROOT/fuzz/corpus/$t" -- \
    -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" -rss_limit_mb="$FUZZ_RSS_MB" \
    -print_final_stats=1 "${dict[@]}" $(extra_args "$t") 2>&1 | tee "$LOGS/$t.log" |
    grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|==[0-9]+==|SUMMARY|Test unit written|stat::number_of_executed_units|stat::average_exec_per_sec|thread .* panicked)'
  rc=${PIPESTATUS[0]}
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOGS/$t.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$LOGS/$t.log" | tail -1)
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    summary+=("$t: FAILED (exit $rc), ${runs:-?} runs; crasher in fuzz/artifacts/$t/, log $LOGS/$t.log")
  else
    summary+=("$t: ok, ${runs:-?} runs in ${FUZZ_SECONDS} s (${rate:-?} exec/s)")
  fi
done
for s in "${summary[@]}"; do say "$s"; done
if [ ${#failed[@]} -gt 0 ]; then
  say "FAILED: ${failed[*]}"
  exit 1
fi
say "all targets ran ${FUZZ_SECONDS} s without a crash"
