#!/bin/bash
# Runs a throwaway ejabberd for the integration tests.
#
#   ejabberd.sh start DIR BASEPORT [USER:PASS ...]   prints the server pid
#   ejabberd.sh stop DIR
#   ejabberd.sh register DIR USER:PASS ...            (server must be running)
#
# DIR is private to one instance: config, certificate, Mnesia spool, logs.
# Ports: BASE c2s (optional STARTTLS), BASE+1 direct TLS, BASE+2 HTTP
# (/http-bind, /xmpp-websocket, /api), BASE+3 HTTPS, BASE+4 Erlang
# distribution (so no epmd is started and instances don't clash), all on
# 127.0.0.1 only. alice/alicepass and bob/bobpass always exist on "localhost".
#
# The pid printed and kept in DIR/server.pid is beam.smp's (the VM), never
# the ejabberdctl wrapper's: killing the wrapper would orphan the VM.
#
# Opt-in: UVX_EJABBERD_CLIENT_CA=/path/ca.crt makes the c2s listeners (BASE
# and BASE+1) ask for a client certificate, check it against that CA
# (tls_verify, cafile) and offer SASL EXTERNAL (XEP-0178). Unset: no change.
# shellcheck source-path=SCRIPTDIR
set -u
SERVER_KIND=ejabberd
. "$(dirname "$0")/common.sh"

START_TIMEOUT=60
STOP_TIMEOUT=20
SERVER_DIR=
WRAPPER_PID= # ejabberdctl foreground, which runs the VM

print_log_tail() {
    tail -n 30 "$SERVER_DIR/stdout.log" "$SERVER_DIR/logs/error.log"
}

# The VM may be up before its wrapper knows: stop both.
stop_failed_start() {
    if [ -s "$SERVER_DIR/ejabberd.pid" ]; then
        kill_and_wait "$(cat "$SERVER_DIR/ejabberd.pid")" "$STOP_TIMEOUT"
    fi
    kill_and_wait "$WRAPPER_PID" 5
}

write_ctl_config() {
    local dir=$1 base=$2
    cat >"$dir/ejabberdctl.cfg" <<EOF
# Written by test/servers/ejabberd.sh; sourced by DIR/ejabberdctl.
ERLANG_NODE=ejabberd$base@localhost
ERL_DIST_PORT=$((base + 4))
ERL_MAX_PORTS=65536
# Distribution on 127.0.0.1 only. Given as INET_DIST_INTERFACE, the wrapper
# would boot a whole extra VM just to parse the address (~1 s).
ERL_OPTIONS="-setcookie xmpptestcookie -kernel inet_dist_use_interface {127,0,0,1}"
ERL_OPTIONS="\$ERL_OPTIONS -env ERL_CRASH_DUMP_BYTES 0"
EJABBERD_BYPASS_WARNINGS=true
EJABBERD_PID_PATH=$dir/ejabberd.pid
EOF
    # ejabberdctl points ERL_INETRC at CONFIG_DIR/inetrc.
    cat >"$dir/inetrc" <<'EOF'
{lookup,["file","native"]}.
{host,{127,0,0,1}, ["localhost"]}.
EOF
}

# A copy of the wrapper that runs as the caller (the stock one re-executes
# itself through "su ejabberd" as root) with this instance's paths built in.
write_ctl_wrapper() {
    local dir=$1
    sed -e 's/^INSTALLUSER=.*/INSTALLUSER=/' \
        -e "s|^\\([[:space:]]*\\): \"\${CONFIG_DIR:=.*|\\1: \"\${CONFIG_DIR:=\"$dir\"}\"|" \
        -e "s|^\\([[:space:]]*\\): \"\${LOGS_DIR:=.*|\\1: \"\${LOGS_DIR:=\"$dir/logs\"}\"|" \
        -e "s|^\\([[:space:]]*\\): \"\${SPOOL_DIR:=.*|\\1: \"\${SPOOL_DIR:=\"$dir/db\"}\"|" \
        /usr/sbin/ejabberdctl >"$dir/ejabberdctl" || die "cannot copy /usr/sbin/ejabberdctl"
    if ! grep -q "^INSTALLUSER=\$" "$dir/ejabberdctl" ||
        ! grep -q "CONFIG_DIR:=\"$dir\"" "$dir/ejabberdctl"; then
        die "/usr/sbin/ejabberdctl has an unexpected layout; cannot patch it"
    fi
    chmod +x "$dir/ejabberdctl"
}

