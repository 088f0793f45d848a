#!/usr/bin/env bash
# `make demo`: start the demo origin and Envoy with the Rendition filter, show what the filter
# decides for a few real clients, then keep running until Ctrl-C (which stops everything).
#   RENDITION_DEMO_ONCE=1 scripts/demo.sh   # show, then stop (used by the tests)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ORIGIN_PORT=8080 ENVOY_PORT=10000 ADMIN_PORT=9901
RUN_DIR="$ROOT/.run"
mkdir -p "$RUN_DIR"
pids=()

say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }
die() { printf 'demo: ERROR: %s\n' "$*" >&2; exit 1; }

stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap 'if ((${#pids[@]})); then stop_all; say "stopped origin and Envoy"; fi' EXIT
trap 'exit 130' INT TERM

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $ORIGIN_PORT $ENVOY_PORT $ADMIN_PORT; do
  if port_taken "$p"; then
    die "port $p on 127.0.0.1 is already in use (origin $ORIGIN_PORT, Envoy $ENVOY_PORT, admin $ADMIN_PORT); stop what holds it: ss -ltnp 'sport = :$p'"
  fi
done

[[ -f dist/rendition_filter.wasm ]] || die "dist/rendition_filter.wasm missing: run make wasm"

say "origin: examples/site on http://127.0.0.1:$ORIGIN_PORT (python3 http.server)"
python3 -m http.server "$ORIGIN_PORT" --bind 127.0.0.1 --directory examples/site \
  >"$RUN_DIR/origin.log" 2>&1 &
pids+=($!)

say "envoy: http://127.0.0.1:$ENVOY_PORT (admin :$ADMIN_PORT), filter dist/rendition_filter.wasm"
.tools/bin/envoy -c envoy/envoy.yaml --log-level warn >"$RUN_DIR/envoy.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$ADMIN_PORT/ready" >/dev/null 2>&1 && port_taken $ORIGIN_PORT && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$ADMIN_PORT/ready" >/dev/null || die "Envoy did not become ready; see $RUN_DIR/envoy.log"

show() {
  local who=$1; shift
  local line
  line=$(curl -s -o /dev/null -D - "$@" "http://127.0.0.1:$ENVOY_PORT/img/rocket.jpg" |
    tr -d '\r' | grep -i '^x-rendition:' || echo "x-rendition: (none)")
  printf '  %-34s %s\n' "$who" "$line"
}
say "what the filter decides for /img/rocket.jpg:"
show "desktop Chrome (AVIF)" -H 'Accept: image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8' \
  -H 'User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36'
show "Android Chrome 80 (WebP only)" -H 'Accept: image/webp,image/apng,image/*,*/*;q=0.8' \
  -H 'User-Agent: Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/80.0.3987.99 Mobile Safari/537.36'
show "iPhone Safari, Save-Data" -H 'Accept: image/webp,image/avif,image/*;q=0.8' -H 'Save-Data: on' \
  -H 'User-Agent: Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1'
show "curl" -H 'Accept: */*'
echo
say "not there yet: the sidecar (variant generation and storage) and the filter's hit routing."
say "every image is served by the origin unchanged, so every image request says 'miss'."
say "try:  curl -sI -H 'Accept: image/webp' http://127.0.0.1:$ENVOY_PORT/img/coffee.png | grep x-rendition"
say "open: http://127.0.0.1:$ENVOY_PORT/   (Ctrl-C stops origin and Envoy)"

if [[ ${RENDITION_DEMO_ONCE:-0} == 1 ]]; then exit 0; fi
wait -n "${pids[@]}"
die "a demo process exited; see $RUN_DIR/origin.log and $RUN_DIR/envoy.log"
