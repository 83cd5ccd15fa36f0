#!/usr/bin/env bash
# Opens N idle sessions (default 100 000) against bench/idleserver on
# 127.0.0.1 and prints idle's RESULT line (RSS per session).
#   bench/run-idle.sh [BUILD_DIR] [N]
set -euo pipefail
build=${1:-build}
n=${2:-100000}
out=$(mktemp)
"$build/bench/idleserver" >"$out" &
server=$!
trap 'kill "$server" 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 100); do grep -q '^PORT' "$out" && break; sleep 0.05; done
port=$(awk '/^PORT/ {print $2}' "$out")
timeout 600 "$build/bench/idle" --allow-plain "tcp://127.0.0.1:$port" idle@localhost x "$n"
