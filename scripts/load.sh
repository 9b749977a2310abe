#!/usr/bin/env bash
# Load test of `pat serve` on loopback: the distribution endpoints and the /verify gate under
# CONNECTIONS concurrent connections for SECONDS each, with wrk. Reports requests/s, p99
# latency, errors (non-2xx/3xx and socket errors) and the server's resident memory before and
# after each run (memory must stay flat). Exits non-zero on any error. The gate runs twice, without
# and with usage reporting (--report-usage to the issuer's management API, every second), in
# alternating rounds of the same run: the last line is the ratio of their requests/s (issue 11: within 5 %).
#
# usage: scripts/load.sh [SECONDS=30] [CONNECTIONS=64]
#   PAT=path/to/pat uses that binary (default: a release build, `swift build -c release`).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-30}
CONNECTIONS=${2:-64}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)"; exit 2; }

if [ -z "${PAT:-}" ]; then
  swift build -c release --product pat >&2
  PAT="$(swift build -c release --show-bin-path)/pat"
fi
WORK=$(mktemp -d)
export PAT_HOME="$WORK/home"
mkdir -p "$PAT_HOME"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

"$PAT" keys generate >/dev/null
TOKEN=$("$PAT" create --owner load --name load-test --scope clients:view --expires-in 1d 2>/dev/null)
for i in $(seq 1 200); do "$PAT" create --owner "o$i" --name "n$i" --scope clients:view --expires-in 1d >/dev/null 2>&1; done
"$PAT" revoke --owner o1 --all --yes >/dev/null 2>&1
"$PAT" publish >/dev/null 2>&1
(umask 077; "$PAT" create --owner edge --name usage-report --scope pats:report_usage --catalog management --expires-in 1d \
   2>/dev/null > "$WORK/usage.pat")

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
DIST_PORT=$(free_port); GATE_PORT=$(free_port); USAGE_PORT=$(free_port)
"$PAT" serve --listen "127.0.0.1:$DIST_PORT" --log-level error 2>"$WORK/dist.log" & PIDS+=($!); DIST_PID=$!
"$PAT" serve --verify-only --listen "127.0.0.1:$GATE_PORT" --log-level error 2>"$WORK/gate.log" & PIDS+=($!); GATE_PID=$!
"$PAT" serve --verify-only --listen "127.0.0.1:$USAGE_PORT" --log-level error \
  --report-usage "http://127.0.0.1:$DIST_PORT/v3/personal-access-tokens/usage" --usage-token-file "$WORK/usage.pat" \
  --usage-interval 1s 2>"$WORK/gate-usage.log" & PIDS+=($!); USAGE_PID=$!
for port in "$DIST_PORT" "$GATE_PORT" "$USAGE_PORT"; do
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/.well-known/pat/keys" && break; sleep 0.1; done
done

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
failed=0
printf '| endpoint | requests/s | p50 | p99 | errors | server RSS before → after |\n| --- | --- | --- | --- | --- | --- |\n'
run() { # name pid url [headers…]
  local name=$1 pid=$2 url=$3; shift 3
  local before after out
  before=$(rss "$pid")
  out=$(wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency "$@" "$url")
  after=$(rss "$pid")
  local rps p50 p99 non2xx sockerr
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx or 3xx responses/ {print $5}' <<<"$out"); non2xx=${non2xx:-0}
  sockerr=$(awk -F'[ ,]+' '/Socket errors/ {print $4+$6+$8+$10}' <<<"$out"); sockerr=${sockerr:-0}
  local errors=$((non2xx + sockerr))
  [ "$errors" -eq 0 ] || failed=1
  printf '| %s | %s | %s | %s | %s | %s KiB → %s KiB |\n' "$name" "$rps" "$p50" "$p99" "$errors" "$before" "$after"
  LAST_RPS=$rps
}
run "GET /.well-known/pat/keys" "$DIST_PID" "http://127.0.0.1:$DIST_PORT/.well-known/pat/keys"
run "GET /.well-known/pat/revocations" "$DIST_PID" "http://127.0.0.1:$DIST_PORT/.well-known/pat/revocations"
OFF=(); ON=()
for round in 1 2 3; do
  run "GET /verify (valid PAT, scope required)" "$GATE_PID" "http://127.0.0.1:$GATE_PORT/verify" \
      -H "Authorization: Bearer $TOKEN" -H "X-PAT-Require-Scope: clients:view"
  OFF+=("$LAST_RPS")
  run "GET /verify, usage reported" "$USAGE_PID" "http://127.0.0.1:$USAGE_PORT/verify" \
      -H "Authorization: Bearer $TOKEN" -H "X-PAT-Require-Scope: clients:view"
  ON+=("$LAST_RPS")
done
# The issuer received the counts: the load token's use count is in the registry.
LOAD_ID=$("$PAT" list --owner load --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
"$PAT" show "$LOAD_ID" --json \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); print("\nissuer: the load token was reported used", d["uses"], "times, last", d["lastUsedAt"])'
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
python3 -c "import sys; off,on=float(sys.argv[1]),float(sys.argv[2]); print(f'gate /verify median requests/s: usage off {off:.0f}, on {on:.0f}, on/off = {on/off:.3f}')" \
  "$(median "${OFF[@]}")" "$(median "${ON[@]}")"
echo
echo "wrk -t2 -c$CONNECTIONS -d${SECONDS_PER_RUN}s on $(nproc) cores; $(uname -m); pat at $PAT"
exit $failed
