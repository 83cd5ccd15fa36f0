#!/usr/bin/env bash
# The example programs as a user runs them (TAP): usage errors, failed
# logins that say why and exit non-zero quickly, and echobot answering
# sendecho through a real Prosody, then leaving on SIGTERM with status 0.
#   test_programs.sh BUILD_DIR
set -u
build=$1
here=$(cd "$(dirname "$0")" && pwd)
echobot=$build/examples/echobot
sendecho=$build/examples/sendecho
n=0
failures=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failures=$((failures + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }

tmp=$(mktemp -d)
dir=$tmp/prosody
cleanup() {
  [ -n "${bot:-}" ] && kill -KILL "$bot" 2>/dev/null
  bash "$here/servers/prosody.sh" stop "$dir" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT

# usage errors exit 2
"$echobot" --no-such-option a b c >/dev/null 2>"$tmp/err"; rc=$?
check "unknown option exits 2 with usage" test "$rc" = 2 -a -n "$(grep -i usage "$tmp/err")"
"$echobot" tcp://127.0.0.1:1 only-two >/dev/null 2>&1; rc=$?
check "missing arguments exit 2" test "$rc" = 2

# network failure: says why, non-zero, quickly
start=$SECONDS
timeout 20 "$echobot" --allow-plain tcp://127.0.0.1:1 alice@localhost x >/dev/null 2>"$tmp/err"; rc=$?
check "refused connection: non-zero exit, reason on stderr, within seconds" \
  test "$rc" != 0 -a "$rc" != 124 -a -n "$(grep connection-refused "$tmp/err")" -a $((SECONDS - start)) -lt 10

base=
for try in 1 2 3 4 5; do
  cand=$((20000 + (RANDOM % 400) * 10))
  if bash "$here/servers/prosody.sh" start "$dir" "$cand" >/dev/null 2>"$tmp/start.err"; then
    base=$cand; break
  fi
  rm -rf "$dir"
done
if [ -z "$base" ]; then
  not_ok "prosody started" "$(tail -5 "$tmp/start.err")"
  echo "1..$n"; exit 1
fi
service=tcp://127.0.0.1:$base

start=$SECONDS
timeout 20 "$echobot" --cafile "$dir/certs/localhost.crt" "$service" alice@localhost wrongpass >/dev/null 2>"$tmp/err"; rc=$?
check "wrong password: non-zero exit, AUTHFAIL on stderr, within seconds" \
  test "$rc" != 0 -a "$rc" != 124 -a -n "$(grep AUTHFAIL "$tmp/err")" -a $((SECONDS - start)) -lt 10

# the real thing
"$echobot" --cafile "$dir/certs/localhost.crt" "$service" alice@localhost/bot alicepass >"$tmp/bot.out" 2>&1 &
bot=$!
for i in $(seq 100); do grep -q '^bound:' "$tmp/bot.out" && break; sleep 0.1; done
check "echobot prints its status changes and bound JID" \
  grep -q '^bound: alice@localhost/bot' "$tmp/bot.out"
timeout 20 "$sendecho" --cafile "$dir/certs/localhost.crt" "$service" bob@localhost bobpass alice@localhost/bot \
  "ping & <pong> é" >"$tmp/send.out" 2>&1; rc=$?
check "sendecho gets its text echoed by echobot" \
  test "$rc" = 0 -a -n "$(grep 'echo from alice@localhost/bot: ping & <pong> é' "$tmp/send.out")"
# to the bare JID: reaches echobot because it sent initial presence
timeout 20 "$sendecho" --cafile "$dir/certs/localhost.crt" "$service" bob@localhost bobpass alice@localhost \
  "to the bare JID" >"$tmp/send2.out" 2>&1; rc=$?
check "a message to echobot's bare JID is echoed (initial presence sent)" \
  test "$rc" = 0 -a -n "$(grep 'to the bare JID' "$tmp/send2.out")"
kill -TERM "$bot"
for i in $(seq 100); do kill -0 "$bot" 2>/dev/null || break; sleep 0.1; done
wait "$bot"; rc=$?
bot=
check "SIGTERM: graceful disconnect, exit 0" \
  test "$rc" = 0 -a -n "$(grep 'DISCONNECTED' "$tmp/bot.out")"

# the same bot over WebSocket (RFC 7395) on Prosody's HTTP port, answering a TCP client
"$echobot" --allow-plain "ws://127.0.0.1:$((base + 2))/xmpp-websocket" alice@localhost/wsbot alicepass \
  >"$tmp/wsbot.out" 2>&1 &
bot=$!
for i in $(seq 100); do grep -q '^bound:' "$tmp/wsbot.out" && break; sleep 0.1; done
timeout 20 "$sendecho" --cafile "$dir/certs/localhost.crt" "$service" bob@localhost bobpass alice@localhost/wsbot \
  "over websocket" >"$tmp/send3.out" 2>&1; rc=$?
check "echobot over ws:// echoes sendecho's text" \
  test "$rc" = 0 -a -n "$(grep 'echo from alice@localhost/wsbot: over websocket' "$tmp/send3.out")"
kill -TERM "$bot"
for i in $(seq 100); do kill -0 "$bot" 2>/dev/null || break; sleep 0.1; done
wait "$bot"; rc=$?
bot=
check "echobot over ws://: SIGTERM, graceful disconnect, exit 0" \
  test "$rc" = 0 -a -n "$(grep 'DISCONNECTED' "$tmp/wsbot.out")"

# echobot over BOSH (http:// and https:// /http-bind), answering sendecho on TCP;
# plain http carries the login in the clear, so it needs --allow-plain
for bosh in "http://127.0.0.1:$((base + 2))/http-bind" "https://localhost:$((base + 3))/http-bind"; do
  plain=
  case $bosh in http:*) plain=--allow-plain ;; esac
  "$echobot" $plain --cafile "$dir/certs/localhost.crt" "$bosh" alice@localhost/boshbot alicepass >"$tmp/bosh.out" 2>&1 &
  bot=$!
  for i in $(seq 100); do grep -q '^bound:' "$tmp/bosh.out" && break; sleep 0.1; done
  timeout 20 "$sendecho" --cafile "$dir/certs/localhost.crt" "$service" bob@localhost bobpass \
    alice@localhost/boshbot "over bosh" >"$tmp/send3.out" 2>&1; rc=$?
  check "echobot over $bosh echoes sendecho's text" \
    test "$rc" = 0 -a -n "$(grep 'echo from alice@localhost/boshbot: over bosh' "$tmp/send3.out")"
  kill -TERM "$bot"
  for i in $(seq 100); do kill -0 "$bot" 2>/dev/null || break; sleep 0.1; done
  wait "$bot"; rc=$?
  bot=
  check "echobot over $bosh: SIGTERM, graceful terminate, exit 0" \
    test "$rc" = 0 -a -n "$(grep 'DISCONNECTED' "$tmp/bosh.out")"
done

# echobot over direct TLS (xmpps://, verified with --cafile), answering sendecho on STARTTLS
"$echobot" --cafile "$dir/certs/localhost.crt" "xmpps://127.0.0.1:$((base + 1))" \
  alice@localhost/tlsbot alicepass >"$tmp/tlsbot.out" 2>&1 &
bot=$!
for i in $(seq 100); do grep -q '^bound:' "$tmp/tlsbot.out" && break; sleep 0.1; done
timeout 20 "$sendecho" --cafile "$dir/certs/localhost.crt" "$service" bob@localhost bobpass \
  alice@localhost/tlsbot "over xmpps" >"$tmp/send4.out" 2>&1; rc=$?
check "echobot over xmpps:// echoes sendecho's text" \
  test "$rc" = 0 -a -n "$(grep 'echo from alice@localhost/tlsbot: over xmpps' "$tmp/send4.out")"
kill -TERM "$bot"
for i in $(seq 100); do kill -0 "$bot" 2>/dev/null || break; sleep 0.1; done
wait "$bot"; rc=$?
bot=
check "echobot over xmpps://: SIGTERM, graceful disconnect, exit 0" \
  test "$rc" = 0 -a -n "$(grep 'DISCONNECTED' "$tmp/tlsbot.out")"

echo "1..$n"
[ "$failures" = 0 ]
