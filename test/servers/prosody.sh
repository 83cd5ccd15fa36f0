#!/bin/bash
# Runs a throwaway Prosody for the integration tests.
#
#   prosody.sh start DIR BASEPORT [USER:PASS ...]   prints the server pid
#   prosody.sh stop DIR
#   prosody.sh register DIR USER:PASS ...            (works while running)
#
# DIR is private to one instance; it gets the config, the certificate, the
# data store and the logs. Ports: BASE c2s (optional STARTTLS), BASE+1 direct
# TLS, BASE+2 HTTP, BASE+3 HTTPS, all on 127.0.0.1 only. Users alice/alicepass
# and bob/bobpass always exist on "localhost"; "anon.localhost" is anonymous.
#
# UVX_PROSODY_AUTH=internal_hashed (opt-in; the default is internal_plain)
# stores SCRAM-SHA-1 keys with one salt per account, chosen once, as a real
# deployment does; it then offers only SCRAM-SHA-1 and PLAIN. The accounts are
# hashed by Prosody's own SCRAM code in a single lua5.4 process (10 000
# iterations, Prosody's default), ~3 s per 1 000 users.
# shellcheck source-path=SCRIPTDIR
set -u
SERVER_KIND=prosody
. "$(dirname "$0")/common.sh"

START_TIMEOUT=20
STOP_TIMEOUT=10
SERVER_DIR=

# Prosody keeps running when it cannot bind a port; it only logs the error.
start_failed() {
    grep -q 'Failed to open server port' "$SERVER_DIR/prosody.log" 2>/dev/null
}

print_log_tail() {
    tail -n 20 "$SERVER_DIR/stdout.log" "$SERVER_DIR/prosody.log"
}

stop_failed_start() {
    kill_and_wait "$(cat "$SERVER_DIR/server.pid")" "$STOP_TIMEOUT"
}

auth_mode() {
    case ${UVX_PROSODY_AUTH:-internal_plain} in
    internal_plain | internal_hashed) echo "${UVX_PROSODY_AUTH:-internal_plain}" ;;
    *) die "UVX_PROSODY_AUTH must be internal_plain or internal_hashed" ;;
    esac
}

auth_config() {
    if [ "$(auth_mode)" = internal_hashed ]; then
        echo '-- Hashed store: a stable salt per account; offers PLAIN and SCRAM-SHA-1.'
        echo 'authentication = "internal_hashed"'
    else
        echo '-- Plaintext store: offers PLAIN, SCRAM-SHA-1 and SCRAM-SHA-256.'
        echo 'authentication = "internal_plain"'
    fi
}

write_config() {
    local dir=$1 base=$2
    # Debug logging of every stanza slows load tests down; opt in with
    # UVX_SERVER_LOGLEVEL=debug.
    local log_level=${UVX_SERVER_LOGLEVEL:-info}
    cat >"$dir/prosody.cfg.lua" <<EOF
-- Written by test/servers/prosody.sh; test use only.
run_as_root = true  -- as root, Prosody 0.12 otherwise hangs in its shutdown
pidfile = "$dir/prosody.pid"
data_path = "$dir/data"
log = {
    { levels = { min = "$log_level" }, to = "file", filename = "$dir/prosody.log" };
    { levels = { min = "warn" }, to = "console" };
}
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { $base }
c2s_direct_tls_ports = { $((base + 1)) }
http_ports = { $((base + 2)) }
http_interfaces = { "127.0.0.1" }
https_ports = { $((base + 3)) }
https_interfaces = { "127.0.0.1" }
http_default_host = "localhost"
certificates = "$dir/certs"
ssl = { certificate = "$dir/certs/localhost.crt"; key = "$dir/certs/localhost.key"; }
modules_enabled = {
    "roster"; "saslauth"; "tls"; "disco"; "ping"; "time"; "version"; "uptime";
    "register"; "private"; "vcard_legacy"; "blocklist"; "carbons"; "pep"; "mam";
    "smacks"; "csi_simple"; "bosh"; "websocket"; "http";
}
-- No federation; no rate limiting (load tests send 10 000 messages).
modules_disabled = { "s2s"; "limits" }
limits = {
    c2s = { rate = "100mb/s"; burst = "10s" };
    c2s_unauthed = { rate = "100mb/s"; burst = "10s" };
}
c2s_stanza_size_limit = 16 * 1024 * 1024
network_settings = { tcp_backlog = 1024 }  -- the default 128 drops SYNs when 1 000 clients connect at once
smacks_max_queue_size = 20000  -- default 500 is too small for bulk message tests
-- MAM is offered but archives nothing unless a client asks (prefs): archiving
-- every message, and truncating a full archive (10 000 items) once per message,
-- makes repeated 10 000-message tests crawl.
default_archive_policy = false
-- Test-only relaxations.
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
consider_bosh_secure = true
consider_websocket_secure = true
cross_domain_bosh = true
cross_domain_websocket = true
allow_registration = true
min_seconds_between_registrations = 0
$(auth_config)
storage = "internal"

VirtualHost "localhost"

VirtualHost "anon.localhost"
    authentication = "anonymous"

Component "conference.localhost" "muc"
EOF
}

