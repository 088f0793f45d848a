#!/usr/bin/env bash
# `make demo`: start the demo origin, the sidecar and Envoy with the Rendition filter; load the
# demo page through Envoy as four real clients (originals, and the filter asks the sidecar for
# variants), wait, load it again (each client gets its variant); then keep running until Ctrl-C
# (which stops all three).
#   RENDITION_DEMO_ONCE=1 scripts/demo.sh   # show, then stop (used by the tests)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ORIGIN_PORT=8080 ENVOY_PORT=10000 ADMIN_PORT=9901 SIDECAR_PORT=8181
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# The demo runs the release build; tests pass RENDITION_BIN (the debug build they already have).
RENDITION="${RENDITION_BIN:-$TARGET_DIR/release/rendition}"
RUN_DIR="$ROOT/.run"
mkdir -p "$RUN_DIR"
pids=()

say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }
die() { printf 'demo: ERROR: %s\n' "$*" >&2; exit 1; }

stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap 'if ((${#pids[@]})); then stop_all; say "stopped origin, sidecar and Envoy"; fi' EXIT
trap 'exit 130' INT TERM

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $ORIGIN_PORT $ENVOY_PORT $ADMIN_PORT $SIDECAR_PORT; do
  if port_taken "$p"; then
    die "port $p on 127.0.0.1 is already in use (origin $ORIGIN_PORT, sidecar $SIDECAR_PORT, Envoy $ENVOY_PORT, admin $ADMIN_PORT); stop what holds it: ss -ltnp 'sport = :$p'"
  fi
done

[[ -f dist/rendition_filter.wasm ]] || die "dist/rendition_filter.wasm missing: run make wasm"
[[ -x $RENDITION ]] || die "$RENDITION missing: run make build"

say "origin: examples/site on http://127.0.0.1:$ORIGIN_PORT (python3 http.server)"
python3 -m http.server "$ORIGIN_PORT" --bind 127.0.0.1 --directory examples/site \
  >"$RUN_DIR/origin.log" 2>&1 &
pids+=($!)

say "sidecar: http://127.0.0.1:$SIDECAR_PORT (store .run/sidecar-data, proactive variants on)"
rm -rf "$RUN_DIR/sidecar-data"
"$RENDITION" serve --listen "127.0.0.1:$SIDECAR_PORT" --data-dir "$RUN_DIR/sidecar-data" \
  --origin "http://127.0.0.1:$ORIGIN_PORT" --proactive-image-variants >"$RUN_DIR/sidecar.log" 2>&1 &
pids+=($!)

say "envoy: http://127.0.0.1:$ENVOY_PORT (admin :$ADMIN_PORT), filter dist/rendition_filter.wasm"
.tools/bin/envoy -c envoy/envoy.yaml --log-level warn >"$RUN_DIR/envoy.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$ADMIN_PORT/ready" >/dev/null 2>&1 && port_taken $ORIGIN_PORT && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$ADMIN_PORT/ready" >/dev/null || die "Envoy did not become ready; see $RUN_DIR/envoy.log"
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$SIDECAR_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$SIDECAR_PORT/healthz" >/dev/null || die "sidecar did not start; see $RUN_DIR/sidecar.log"

IMAGES=(/img/garden.jpg /img/rocket.jpg /img/coffee.png /img/logo.png /img/screenshot.png /img/pan.gif)
CLIENTS=("desktop Chrome (AVIF)" "Android Chrome 80 (WebP only)" "iPhone Safari, Save-Data" "curl")
client_args() { # client name -> curl header arguments
  case $1 in
    "desktop Chrome (AVIF)") printf '%s\0' -H 'Accept: image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8' \
      -H 'User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36' ;;
    "Android Chrome 80 (WebP only)") printf '%s\0' -H 'Accept: image/webp,image/apng,image/*,*/*;q=0.8' \
      -H 'User-Agent: Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/80.0.3987.99 Mobile Safari/537.36' ;;
    "iPhone Safari, Save-Data") printf '%s\0' -H 'Accept: image/webp,image/avif,image/*;q=0.8' -H 'Save-Data: on' \
      -H 'User-Agent: Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1' ;;
    curl) printf '%s\0' -H 'Accept: */*' ;;
  esac
}
# One page load by one client: every image through Envoy; prints a line per image.
load_page() { # client
  local args img out
  mapfile -d '' args < <(client_args "$1")
  curl -fs -o /dev/null "${args[@]}" "http://127.0.0.1:$ENVOY_PORT/"
  for img in "${IMAGES[@]}"; do
    out=$(curl -s -o /dev/null -w '%{size_download} %header{content-type}|%header{x-rendition}' "${args[@]}" \
      "http://127.0.0.1:$ENVOY_PORT$img")
    printf '  %-31s %-19s %9s vs %7s bytes  %-11s %s\n' "$1" "$img" "${out%% *}" "$(stat -c %s "examples/site$img")" \
      "$(cut -d' ' -f2- <<<"${out%%|*}")" "x-rendition: ${out#*|}"
  done
}

say "first page load through Envoy: the originals at once; the filter asks the sidecar for variants"
for c in "${CLIENTS[@]}"; do load_page "$c"; done
say "waiting for the sidecar to optimize the page's images and Envoy's index to catch up..."
stat_of() { curl -fs "http://127.0.0.1:$ADMIN_PORT/stats?filter=$1\$" | awk -F': ' '{print $2}'; }
for _ in $(seq 1 900); do
  # Done when every image was processed, nothing is queued or running, and Envoy's index has
  # applied the sidecar's newest change.
  read -r n depth seq < <(curl -fs "http://127.0.0.1:$SIDECAR_PORT/stats" |
    python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["images_processed"], s["queue_depth"], s["index_last_seq"])')
  if [[ $n -ge ${#IMAGES[@]} && $depth == 0 && $(stat_of wasmcustom.rendition.index.applied_seq) == "$seq" ]]; then break; fi
  sleep 0.2
done
echo
say "the same page a moment later: each client gets its own variant"
for c in "${CLIENTS[@]}"; do load_page "$c"; done
echo
say "filter stats: $(curl -fs "http://127.0.0.1:$ADMIN_PORT/stats?filter=wasmcustom.rendition.(hits|misses|notifies_sent)\$" | tr '\n' ' ')"
say "try:  curl -s -o /dev/null -D - -H 'Accept: image/avif,image/webp' http://127.0.0.1:$ENVOY_PORT/img/garden.jpg | grep -i -E 'x-rendition|content-(type|length)'"
say "      curl -s http://127.0.0.1:$SIDECAR_PORT/stats      curl -s 'http://127.0.0.1:$ADMIN_PORT/stats?filter=rendition'"
say "open: http://127.0.0.1:$ENVOY_PORT/   the demo page through Envoy"
say "      http://127.0.0.1:$SIDECAR_PORT/report   every variant beside its original, with bytes and SSIMULACRA2 scores"
say "Ctrl-C stops origin, sidecar and Envoy"

if [[ ${RENDITION_DEMO_ONCE:-0} == 1 ]]; then exit 0; fi
wait -n "${pids[@]}"
die "a demo process exited; see $RUN_DIR/*.log"
