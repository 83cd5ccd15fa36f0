#!/bin/bash
# Receive and send throughput of uvxmpp against libstrophe, in one run.
#
#   bench/run-flood.sh [BUILD_DIR]      (default: build; it builds nothing)
#
# Environment: MESSAGES (default 1000000) messages per run, RUNS (default 3)
# runs of each client, interleaved; the best run of each counts, which
# keeps the comparison fair on a machine other work is also using.
#
# Starts bench/floodserver in flood mode on a free 127.0.0.1 port, runs
# flood and flood_strophe against it, and flood_bare (bare libxml2 fed from
# the socket) against a raw-mode server, then a sink-mode server with
# sendbench and send_strophe, and times a bare libxml2 parse of the same
# flood bytes in memory. Prints every tool's RESULT line, a line with the
# same figures computed from CPU time (N / cpu_s, less sensitive to a busy
# machine), and last
#   RESULT flood_uvx=R1 flood_strophe=R2 flood_ratio=R1/R2 flood_vs_bare=R1/Rbare
#          send_uvx=S1 send_strophe=S2 send_ratio=S1/S2
#          flood_bare_socket=Rs flood_vs_bare_socket=R1/Rs
# (one line). Goals: flood_ratio >= 3.5, flood_vs_bare >= 0.75.
# flood_vs_bare_socket says how much of what the socket path allows at all
# (kernel copies, the server sharing the machine) uvxmpp keeps.
set -u

BUILD=${1:-build}
MESSAGES=${MESSAGES:-1000000}
RUNS=${RUNS:-3}
BENCH=$BUILD/bench
CLIENT_TIMEOUT=300
LOGIN=(--allow-plain)
JID=bench@localhost
PASSWORD=secret

for exe in floodserver flood flood_bare sendbench; do
    if [ ! -x "$BENCH/$exe" ]; then
        echo "run-flood.sh: $BENCH/$exe is missing; build it first (ninja -C $BUILD)" >&2
        exit 1
    fi
done
HAVE_STROPHE=1
if [ ! -x "$BENCH/flood_strophe" ] || [ ! -x "$BENCH/send_strophe" ]; then
    echo "run-flood.sh: libstrophe twins not built; comparing nothing" >&2
    HAVE_STROPHE=0
fi

TMP=$(mktemp -d)
SERVER_PIDS=()
# shellcheck disable=SC2317 # runs from the EXIT trap
cleanup() {
    for pid in "${SERVER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

# start_server MODE: starts floodserver and sets PORT (generating a million
# messages takes a moment, so wait for its PORT line).
start_server() {
    local mode=$1 out=$TMP/server-$1.out
    "$BENCH/floodserver" --port 0 --messages "$MESSAGES" --mode "$mode" \
        >"$out" 2>"$TMP/server-$mode.err" &
    SERVER_PIDS+=($!)
    PORT=
    for _ in $(seq 600); do
        PORT=$(awk '/^PORT /{print $2; exit}' "$out")
        [ -n "$PORT" ] && return 0
        kill -0 "$!" 2>/dev/null || break
        sleep 0.1
    done
    echo "run-flood.sh: floodserver --mode $mode did not start" >&2
    cat "$TMP/server-$mode.err" >&2
    exit 1
}

FAILED=0
# run_client NAME EXE [ARGS...]: runs one client, prints its RESULT line and
# records its rate in BEST_NAME (the best so far) and its CPU rate in
# BEST_CPU_NAME.
declare -A BEST BEST_CPU
run_client() {
    local name=$1 exe=$2
    shift 2
    local line
    line=$(timeout "$CLIENT_TIMEOUT" "$BENCH/$exe" "$@" 2>"$TMP/$name.err" | grep '^RESULT ')
    local rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
        echo "$name: FAILED (exit $rc)"
        sed 's/^/  /' "$TMP/$name.err"
        FAILED=1
        return
    fi
    echo "$name: $line"
    local rate cpu_rate
    rate=$(sed -n 's/.*msgs_per_s=\([0-9.]*\).*/\1/p' <<<"$line")
    cpu_rate=$(awk '{for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                    printf "%.0f", (v["cpu_s"] > 0 ? v["messages"] / v["cpu_s"] : 0) }' \
                   <<<"$line")
    if [ -z "${BEST[$name]:-}" ] || [ "$rate" -gt "${BEST[$name]}" ]; then
        BEST[$name]=$rate
    fi
    if [ -z "${BEST_CPU[$name]:-}" ] || [ "$cpu_rate" -gt "${BEST_CPU[$name]}" ]; then
        BEST_CPU[$name]=$cpu_rate
    fi
}

echo "# $MESSAGES messages per run, best of $RUNS runs; $(nproc) CPUs," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg)"

