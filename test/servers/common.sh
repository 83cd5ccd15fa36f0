# shellcheck shell=bash
# Helpers shared by prosody.sh and ejabberd.sh (sourced, not run).
#
# Port layout for a BASE port: BASE c2s (optional STARTTLS), BASE+1 direct
# TLS, BASE+2 HTTP (/http-bind, /xmpp-websocket), BASE+3 HTTPS, BASE+4
# ejabberd's Erlang distribution port.

die() {
    echo "$SERVER_KIND.sh: $*" >&2
    exit 1
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_accepts() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Dies when something already listens on one of the $2 ports from $1 up:
# the new server could not bind it, yet wait_ports would see it accept.
check_ports_free() {
    local port
    for port in $(seq "$1" $(($1 + $2 - 1))); do
        if port_accepts "$port"; then
            die "127.0.0.1:$port is in use (another server?); choose another BASEPORT"
        fi
    done
}

# The server scripts may redefine this to spot a failed start in their logs.
start_failed() {
    return 1
}

# Waits until every port given accepts, for at most $1 seconds, while the
# process $2 is alive. Returns 1 on timeout or when the process died.
wait_ports() {
    local limit=$1 pid=$2 deadline port ok
    shift 2
    deadline=$((SECONDS + limit))
    while [ "$SECONDS" -lt "$deadline" ]; do
        kill -0 "$pid" 2>/dev/null || return 1
        start_failed && return 1
        ok=1
        for port in "$@"; do
            port_accepts "$port" || { ok=0; break; }
        done
        if [ "$ok" = 1 ]; then
            # A port may accept because someone else listens there.
            start_failed && return 1
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# Sends SIGTERM to $1 and waits up to $2 seconds for it to go, then SIGKILL.
# Works for processes that are not our children (no `wait` possible).
kill_and_wait() {
    local pid=$1 limit=$2 deadline
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    deadline=$((SECONDS + limit))
    while kill -0 "$pid" 2>/dev/null; do
        # A zombie still answers kill -0; treat it as gone.
        if [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ]; then
            return 0
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "$SERVER_KIND.sh: pid $pid ignored SIGTERM for ${limit}s, sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null
            sleep 0.2
            return 0
        fi
        sleep 0.05
    done
    return 0
}

# One self-signed certificate for every host name the tests use.
make_cert() {
    local dir=$1
    mkdir -p "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj '/CN=localhost' \
        -addext 'subjectAltName=DNS:localhost,DNS:anon.localhost,DNS:conference.localhost' \
        -keyout "$dir/localhost.key" -out "$dir/localhost.crt" >/dev/null 2>&1 ||
        die "openssl could not make a certificate in $dir"
}

# Kills the server when the process UVX_TEST_OWNER_PID (the test program)
# goes away without calling stop, so a crashed or timed-out test does not
# leave servers behind. Its pid goes to DIR/watchdog.pid.
start_watchdog() {
    local dir=$1 server_pid=$2 owner=${UVX_TEST_OWNER_PID:-}
    [ -n "$owner" ] || return 0
    (
        trap - TERM
        while kill -0 "$owner" 2>/dev/null && kill -0 "$server_pid" 2>/dev/null; do
            sleep 1
        done
        kill -TERM "$server_pid" 2>/dev/null
    ) </dev/null >/dev/null 2>&1 &
    echo $! >"$dir/watchdog.pid"
}

stop_watchdog() {
    local dir=$1
    [ -f "$dir/watchdog.pid" ] || return 0
    kill -TERM "$(cat "$dir/watchdog.pid")" 2>/dev/null
    rm -f "$dir/watchdog.pid"
}

check_base_port() {
    case $1 in
    '' | *[!0-9]*) die "BASEPORT must be a number" ;;
    esac
    if [ "$1" -lt 1024 ] || [ "$1" -gt 65530 ]; then
        die "BASEPORT must be in 1024..65530"
    fi
}

# Splits a USER:PASS argument into SPEC_USER and SPEC_PASS.
# shellcheck disable=SC2034 # the sourcing scripts read them
split_user_spec() {
    case $1 in
    *:*) ;;
    *) die "user spec '$1' is not USER:PASS" ;;
    esac
    SPEC_USER=${1%%:*}
    SPEC_PASS=${1#*:}
}

# Creates the instance directory $1 and sets SERVER_DIR to its absolute path;
# dies when a server still runs from it.
claim_server_dir() {
    mkdir -p "$1" || die "cannot create $1"
    SERVER_DIR=$(cd "$1" && pwd -P)
    if [ -f "$SERVER_DIR/server.pid" ] && kill -0 "$(cat "$SERVER_DIR/server.pid")" 2>/dev/null; then
        die "a server already runs from $SERVER_DIR"
    fi
}

# Reports why a start failed ($*) with the tail of the server's logs
# (print_log_tail), stops what was started (stop_failed_start) and exits.
fail_start() {
    echo "$SERVER_KIND.sh: $*; log tail:" >&2
    print_log_tail >&2 2>/dev/null
    stop_failed_start
    rm -f "$SERVER_DIR/server.pid"
    exit 1
}

# Waits until the server (pid $1) serves the c2s, direct TLS, HTTP and HTTPS
# ports from BASE ($2) up, or fails the start.
wait_client_ports() {
    local pid=$1 base=$2
    wait_ports "$START_TIMEOUT" "$pid" "$base" $((base + 1)) $((base + 2)) $((base + 3)) ||
        fail_start "$SERVER_KIND (pid $pid) failed to serve ports $base..$((base + 3))" \
            "(waited up to ${START_TIMEOUT}s)"
}

cmd_stop() {
    [ $# -eq 1 ] || die "usage: $SERVER_KIND.sh stop DIR"
    local dir=$1
    stop_watchdog "$dir"
    [ -f "$dir/server.pid" ] || return 0
    kill_and_wait "$(cat "$dir/server.pid")" "$STOP_TIMEOUT"
    rm -f "$dir/server.pid"
}

cmd_register() {
    [ $# -ge 2 ] || die "usage: $SERVER_KIND.sh register DIR USER:PASS ..."
    register_users "$@"
}

# Runs the command line. Each script defines cmd_start, register_users and,
# for fail_start, print_log_tail and stop_failed_start.
main() {
    case ${1:-} in
    start) shift && cmd_start "$@" ;;
    stop) shift && cmd_stop "$@" ;;
    register) shift && cmd_register "$@" ;;
    *)
        die "usage: $SERVER_KIND.sh start DIR BASEPORT [USER:PASS ...] | stop DIR |" \
            "register DIR USER:PASS ..."
        ;;
    esac
}
