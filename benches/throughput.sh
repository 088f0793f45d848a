#!/usr/bin/env bash
# Full-matrix images per minute and peak RSS of the real sidecar service.
#
#   benches/throughput.sh FILE N
#
# A local origin (python3 http.server on 127.0.0.1:18080) serves FILE under N distinct URLs
# (?n=1..N: distinct sources to the sidecar); `rendition serve` (release build, proactive
# variants on, one worker per core, on 127.0.0.1:18181) is notified once per URL and we wait
# until it has processed all N. Prints images/minute and the sidecar's VmHWM. Stops by itself.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
file=$(realpath "$1")
n=${2:-4}
bin="${CARGO_TARGET_DIR:-$ROOT/target}/release/rendition"
[[ -x $bin ]] || { echo "throughput: build first (cargo build --release -p rendition-sidecar)" >&2; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/site"
cp "$file" "$work/site/photo.jpg"
python3 -m http.server 18080 --bind 127.0.0.1 --directory "$work/site" >/dev/null 2>&1 &
pids+=($!)
"$bin" serve --listen 127.0.0.1:18181 --data-dir "$work/data" --origin http://127.0.0.1:18080 \
  --proactive-image-variants --cache-size-bytes 10000000000 >"$work/sidecar.log" 2>&1 &
sidecar=$!
pids+=($sidecar)
for _ in $(seq 100); do
  curl -fs 127.0.0.1:18181/healthz >/dev/null 2>&1 && curl -fs -o /dev/null 127.0.0.1:18080/photo.jpg && break
  sleep 0.1
done
start=$(date +%s.%N)
for i in $(seq "$n"); do
  curl -fs -o /dev/null -X POST 127.0.0.1:18181/notify -H 'content-type: application/json' \
    -d "{\"host\":\"bench.local\",\"path\":\"/photo.jpg?n=$i\",\"mask\":1}"
done
deadline=$(( $(date +%s) + 1800 ))
while :; do
  read -r done_n failed < <(curl -fs 127.0.0.1:18181/stats |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["images_processed"], d["fetch_errors"] + d["images_refused"])')
  [[ $done_n -ge $n ]] && break
  ((failed == 0)) || { echo "throughput: $failed sources failed; see the log:" >&2; tail -5 "$work/sidecar.log" >&2; exit 1; }
  (( $(date +%s) < deadline )) || { echo "throughput: timed out" >&2; exit 1; }
  sleep 0.2
done
end=$(date +%s.%N)
rss=$(awk '/VmHWM/ {print $2}' "/proc/$sidecar/status")
stats=$(curl -fs 127.0.0.1:18181/stats)
python3 - "$start" "$end" "$n" "$rss" "$stats" "$(basename "$file")" <<'PY'
import json, sys
start, end, n, rss, stats, name = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5]), sys.argv[6]
secs = end - start
print(f"| {name} | {n} | {secs:.1f} s | {n * 60 / secs:.1f} | {stats['variants_written'] // n} encodes / 36 slots | {rss // 1024} MB |")
PY
