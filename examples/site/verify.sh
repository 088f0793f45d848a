#!/usr/bin/env bash
# Replays examples/site/README.md (what `make demo` shows) with the real Envoy 1.40 + filter,
# the real sidecar and the demo origin, and checks what the README promises:
#   1. a taken port stops the demo with a clear error before anything starts;
#   2. the first page load gets the originals with `x-rendition: miss` and each client's mask;
#   3. the second gets every client its own variant, smaller than the original (the animated
#      GIF stays a GIF for curl, which accepts no WebP);
#   4. the README's curl line shows the variant headers, /report lists the six images;
#   5. Ctrl-C (SIGINT to the demo's process group, as a terminal sends it) stops all three
#      and frees the ports.
#   RENDITION_BIN=path/to/rendition examples/site/verify.sh   (make test passes the debug build)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "site/verify: FAIL $*"; }
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in 8080 8181 9901 10000; do
  port_taken $p && { echo "site/verify: port $p is in use; the demo needs 8080 8181 9901 10000"; exit 1; }
done

# 1. A taken port: a clear error, nothing started.
python3 -c 'import socket,time; s=socket.socket(); s.bind(("127.0.0.1",8080)); s.listen(); time.sleep(30)' &
holder=$!
for _ in $(seq 50); do port_taken 8080 && break; sleep 0.1; done
if out=$(RENDITION_DEMO_ONCE=1 scripts/demo.sh 2>&1); then
  bad "the demo started although port 8080 was taken"
elif grep -q "port 8080 on 127.0.0.1 is already in use" <<<"$out"; then ok; else bad "unclear error: $out"; fi
kill $holder; wait $holder 2>/dev/null || true

# 2-4. The demo, running until Ctrl-C, in its own process group (job control on).
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set -m
scripts/demo.sh >"$log" 2>&1 &
demo=$!
set +m
for _ in $(seq 1800); do grep -q "Ctrl-C stops" "$log" && break; kill -0 $demo 2>/dev/null || break; sleep 0.2; done
out=$(cat "$log")
grep -q "Ctrl-C stops" <<<"$out" || { printf '%s\n' "$out"; kill -INT -- -$demo 2>/dev/null; echo "site/verify: the demo did not come up"; exit 1; }

first=$(sed -n '/first page load/,/waiting for the sidecar/p' <<<"$out")
second=$(sed -n '/a moment later/,/filter stats/p' <<<"$out")
for want in "desktop Chrome (AVIF).*miss; mask=0x0a" "Android Chrome 80 (WebP only).*miss; mask=0x01" \
  "iPhone Safari, Save-Data.*miss; mask=0x32" "curl .*miss; mask=0x08"; do
  if grep -q -- "$want" <<<"$first"; then ok; else bad "first load: missing $want"; fi
done
hits=0
while read -r got orig line; do
  if [[ $line == *"x-rendition: hit"* ]] && ((got < orig)); then
    hits=$((hits + 1))
  elif [[ $line == "/img/pan.gif"*"x-rendition: miss; mask=0x08"* ]] && ((got == orig)); then
    ok
  else
    bad "second load: $line"
  fi
done < <(grep -E '/img/' <<<"$second" | sed -E 's/^.*(\/img\/[a-z]+\.[a-z]+) +([0-9]+) vs +([0-9]+) bytes(.*)$/\2 \3 \1\4/')
if ((hits == 23)); then ok; else bad "second load: $hits of 23 hits"; fi
grep -q "avif .*variant=0x0a" <<<"$(grep 'desktop Chrome.*garden' <<<"$second")" && ok || bad "desktop Chrome got no AVIF"
grep -q "webp .*variant=0x01" <<<"$(grep 'Android.*pan.gif' <<<"$second")" && ok || bad "the GIF got no animated WebP"

# The README's curl line.
headers=$(curl -s -o /dev/null -D - -H 'Accept: image/avif,image/webp' http://127.0.0.1:10000/img/garden.jpg |
  grep -i -E 'x-rendition|content-(type|length)' | tr -d '\r')
grep -q "^x-rendition: hit; mask=0x0a; variant=0x0a; step=exact$" <<<"$headers" && grep -qi "^content-type: image/avif$" <<<"$headers" &&
  ok || bad "README curl line: $headers"
sections=$(curl -s http://127.0.0.1:8181/report | grep -o '<section class=source' | wc -l)
((sections == 6)) && ok || bad "/report shows $sections sources, not 6"

# 5. Ctrl-C.
kill -INT -- -$demo
code=0
wait $demo || code=$?
grep -q "stopped origin, sidecar and Envoy" "$log" && ((code == 130)) && ok || bad "Ctrl-C: exit $code, $(tail -2 "$log")"
for p in 8080 8181 9901 10000; do
  for _ in $(seq 50); do port_taken $p || break; sleep 0.1; done
  port_taken $p && bad "port $p still taken after Ctrl-C" || ok
done

((fail == 0)) || printf '%s\n' "$out"
echo "site/verify: $pass passed, $fail failed"
((fail == 0))