listener() {
    # $1 port, then extra YAML lines for the listener
    local port=$1
    shift
    printf '  - port: %s\n    ip: "127.0.0.1"\n    backlog: 1024\n' "$port"
    printf '    %s\n' "$@"
}

write_config() {
    local dir=$1 base=$2
    local c2s_opts=("module: ejabberd_c2s" "max_stanza_size: 16777216" "shaper: c2s_shaper"
        "access: c2s")
    local http_handlers=("request_handlers:" "  /http-bind: mod_bosh"
        "  /xmpp-websocket: ejabberd_http_ws" "  /api: mod_http_api")
    {
        cat <<EOF
# Written by test/servers/ejabberd.sh; test use only.
loglevel: ${UVX_SERVER_LOGLEVEL:-info}
log_rotate_count: 0
acme:
  auto: false
hosts:
  - localhost
  - anon.localhost
certfiles:
  - "$dir/certs/localhost.pem"
auth_method: internal
auth_password_format: plain    # plaintext store: PLAIN and every SCRAM-SHA-* offered
disable_sasl_mechanisms: ["digest-md5", "x-oauth2"]
host_config:
  anon.localhost:
    auth_method: anonymous
    anonymous_protocol: sasl_anon
max_fsm_queue: 1000000         # bulk message tests must not overflow c2s queues
registration_timeout: infinity # in-band registration tests register many times
listen:
EOF
        if [ -n "${UVX_EJABBERD_CLIENT_CA:-}" ]; then
            [ -r "$UVX_EJABBERD_CLIENT_CA" ] || die "cannot read $UVX_EJABBERD_CLIENT_CA"
            c2s_opts+=("tls_verify: true" "cafile: \"$UVX_EJABBERD_CLIENT_CA\"")
        fi
        listener "$base" "${c2s_opts[@]}" "starttls: true" "starttls_required: false"
        listener $((base + 1)) "${c2s_opts[@]}" "tls: true"
        listener $((base + 2)) "module: ejabberd_http" "${http_handlers[@]}"
        listener $((base + 3)) "module: ejabberd_http" "tls: true" "${http_handlers[@]}"
        cat <<'EOF'
acl:
  local:
    user_regexp: ""
  loopback:
    ip: ["127.0.0.0/8", "::1/128"]
access_rules:
  local:
    allow: local
  c2s:
    deny: blocked
    allow: all
  register:
    allow: all
  muc_create:
    allow: local
  pubsub_createnode:
    allow: local
api_permissions:
  "console commands":
    from: [ejabberd_ctl]
    who: all
    what: "*"
  "loopback http api":          # the listeners are bound to 127.0.0.1 only
    from: [mod_http_api]
    who:
      ip: 127.0.0.1/8
    what: "*"
shaper_rules:
  max_user_sessions: 100000
  c2s_shaper: none             # no traffic shaping: load tests
modules:
  mod_adhoc: {}
  mod_admin_extra: {}
  mod_blocking: {}
  mod_bosh: {}
  mod_caps: {}
  mod_carboncopy: {}
  mod_client_state: {}
  mod_disco: {}
  mod_http_api: {}
  mod_last: {}
  # no mod_mam: archiving every message in Mnesia slows bulk message tests
  # to ~100 messages/s
  mod_muc:
    access: [allow]
    access_create: muc_create
    access_persistent: muc_create
  mod_offline: {}
  mod_ping: {}
  mod_privacy: {}
  mod_private: {}
  mod_pubsub:
    access_createnode: pubsub_createnode
    plugins: [flat, pep]
  mod_register:
    access: register
    ip_access: all
  mod_roster:
    versioning: true
  mod_stream_mgmt:
    resend_on_timeout: if_offline
    max_ack_queue: 100000
  mod_vcard:
    search: false
  mod_version: {}
EOF
    } >"$dir/ejabberd.yml"
}