# Prosody's datamanager escapes every byte outside [a-zA-Z0-9] as %xx (lower
# case hex) in host and user names.
data_escape() {
    local s=$1 out='' c i
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case $c in
        [a-zA-Z0-9]) out+=$c ;;
        *) out+=$(printf '%%%02x' "'$c") ;;
        esac
    done
    printf '%s' "$out"
}

# Lua long-bracket-free quoting of a password for the account file.
lua_quote() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

# Writes the account files internal_hashed reads, as its create_user() does:
# a fresh UUID salt and SCRAM-SHA-1 stored/server keys, computed with
# Prosody's util.sasl.scram. Arguments: ACCOUNTS-DIR, then FILE PASS pairs.
# One process for all users; prosodyctl register would start one per user.
write_hashed_accounts() {
    lua5.4 - "$@" <<'LUA'
package.path = "/usr/lib/prosody/?.lua;" .. package.path
package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath
local scram = require "util.sasl.scram"
local hex = require "util.hex"
local uuid = require "util.uuid"
local iterations = 10000 -- mod_auth_internal_hashed's default_iteration_count
local dir = arg[1]
for i = 2, #arg, 2 do
    local salt = uuid.generate()
    local ok, stored_key, server_key =
        scram.getAuthenticationDatabaseSHA1(arg[i + 1], salt, iterations)
    if not ok then
        io.stderr:write("cannot hash the password for ", arg[i], ": ", tostring(stored_key), "\n")
        os.exit(1)
    end
    local f = assert(io.open(dir .. "/" .. arg[i], "w"))
    f:write(string.format("return {\n\t[\"iteration_count\"] = %d;\n"
        .. "\t[\"salt\"] = %q;\n\t[\"server_key\"] = %q;\n\t[\"stored_key\"] = %q;\n};\n",
        iterations, salt, hex.encode(server_key), hex.encode(stored_key)))
    f:close()
end
LUA
}

# Writes the account file internal_plain reads (what prosodyctl register
# writes), which is ~100x faster than running prosodyctl per user; or, with
# internal_hashed, the hashed one (write_hashed_accounts).
register_users() {
    local dir=$1 spec accounts mode hashed=()
    shift
    mode=$(auth_mode) || exit 1
    accounts="$dir/data/localhost/accounts"
    mkdir -p "$accounts"
    for spec in "$@"; do
        split_user_spec "$spec"
        if [ "$mode" = internal_hashed ]; then
            hashed+=("$(data_escape "$SPEC_USER").dat" "$SPEC_PASS")
            continue
        fi
        printf 'return {\n\t["password"] = %s;\n};\n' "$(lua_quote "$SPEC_PASS")" \
            >"$accounts/$(data_escape "$SPEC_USER").dat"
    done
    if [ ${#hashed[@]} -gt 0 ]; then
        write_hashed_accounts "$accounts" "${hashed[@]}" || die "cannot write hashed accounts"
    fi
}

cmd_start() {
    [ $# -ge 2 ] || die "usage: prosody.sh start DIR BASEPORT [USER:PASS ...]"
    local dir=$1 base=$2 pid
    shift 2
    check_base_port "$base"
    check_ports_free "$base" 4
    auth_mode >/dev/null || exit 1
    command -v prosody >/dev/null || die "prosody is not installed"
    claim_server_dir "$dir"
    dir=$SERVER_DIR
    mkdir -p "$dir/data" "$dir/certs"
    make_cert "$dir/certs"
    write_config "$dir" "$base"
    register_users "$dir" alice:alicepass bob:bobpass "$@"

    ulimit -n "$(ulimit -Hn)" 2>/dev/null
    (cd "$dir" && exec prosody -F --config "$dir/prosody.cfg.lua") \
        </dev/null >"$dir/stdout.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/server.pid"
    wait_client_ports "$pid" "$base"
    start_watchdog "$dir" "$pid"
    echo "$pid"
}

main "$@"
