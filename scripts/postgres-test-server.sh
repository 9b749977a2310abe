#!/usr/bin/env bash
# A throw-away PostgreSQL cluster on loopback for PATKit's tests, benchmarks and trials.
#
#   scripts/postgres-test-server.sh start   # initdb (first time) + pg_ctl start; prints the URL
#   scripts/postgres-test-server.sh url     # prints the URL of the running cluster
#   scripts/postgres-test-server.sh stop    # stops it; `stop --remove` also deletes its folder
#
#   export PATKIT_POSTGRES_URL=$(scripts/postgres-test-server.sh start)   # then: swift test
#
# The cluster lives in $PATKIT_PG_DIR (default: a folder under /tmp named after this checkout),
# listens on 127.0.0.1 only (port $PATKIT_PG_PORT, else a free one), and runs as an
# unprivileged user: initdb refuses root, so when run as root the server runs as
# $PATKIT_PG_USER (default `postgres`, created when missing). No systemd. Connections over
# TCP need the password the script generated (scram-sha-256, kept 0600 in the folder); the
# printed URL carries it. A test cluster: never point it at data you keep.
#
# Server programs: $PATKIT_PG_BIN, else the newest /usr/lib/postgresql/*/bin, else the PATH
# (Debian: apt-get install postgresql).
set -euo pipefail

command=${1:-}
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${PATKIT_PG_DIR:-/tmp/patkit-pg-$(printf '%s' "$root" | cksum | cut -d' ' -f1)}
data="$dir/data"
database=patkit
role=patkit

die() { echo "postgres-test-server: $*" >&2; exit 1; }

find_bin() {
    if [ -n "${PATKIT_PG_BIN:-}" ]; then echo "$PATKIT_PG_BIN"; return; fi
    local newest
    newest=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$newest" ] && [ -x "$newest/initdb" ]; then echo "$newest"; return; fi
    local initdb
    initdb=$(command -v initdb || true)
    [ -n "$initdb" ] || die "initdb not found: apt-get install postgresql (Debian), or set PATKIT_PG_BIN"
    dirname "$initdb"
}

# Runs a command as the cluster's owner (this user, or $PATKIT_PG_USER when we are root).
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$owner" -- "$@"
    else
        "$@"
    fi
}

url() {
    [ -f "$dir/port" ] && [ -f "$dir/password" ] || die "no cluster in $dir: run \`$0 start\`"
    echo "postgres://$role:$(cat "$dir/password")@127.0.0.1:$(cat "$dir/port")/$database"
}

running() { [ -d "$data" ] && as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; }

bin=$(find_bin)
owner=${PATKIT_PG_USER:-postgres}
if [ "$(id -u)" = 0 ] && ! id "$owner" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$owner"
fi

case "$command" in
start)
    if running; then url; exit 0; fi
    mkdir -p "$dir"
    chmod 700 "$dir"
    [ "$(id -u)" = 0 ] && chown "$owner" "$dir"
    if [ ! -f "$data/PG_VERSION" ]; then
        umask 077
        head -c 18 /dev/urandom | base64 | tr '+/' '-_' > "$dir/password"
        [ "$(id -u)" = 0 ] && chown "$owner" "$dir/password"
        as_owner "$bin/initdb" -D "$data" -U "$role" --auth-local=trust --auth-host=scram-sha-256 \
            --pwfile="$dir/password" -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    fi
    port=${PATKIT_PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
    echo "$port" > "$dir/port"
    # Loopback only; the Unix socket in the private folder. max_connections covers several
    # `pat serve` nodes with their pools and the parallel tests' databases.
    as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c max_connections=300" \
        start >/dev/null || { tail -n 20 "$dir/server.log" >&2; die "pg_ctl start failed"; }
    if ! as_owner "$bin/psql" -h "$dir" -p "$port" -U "$role" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$database'" | grep -q 1; then
        as_owner "$bin/createdb" -h "$dir" -p "$port" -U "$role" "$database"
    fi
    url
    ;;
url)
    running || die "the cluster in $dir is not running: run \`$0 start\`"
    url
    ;;
stop)
    if running; then as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null; fi
    if [ "${2:-}" = "--remove" ]; then rm -rf "$dir"; fi
    ;;
*)
    echo "usage: $0 start | url | stop [--remove]" >&2
    exit 2
    ;;
esac