# One ejabberdctl call per user starts a whole Erlang VM (~1 s); the HTTP API
# on BASE+2 registers a user in a few ms over one keep-alive connection.
register_users() {
    local dir=$1 base spec codes args=()
    shift
    base=$(cat "$dir/base_port") || die "no base_port in $dir"
    for spec in "$@"; do
        split_user_spec "$spec"
        [ ${#args[@]} -gt 0 ] && args+=(--next)
        args+=(-sS -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json'
            --data "$(json_register "$SPEC_USER" "$SPEC_PASS")"
            "http://127.0.0.1:$((base + 2))/api/register")
    done
    [ ${#args[@]} -eq 0 ] && return 0
    # curl's exit status only tells about the last transfer: check each code.
    codes=$(curl "${args[@]}")
    if [ "$(grep -c '^200$' <<<"$codes")" -eq $# ]; then
        return 0
    fi
    echo "ejabberd.sh: registering $* through http://127.0.0.1:$((base + 2))/api" \
        "failed; HTTP status codes: ${codes//$'\n'/ }" >&2
    return 1
}

json_string() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

json_register() {
    printf '{"user":%s,"host":"localhost","password":%s}' "$(json_string "$1")" \
        "$(json_string "$2")"
}

# Waits for the VM to write its pid file (it does so early in its boot).
wait_pid_file() {
    local file=$1 wrapper=$2 deadline=$((SECONDS + START_TIMEOUT))
    while [ "$SECONDS" -lt "$deadline" ]; do
        [ -s "$file" ] && return 0
        kill -0 "$wrapper" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

cmd_start() {
    [ $# -ge 2 ] || die "usage: ejabberd.sh start DIR BASEPORT [USER:PASS ...]"
    local dir=$1 base=$2 pid
    shift 2
    check_base_port "$base"
    check_ports_free "$base" 5
    [ -x /usr/sbin/ejabberdctl ] || die "ejabberd is not installed"
    claim_server_dir "$dir"
    dir=$SERVER_DIR
    # A fresh Mnesia spool: a failed earlier start may have left accounts.
    rm -rf "$dir/db"
    mkdir -p "$dir/certs" "$dir/logs" "$dir/db"
    make_cert "$dir/certs"
    cat "$dir/certs/localhost.crt" "$dir/certs/localhost.key" >"$dir/certs/localhost.pem"
    echo "$base" >"$dir/base_port"
    write_ctl_config "$dir" "$base"
    write_ctl_wrapper "$dir"
    write_config "$dir" "$base"

    ulimit -n "$(ulimit -Hn)" 2>/dev/null
    rm -f "$dir/ejabberd.pid"
    "$dir/ejabberdctl" foreground </dev/null >"$dir/stdout.log" 2>&1 &
    WRAPPER_PID=$!
    wait_pid_file "$dir/ejabberd.pid" "$WRAPPER_PID" ||
        fail_start "ejabberd wrote no pid file within ${START_TIMEOUT}s"
    pid=$(cat "$dir/ejabberd.pid")
    echo "$pid" >"$dir/server.pid"
    wait_client_ports "$pid" "$base"
    # Needs the running node: accounts are created through the HTTP API.
    register_users "$dir" alice:alicepass bob:bobpass "$@" ||
        fail_start "could not register alice, bob and $*"
    start_watchdog "$dir" "$pid"
    echo "$pid"
}

main "$@"