start_server raw
RAW_PORT=$PORT
start_server flood
FLOOD_ARGS=("${LOGIN[@]}" "tcp://127.0.0.1:$PORT" "$JID" "$PASSWORD")
for _ in $(seq "$RUNS"); do
    run_client flood_uvx flood "${FLOOD_ARGS[@]}"
    [ "$HAVE_STROPHE" = 1 ] && run_client flood_strophe flood_strophe "${FLOOD_ARGS[@]}"
    run_client flood_bare_socket flood_bare "$RAW_PORT" "$MESSAGES"
done

start_server sink
SEND_ARGS=("${LOGIN[@]}" "tcp://127.0.0.1:$PORT" "$JID" "$PASSWORD" --messages "$MESSAGES")
for _ in $(seq "$RUNS"); do
    run_client send_uvx sendbench "${SEND_ARGS[@]}"
    [ "$HAVE_STROPHE" = 1 ] && run_client send_strophe send_strophe "${SEND_ARGS[@]}"
done

# The in-memory bare parse too counts its best of RUNS runs, like the clients.
BARE=0
BARE_CPU=0
for _ in $(seq "$RUNS"); do
    BARE_LINE=$("$BENCH/floodserver" --bare-parse --messages "$MESSAGES" | grep '^RESULT ')
    echo "bare_libxml2: $BARE_LINE"
    rate=$(sed -n 's/.*bare_msgs_per_s=\([0-9]*\).*/\1/p' <<<"$BARE_LINE")
    cpu_rate=$(sed -n 's/.*bare_cpu_msgs_per_s=\([0-9]*\).*/\1/p' <<<"$BARE_LINE")
    [ -n "$rate" ] && [ "$rate" -gt "$BARE" ] && BARE=$rate
    [ -n "$cpu_rate" ] && [ "$cpu_rate" -gt "$BARE_CPU" ] && BARE_CPU=$cpu_rate
done

for f in "$TMP"/server-*.err; do
    sed 's/^/server: /' "$f"
done

# ratio A B: A/B with 3 decimals, or n/a when either is not a positive number.
ratio() {
    if [[ "${1:-}" =~ ^[0-9]+$ ]] && [[ "${2:-}" =~ ^[1-9][0-9]*$ ]]; then
        awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'
    else
        printf "n/a"
    fi
}
# summary PREFIX RATES BARE: prints the summary line from one set of rates.
summary() {
    local prefix=$1 bare=$3
    local -n rates=$2
    local fu=${rates[flood_uvx]:-n/a} fs=${rates[flood_strophe]:-n/a}
    local su=${rates[send_uvx]:-n/a} ss=${rates[send_strophe]:-n/a}
    local fb=${rates[flood_bare_socket]:-n/a}
    echo "$prefix flood_uvx=$fu flood_strophe=$fs flood_ratio=$(ratio "$fu" "$fs")" \
        "flood_vs_bare=$(ratio "$fu" "$bare") send_uvx=$su send_strophe=$ss" \
        "send_ratio=$(ratio "$su" "$ss") flood_bare_socket=$fb" \
        "flood_vs_bare_socket=$(ratio "$fu" "$fb")"
}
summary "CPU-TIME" BEST_CPU "$BARE_CPU"
summary "RESULT" BEST "$BARE"
exit $FAILED
