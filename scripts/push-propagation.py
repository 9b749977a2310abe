#!/usr/bin/env python3
"""Revocation propagation with push (long polls and signed deltas) against today's 5 s polling,
in one run, on loopback: the time from the management API's revoke call to (a) every edge
holding a list with the revocation and (b) every real gate refusing the token.

usage: scripts/push-propagation.py [--entries 1000] [--edges 100] [--gates 10] [--revocations 200]
                                   [--polling-revocations 20] [--pat PATH]

One issuer (`pat serve`, management API on a SQLite registry pre-loaded with ENTRIES revoked PATs
so the list has that many entries); GATES real `pat serve --verify-only` processes fed from its
URLs (long poll: the default; polling: `--long-poll 0 --refresh-interval 5s`); EDGES lightweight
edges in this process, one thread and one connection each, doing what PATRefresher's transport
does (`?since=SEQ&wait=55`, or a conditional GET of the whole list every 5 s) and recording when
the sequence with the revocation arrives and how many bytes it cost (they do not verify: the
gates do, in full). For each of REVOCATIONS revocations: POST …/revoke (which publishes), then
wait until every edge holds the new sequence and every gate answers /verify with 401 (probed
every 5 ms). Prints p50/p99/max of the per-revocation worst edge and worst gate, bytes per edge
per change and issuer CPU per change, for push and then for polling (fewer revocations: each
costs up to 5 s). A measurement, not a test: nothing here fails on a slow machine.
"""
import argparse
import http.client
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIST = "/.well-known/pat/revocations"
KEYS = "/.well-known/pat/keys"
API = "/v3/personal-access-tokens"


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Edge(threading.Thread):
    """Long-polls (or polls) the issuer's list and records (sequence, arrival, bytes)."""

    def __init__(self, port, push, sequence):
        super().__init__(daemon=True)
        self.port, self.push, self.sequence = port, push, sequence
        self.arrivals = {}
        self.bytes = 0
        self.etag = None
        self.stop = False
        self.changed = threading.Condition()

    def run(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        while not self.stop:
            try:
                if self.push:
                    connection.request("GET", f"{LIST}?since={self.sequence}&wait=55")
                else:
                    connection.request("GET", LIST, headers={"If-None-Match": self.etag} if self.etag else {})
                response = connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                time.sleep(0.1)
                continue
            arrived = time.monotonic()
            sequence = int(response.getheader("X-PAT-Sequence") or 0)
            self.bytes += len(body)
            if response.status == 200 and sequence > self.sequence:
                self.etag = response.getheader("ETag") or self.etag
                with self.changed:
                    for s in range(self.sequence + 1, sequence + 1):
                        self.arrivals[s] = arrived
                    self.sequence = sequence
                    self.changed.notify_all()
            if not self.push:
                time.sleep(5)

    def wait_for(self, sequence, limit=120):
        with self.changed:
            self.changed.wait_for(lambda: self.sequence >= sequence, timeout=limit)
            return self.arrivals.get(sequence)


def start(pat, arguments, env, log_path):
    log = open(log_path, "w+")
    process = subprocess.Popen([pat, *arguments, "--listen", "127.0.0.1:0"], env=env, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            sys.exit(f"pat {' '.join(arguments)} exited: {log.read()[-2000:]}")
        log.seek(0)
        match = re.search(r"started and listening on 127\.0\.0\.1:(\d+)", log.read())
        if match:
            return process, int(match.group(1))
        time.sleep(0.05)
    sys.exit("pat serve did not start within 120 s")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gate_status(port, token):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/verify", headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def current_sequence(port):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", f"{LIST}?since=9007199254740991")
    response = connection.getresponse()
    response.read()
    connection.close()
    return int(response.getheader("X-PAT-Sequence"))


def one_run(args, push, count):
    with tempfile.TemporaryDirectory(prefix="patkit-push-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAT_")}
        env["PAT_HOME"] = home

        def pat(*arguments):
            result = subprocess.run([args.pat, *arguments], env=env, capture_output=True, text=True, timeout=600)
            if result.returncode != 0:
                sys.exit(f"pat {' '.join(arguments)} failed: {result.stderr.strip()}")
            return result.stdout

        pat("keys", "generate")
        pat("publish")  # creates the registry (read commands such as `pat list` never do)
        now = int(time.time())
        horizon = now + 30 * 86400
        with sqlite3.connect(os.path.join(home, "pat.db")) as db:
            db.executemany(
                "INSERT INTO pats (id, owner, name, scopes, generation, floor, created_at, updated_at, expires_at, "
                "max_expires_at, lineage) VALUES (?, ?, ?, 'clients:view:*', 1, 2, ?, ?, ?, ?, '')",
                ((f"bench{i:017d}", f"owner{i % 1000}", f"n{i}", now, now, horizon, horizon) for i in range(args.entries)))
        admin = pat("create", "--owner", "admin", "--name", "bootstrap", "--scope", "pats:admin", "--catalog", "management",
                    "--expires-in", "1d").strip()
        victims = [json.loads(pat("create", "--owner", "o", "--name", f"v{i}", "--scope", "clients:view", "--expires-in", "1d",
                                  "--json")) for i in range(count)]
        pat("publish")
        anchors = os.path.join(home, "anchors.txt")
        with open(anchors, "w") as f:
            f.write(pat("keys", "export", "--anchors"))

        processes = []
        try:
            issuer, port = start(args.pat, ["serve", "--rate-limit", "0", "--max-connections", "4000"], env,
                                 os.path.join(home, "issuer.log"))
            processes.append(issuer)
            base = f"http://127.0.0.1:{port}"
            gate_args = ["serve", "--verify-only", "--keys-url", base + KEYS, "--revocations-url", base + LIST,
                         "--trust-anchor", anchors]
            gate_args += [] if push else ["--long-poll", "0", "--refresh-interval", "5s"]
            gates = []
            for i in range(args.gates):
                process, gate_port = start(args.pat, gate_args, env, os.path.join(home, f"gate{i}.log"))
                processes.append(process)
                gates.append(gate_port)
            held = current_sequence(port)
            edges = [Edge(port, push, held) for _ in range(args.edges)]
            for edge in edges:
                edge.start()
            for victim in victims:  # every gate accepts every victim before the loop
                for gate in gates:
                    deadline = time.monotonic() + 60
                    while gate_status(gate, victim["accessToken"]) != 204:
                        if time.monotonic() > deadline:
                            sys.exit("a gate never accepted a fresh token")
                        time.sleep(0.05)
            edge_worst, gate_worst = [], []
            bytes_before = sum(e.bytes for e in edges)
            cpu_before = cpu_seconds(issuer.pid)
            for victim in victims:
                started = time.monotonic()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                connection.request("POST", f"{API}/{victim['id']}/revoke", body="{}",
                                   headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                connection.close()
                if response.status != 200:
                    sys.exit(f"revoke answered {response.status}")
                sequence = current_sequence(port)
                pending = set(gates)
                refused = {}
                while pending:
                    for gate in list(pending):
                        if gate_status(gate, victim["accessToken"]) == 401:
                            refused[gate] = time.monotonic()
                            pending.discard(gate)
                    if pending:
                        time.sleep(0.005)
                    if time.monotonic() - started > 120:
                        sys.exit("a gate did not refuse a revoked token within 120 s")
                arrivals = [edge.wait_for(sequence) for edge in edges]
                if any(a is None for a in arrivals):
                    sys.exit("an edge did not receive the revocation within 120 s")
                if edges:
                    edge_worst.append(max(arrivals) - started)
                gate_worst.append(max(refused.values()) - started)
            cpu = cpu_seconds(issuer.pid) - cpu_before
            per_edge = (sum(e.bytes for e in edges) - bytes_before) / max(1, len(edges)) / count
            for edge in edges:
                edge.stop = True
            return {"edges": edge_worst, "gates": gate_worst, "bytes": per_edge, "cpu": cpu / count}
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--edges", type=int, default=100)
    parser.add_argument("--gates", type=int, default=10)
    parser.add_argument("--revocations", type=int, default=200)
    parser.add_argument("--polling-revocations", type=int, default=20)
    parser.add_argument("--pat", default=os.path.join(ROOT, ".build", "debug", "pat"))
    args = parser.parse_args()
    if not os.access(args.pat, os.X_OK):
        sys.exit(f"no pat binary at {args.pat}: run `swift build --product pat` (or pass --pat)")
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores; {args.entries} list entries, "
          f"{args.edges} edges, {args.gates} gates; pat at {args.pat}", flush=True)
    print("| transport | revocations | edges p50 / p99 / max | gates p50 / p99 / max | bytes per edge per change | issuer CPU per change |")
    print("| --- | --- | --- | --- | --- | --- |")
    for push, count in ((True, args.revocations), (False, args.polling_revocations)):
        if count <= 0:
            continue
        r = one_run(args, push, count)

        def fmt(values):
            if not values:
                return "—"
            return " / ".join(f"{v * 1000:.0f}" for v in (statistics.median(values), percentile(values, 99), max(values))) + " ms"
        print(f"| {'long poll + deltas' if push else 'polling every 5 s'} | {count} | {fmt(r['edges'])} | {fmt(r['gates'])} | "
              f"{r['bytes']:.0f} B | {r['cpu'] * 1000:.1f} ms |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
