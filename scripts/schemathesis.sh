#!/usr/bin/env bash
# The OpenAPI contract, fuzzed (issue 14): starts `pat serve` (issuer, management API) on loopback
# in a throw-away home, mints an admin PAT (pats:admin) as the README's bootstrap does, and runs
# schemathesis against GET /openapi.json with every check, a bounded number of examples per
# operation and a wall-clock bound. Fails on any 5xx or any answer that does not conform to the
# document; the server is stopped either way.
#
# usage: scripts/schemathesis.sh [MAX_EXAMPLES=50] [MAX_SECONDS=600 (each of the three runs)]
#   PAT=path/to/pat uses that binary (default: the debug build, `swift build --product pat`).
#   SCHEMATHESIS=path/to/schemathesis (default: .venv/bin/schemathesis, else the one on PATH).
#
# Two servers on one home: the issuer (management API, distribution, status) and a gate
# (`--verify-only --relay`: /verify, distribution relayed, status), each fuzzed on what it serves.
# `secret-scanning` (`--scanner-key`, its own signature scheme) is left out; its route is covered
# by OpenAPIContractTests and its own tests.
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_EXAMPLES=${1:-50}
MAX_SECONDS=${2:-600}

SCHEMATHESIS=${SCHEMATHESIS:-}
if [ -z "$SCHEMATHESIS" ]; then
  if [ -x .venv/bin/schemathesis ]; then SCHEMATHESIS=.venv/bin/schemathesis
  else SCHEMATHESIS=$(command -v schemathesis || true); fi
fi
[ -z "$SCHEMATHESIS" ] || SCHEMATHESIS=$(realpath "$SCHEMATHESIS")
[ -n "$SCHEMATHESIS" ] || { echo "schemathesis is not installed (python3 -m venv .venv && .venv/bin/pip install schemathesis)" >&2; exit 2; }
if [ -z "${PAT:-}" ]; then
  swift build --product pat >&2
  PAT="$(swift build --show-bin-path)/pat"
fi

WORK=$(mktemp -d /tmp/patkit-schemathesis.XXXXXX)
export PAT_HOME="$WORK/home"
mkdir -p "$PAT_HOME"
SERVERS=()
cleanup() {
  for server in "${SERVERS[@]}"; do kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

"$PAT" keys generate >/dev/null
ADMIN=$("$PAT" create --owner admin --name bootstrap --scope pats:admin --catalog management --expires-in 1d)
# Something to list, show and re-scope besides the admin's own PAT.
"$PAT" create --owner ann --name ci --scope clients:view --expires-in 1d >/dev/null

SERVERS=()
# serve NAME ARGS…: starts `pat serve ARGS --listen 127.0.0.1:PORT` and waits for /healthz; sets PORT.
serve() {
  local name=$1; shift
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  "$PAT" serve --listen "127.0.0.1:$PORT" --log-level warning "$@" 2>"$WORK/$name.log" &
  SERVERS+=($!)
  for _ in $(seq 1 300); do
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
      "http://127.0.0.1:$PORT/healthz" 2>/dev/null && return 0
    kill -0 "${SERVERS[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  cat "$WORK/$name.log" >&2; echo "pat serve ($name) did not start" >&2; exit 1
}
# No rate limit: the fuzzer is one caller sending thousands of requests.
serve issuer --rate-limit 0
ISSUER_PORT=$PORT
# The gate (--verify-only) over the files the issuer published at start, relaying them.
serve gate --verify-only --relay
GATE_PORT=$PORT

# Long polls: a revocations request with `since` beyond the current list and `wait` would be
# held up to 60 s; the fuzzer's `wait` is pinned to 0 (the long poll has its own tests).
cat > "$WORK/schemathesis.toml" <<TOML
[[operations]]
include-path = "/.well-known/pat/revocations"
parameters = { "wait" = 0 }
TOML

# Every check but positive_data_acceptance ("a request the schema allows must get 2xx"): the
# document cannot say what depends on state or policy — scopes in the server's catalog, an
# expiry in the future and within --max-lifetime, NFC names, `wait` only with `since` — so valid-
# looking requests get a 400 that names the field. Everything else holds: no 5xx, every status,
# header, content type and body as documented, invalid requests refused, auth enforced, 405 for
# undeclared methods.
# fuzz PORT FILTERS…
fuzz() {
  local port=$1; shift
  # From the temp folder: schemathesis keeps a cache (.schemathesis/) in its working directory.
  (cd "$WORK" && timeout --kill-after=30s "$MAX_SECONDS" "$SCHEMATHESIS" --config-file "$WORK/schemathesis.toml" run \
    "http://127.0.0.1:$port/openapi.json" \
    --header "Authorization: Bearer $ADMIN" \
    --checks all --exclude-checks positive_data_acceptance \
    --max-examples "$MAX_EXAMPLES" --seed "${SCHEMATHESIS_SEED:-1}" \
    --request-timeout 30 \
    ${SCHEMATHESIS_ARGS:-} "$@")
}
status=0
# "Delete every PAT of the caller's owner" deletes the admin PAT the fuzzer calls with (every later
# request would be 401): it runs on its own, last, without the stateful phase (no links lead to it).
fuzz "$ISSUER_PORT" --exclude-tag gate --exclude-tag secret-scanning --exclude-operation-id deleteAllPersonalAccessTokens || status=$?
fuzz "$GATE_PORT" --include-tag gate --include-tag distribution --include-tag operations --phases examples,coverage,fuzzing || status=$?
fuzz "$ISSUER_PORT" --include-operation-id deleteAllPersonalAccessTokens --phases examples,coverage,fuzzing || status=$?
for name in issuer gate; do
  if grep -q -i -E "fatal|panic" "$WORK/$name.log"; then
    echo "pat serve ($name) logged a crash:" >&2; cat "$WORK/$name.log" >&2; status=1
  fi
done
for server in "${SERVERS[@]}"; do
  kill -0 "$server" 2>/dev/null || { echo "a pat serve died during the run" >&2; cat "$WORK"/*.log >&2; status=1; }
done
exit "$status"
