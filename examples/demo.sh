#!/usr/bin/env bash
# The main job, end to end on one machine: install the dependencies, build,
# start a private Prosody on 127.0.0.1, run echobot as alice, have bob send
# it a message with sendecho, show the round trip, and shut everything down.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build examples/echobot examples/sendecho >/dev/null

dir=$(mktemp -d)
port=${DEMO_PORT:-17222}
cleanup() {
  [ -n "${bot:-}" ] && kill -INT "$bot" 2>/dev/null && wait "$bot" 2>/dev/null || true
  bash test/servers/prosody.sh stop "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
echo "starting Prosody on 127.0.0.1:$port"
bash test/servers/prosody.sh start "$dir" "$port" >/dev/null

service=tcp://127.0.0.1:$port
./build/examples/echobot --cafile "$dir/certs/localhost.crt" "$service" alice@localhost/echobot alicepass &
bot=$!
sleep 1
./build/examples/sendecho --cafile "$dir/certs/localhost.crt" "$service" bob@localhost bobpass \
  alice@localhost/echobot "Hello from bob — ünïcödé & <xml> ✓"
kill -INT "$bot"
wait "$bot"
bot=
