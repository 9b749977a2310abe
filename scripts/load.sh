#!/usr/bin/env bash
# Load test of `pat serve` on loopback: the distribution endpoints and the /verify gate under
# CONNECTIONS concurrent connections for SECONDS each, with wrk. Reports requests/s, p99
# latency, errors (non-2xx/3xx and socket errors) and the server's resident memory before and
# after each run (memory must stay flat). Exits non-zero on any error.
#
# The gate is measured in ROUNDS rounds (default 3) of three runs each, the order rotated every
# round so that none always runs first: a bare Hummingbird route answering 204 (the HTTP ceiling,
# `Benchmarks/BareRoute`), the gate, and the gate with usage reporting (--report-usage to the
# issuer's management API, every second). Every run sends the same request (a valid PAT, a required
# scope). The last lines are the medians and their ratios: gate/bare (issue 15: ≥ 0.9) and usage
# on/off (issue 11: within 5 %), in requests/s and in the server's CPU time per request (which
# other processes on the machine disturb far less).
#
# usage: scripts/load.sh [SECONDS=30] [CONNECTIONS=64]
#   PAT=path/to/pat uses that binary (default: a release build, `swift build -c release`);
#   BARE=path/to/bare-route likewise (default: a release build in Benchmarks/);
#   ROUNDS=N gate rounds (more on a noisy host); WRK_THREADS=N wrk's threads (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-30}
CONNECTIONS=${2:-64}
ROUNDS=${ROUNDS:-3}
WRK_THREADS=${WRK_THREADS:-2}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)"; exit 2; }

if [ -z "${PAT:-}" ]; then
  swift build -c release --product pat >&2
  PAT="$(swift build -c release --show-bin-path)/pat"
fi
if [ -z "${BARE:-}" ]; then
  (cd Benchmarks && swift build -c release --product bare-route >&2)
  BARE="$(cd Benchmarks && swift build -c release --show-bin-path)/bare-route"
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
DIST_PORT=$(free_port); GATE_PORT=$(free_port); USAGE_PORT=$(free_port); BARE_PORT=$(free_port)
"$PAT" serve --listen "127.0.0.1:$DIST_PORT" --log-level error 2>"$WORK/dist.log" & PIDS+=($!); DIST_PID=$!
"$PAT" serve --verify-only --listen "127.0.0.1:$GATE_PORT" --log-level error 2>"$WORK/gate.log" & PIDS+=($!); GATE_PID=$!
"$PAT" serve --verify-only --listen "127.0.0.1:$USAGE_PORT" --log-level error \
  --report-usage "http://127.0.0.1:$DIST_PORT/v3/personal-access-tokens/usage" --usage-token-file "$WORK/usage.pat" \
  --usage-interval 1s 2>"$WORK/gate-usage.log" & PIDS+=($!); USAGE_PID=$!
