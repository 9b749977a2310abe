#!/usr/bin/env bash
# The OpenAPI contract, fuzzed (issue 14): starts `pat serve` (issuer, management API) on loopback
# in a throw-away home, mints an admin PAT (pats:admin) as the README's bootstrap does, and runs
# schemathesis against GET /openapi.json with every check, a bounded number of examples per
# operation and a wall-clock bound. Fails on any 5xx or any answer that does not conform to the
# document; the server is stopped either way.
#
# usage: scripts/schemathesis.sh [MAX_EXAMPLES=50] [MAX_SECONDS=600 (each of the two runs)]
#   PAT=path/to/pat uses that binary (default: the debug build, `swift build --product pat`).
#   SCHEMATHESIS=path/to/schemathesis (default: .venv/bin/schemathesis, else the one on PATH).
#
# Operations tagged `gate` (`pat serve --verify-only`) and `secret-scanning` (`--scanner-key`, its
# own signature scheme) are not served by this server and are left out; their routes are covered by
# OpenAPIContractTests and their own tests.
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_EXAMPLES=${1:-50}
MAX_SECONDS=${2:-600}

SCHEMATHESIS=${SCHEMATHESIS:-}
if [ -z "$SCHEMATHESIS" ]; then
  if [ -x .venv/bin/schemathesis ]; then SCHEMATHESIS=.venv/bin/schemathesis
  else SCHEMATHESIS=$(command -v schemathesis || true); fi
fi
[ -n "$SCHEMATHESIS" ] || { echo "schemathesis is not installed (python3 -m venv .venv && .venv/bin/pip install schemathesis)" >&2; exit 2; }
if [ -z "${PAT:-}" ]; then
  swift build --product pat >&2
  PAT="$(swift build --show-bin-path)/pat"
fi

WORK=$(mktemp -d /tmp/patkit-schemathesis.XXXXXX)
export PAT_HOME="$WORK/home"
mkdir -p "$PAT_HOME"
SERVER=""
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$PAT" keys generate >/dev/null
ADMIN=$("$PAT" create --owner admin --name bootstrap --scope pats:admin --catalog management --expires-in 1d)
# Something to list, show and re-scope besides the admin's own PAT.
"$PAT" create --owner ann --name ci --scope clients:view --expires-in 1d >/dev/null

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
# No rate limit: the fuzzer is one caller sending thousands of requests.
"$PAT" serve --listen "127.0.0.1:$PORT" --rate-limit 0 --log-level warning 2>"$WORK/serve.log" &
SERVER=$!
for _ in $(seq 1 300); do
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "http://127.0.0.1:$PORT/healthz" 2>/dev/null && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/serve.log" >&2; echo "pat serve did not start" >&2; exit 1; }
  sleep 0.1
done

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
fuzz() {
  timeout --kill-after=30s "$MAX_SECONDS" "$SCHEMATHESIS" --config-file "$WORK/schemathesis.toml" run \
    "http://127.0.0.1:$PORT/openapi.json" \
    --header "Authorization: Bearer $ADMIN" \
    --checks all --exclude-checks positive_data_acceptance \
    --exclude-tag gate --exclude-tag secret-scanning \
    --max-examples "$MAX_EXAMPLES" --seed "${SCHEMATHESIS_SEED:-1}" \
    --request-timeout 30 \
    ${SCHEMATHESIS_ARGS:-} "$@"
}
status=0
# "Delete every PAT of the caller's owner" deletes the admin PAT the fuzzer calls with (every later
# request would be 401): it runs on its own, last, without the stateful phase (no links lead to it).
fuzz --exclude-operation-id deleteAllPersonalAccessTokens || status=$?
fuzz --include-operation-id deleteAllPersonalAccessTokens --phases examples,coverage,fuzzing || status=$?
if grep -q -i -E "fatal|panic" "$WORK/serve.log"; then
  echo "pat serve logged a crash:" >&2; cat "$WORK/serve.log" >&2; status=1
fi
kill -0 "$SERVER" 2>/dev/null || { echo "pat serve died during the run" >&2; cat "$WORK/serve.log" >&2; status=1; }
exit "$status"