"$BARE" "127.0.0.1:$BARE_PORT" 2>"$WORK/bare.log" & PIDS+=($!); BARE_PID=$!
for port in "$DIST_PORT" "$GATE_PORT" "$USAGE_PORT" "$BARE_PORT"; do
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/verify" && break; sleep 0.1; done
done

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# The server's CPU time (user + system) in clock ticks: per request, it depends far less on what
# else the machine runs than requests/s does.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))
failed=0
printf '| endpoint | requests/s | p50 | p99 | errors | server CPU per request | server RSS before → after |\n| --- | --- | --- | --- | --- | --- | --- |\n'
run() { # name pid url [headers…]
  local name=$1 pid=$2 url=$3; shift 3
  local before after out ticks
  before=$(rss "$pid")
  ticks=$(cpu_ticks "$pid")
  out=$(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency "$@" "$url")
  after=$(rss "$pid")
  ticks=$(($(cpu_ticks "$pid") - ticks))
  local rps p50 p99 non2xx sockerr requests
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  LAST_CPU=$(python3 -c "import sys; print(f'{int(sys.argv[1]) * int(sys.argv[2]) / max(1, int(sys.argv[3])):.1f}')" "$ticks" "$TICK_US" "$requests")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx or 3xx responses/ {print $5}' <<<"$out"); non2xx=${non2xx:-0}
  sockerr=$(awk -F'[ ,]+' '/Socket errors/ {print $4+$6+$8+$10}' <<<"$out"); sockerr=${sockerr:-0}
  local errors=$((non2xx + sockerr))
  [ "$errors" -eq 0 ] || failed=1
  printf '| %s | %s | %s | %s | %s | %s µs | %s KiB → %s KiB |\n' "$name" "$rps" "$p50" "$p99" "$errors" "$LAST_CPU" "$before" "$after"
  LAST_RPS=$rps
}
run "GET /.well-known/pat/keys" "$DIST_PID" "http://127.0.0.1:$DIST_PORT/.well-known/pat/keys"
run "GET /.well-known/pat/revocations" "$DIST_PID" "http://127.0.0.1:$DIST_PORT/.well-known/pat/revocations"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
VERIFY=(-H "Authorization: Bearer $TOKEN" -H "X-PAT-Require-Scope: clients:view")
BARE_RPS=(); OFF=(); ON=(); BARE_CPU=(); OFF_CPU=(); ON_CPU=()
gate_run() { # which: 0 bare route, 1 gate, 2 gate with usage reporting
  case $1 in
    0) run "GET /verify, bare Hummingbird route (204)" "$BARE_PID" "http://127.0.0.1:$BARE_PORT/verify" "${VERIFY[@]}"
       BARE_RPS+=("$LAST_RPS"); BARE_CPU+=("$LAST_CPU") ;;
    1) run "GET /verify (valid PAT, scope required)" "$GATE_PID" "http://127.0.0.1:$GATE_PORT/verify" "${VERIFY[@]}"
       OFF+=("$LAST_RPS"); OFF_CPU+=("$LAST_CPU") ;;
    2) run "GET /verify, usage reported" "$USAGE_PID" "http://127.0.0.1:$USAGE_PORT/verify" "${VERIFY[@]}"
       ON+=("$LAST_RPS"); ON_CPU+=("$LAST_CPU") ;;
  esac
}
for round in $(seq 0 $((ROUNDS - 1))); do
  for step in 0 1 2; do gate_run $(((round + step) % 3)); done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
# The issuer received the counts: the load token's use count is in the registry.
LOAD_ID=$("$PAT" list --owner load --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
"$PAT" show "$LOAD_ID" --json \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); print("\nissuer: the load token was reported used", d["uses"], "times, last", d["lastUsedAt"])'
python3 - "${BARE_RPS[*]}" "${OFF[*]}" "${ON[*]}" "${BARE_CPU[*]}" "${OFF_CPU[*]}" "${ON_CPU[*]}" <<'PY'
import statistics, sys
bare, off, on, bare_cpu, off_cpu, on_cpu = ([float(x) for x in arg.split()] for arg in sys.argv[1:7])
m = {name: statistics.median(v) for name, v in (("bare", bare), ("off", off), ("on", on))}
print(f"gate /verify median requests/s over {len(off)} rounds: bare route {m['bare']:.0f}, "
      f"gate {m['off']:.0f}, gate with usage reported {m['on']:.0f}")
print(f"gate/bare = {m['off'] / m['bare']:.3f} (issue 15: >= 0.9); usage on/off = {m['on'] / m['off']:.3f} (issue 11: >= 0.95)")
print("per round, gate/bare:", " ".join(f"{o / b:.3f}" for o, b in zip(off, bare)),
      "; on/off:", " ".join(f"{n / o:.3f}" for n, o in zip(on, off)))
c = {name: statistics.median(v) for name, v in (("bare", bare_cpu), ("off", off_cpu), ("on", on_cpu))}
print(f"server CPU per request (median): bare route {c['bare']:.1f} us, gate {c['off']:.1f} us, with usage reported {c['on']:.1f} us; "
      f"bare/gate = {c['bare'] / c['off']:.3f}, off/on = {c['off'] / c['on']:.3f}")
PY
echo
echo "wrk -t$WRK_THREADS -c$CONNECTIONS -d${SECONDS_PER_RUN}s on $(nproc) cores; $(uname -m); load average before the gate rounds $LOAD_BEFORE, after $LOAD_AFTER; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "pat at $PAT; bare route at $BARE"
exit $failed
