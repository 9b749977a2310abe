#!/usr/bin/env python3
"""Measures the issuer beyond one machine (issue 10): management API throughput, change
propagation between `pat serve` nodes, and publish latency at 1,000,000 entries.

  scripts/multinode-bench.py throughput [--seconds 10] [--connections 16] [--runs 3]
      creates/s and revokes/s through the management API (wrk), for an SQLite registry on one
      node, PostgreSQL on one node and PostgreSQL on two nodes sharing the database (two wrk,
      one per node, summed); configurations interleaved run by run, medians reported.
  scripts/multinode-bench.py propagation [--rounds 20]
      from sending a revoke to node A until node B serves a list refusing it (LISTEN/NOTIFY, then
      B's publish), and until B's webhook dispatcher delivers the event (A has no webhooks).
  scripts/multinode-bench.py publish [--entries 1000000] [--runs 5]
      `pat publish` with that many revoked PATs in the registry, SQLite and PostgreSQL.

Needs a release build of pat (swift build -c release --product pat; --pat PATH to use another),
wrk (apt-get install wrk) for throughput, and PostgreSQL: $PATKIT_POSTGRES_URL, else the throw-away
cluster of scripts/postgres-test-server.sh (started when needed). Each run uses fresh homes and a
fresh database, removed afterwards. Times are wall clock on whatever else the machine is doing:
run it on a quiet machine, and report the date and the machine with the figures.
"""
import argparse
import hashlib
import http.client
import http.server
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API = "/v3/personal-access-tokens"


def server_url():
    url = os.environ.get("PATKIT_POSTGRES_URL")
    if url:
        return url
    return subprocess.run(["bash", os.path.join(ROOT, "scripts/postgres-test-server.sh"), "start"],
                          check=True, capture_output=True, text=True).stdout.strip()


def psql(url, sql):
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True, capture_output=True)


def fresh_database(url):
    """A new database on the server of `url`; its URL."""
    name = "patkit_bench_" + uuid.uuid4().hex[:12]
    psql(url, f'CREATE DATABASE "{name}"')
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name, query="sslmode=disable")), name


def drop_database(url, name):
    subprocess.run(["psql", "-q", url, "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], capture_output=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Home:
    """A PATKit home with a signing key (copied from `keys_from` when given)."""

    def __init__(self, pat, keys_from=None):
        self.pat = pat
        self.path = tempfile.mkdtemp(prefix="patbench-")
        if keys_from:
            shutil.copytree(os.path.join(keys_from.path, "keys"), os.path.join(self.path, "keys"))
        else:
            self.run("keys", "generate")

    def run(self, *args, database=None):
        env = dict(os.environ, PAT_HOME=self.path)
        if database:
            env["PAT_DATABASE_URL"] = database
        return subprocess.run([self.pat, *args], check=True, capture_output=True, text=True, env=env).stdout

    def admin(self, database=None):
        return self.run("create", "--owner", "admin", "--name", "bootstrap", "--scope", "pats:admin",
                        "--catalog", "management", "--expires-in", "1d", database=database).strip()

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)


class Node:
    """`pat serve` on a free loopback port."""

    def __init__(self, home, database=None, extra=()):
        self.port = free_port()
        env = dict(os.environ, PAT_HOME=home.path)
        if database:
            env["PAT_DATABASE_URL"] = database
        self.process = subprocess.Popen([home.pat, "serve", "--listen", f"127.0.0.1:{self.port}", "--rate-limit", "0",
                                         "--log-level", "warning", *extra],
                                        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                status, _ = get(self.port, "/.well-known/pat/keys")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("pat serve did not start")

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def get(port, path, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


def post(port, path, token, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connection.request("POST", path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


# ---------------------------------------------------------------------------------------------
# throughput

CREATE_LUA = r"""
-- `id` is set per thread by setup() (a global of the thread's Lua state: no local may shadow it).
local counter = 0
local threads = {}
function setup(thread) thread:set("id", #threads); table.insert(threads, thread) end
request = function()
  counter = counter + 1
  local body = string.format('{"name":"%s-%d-%d","owner":"load%d","scopes":["clients:view"],"duration":"1d"}',
                             os.getenv("BENCH_PREFIX"), id, counter, counter % 50)
  return wrk.format("POST", os.getenv("BENCH_PATH"),
                    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")}, body)
end
"""

REVOKE_LUA = r"""
local ids = {}
local count = 0
local index = 0
local threads = {}
function setup(thread) thread:set("id", #threads); table.insert(threads, thread) end
function init(args)
  for line in io.lines(os.getenv("BENCH_IDS")) do table.insert(ids, line) end
  count = tonumber(os.getenv("BENCH_THREADS"))
  index = id + 1
end
request = function()
  local pat = ids[index] or ids[#ids] or "none"
  index = index + count
  return wrk.format("POST", os.getenv("BENCH_PATH") .. "/" .. pat .. "/revoke",
                    {["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")}, nil)
end
"""


def wrk(port, script, seconds, connections, env):
    threads = max(1, min(2, connections))
    result = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "-s", script,
                             f"http://127.0.0.1:{port}"],
                            capture_output=True, text=True, env=dict(os.environ, BENCH_THREADS=str(threads), **env), check=True)
    requests = errors = 0
    for line in result.stdout.splitlines():
        line = line.strip()
        if "requests in" in line:
            requests = int(line.split()[0])
        if line.startswith("Non-2xx"):
            errors = int(line.split()[-1])
        if line.startswith("Socket errors"):
            errors += sum(int(part.split()[-1]) for part in line.split(":", 1)[1].split(","))
    return requests, errors


def registry_ids(kind, database, home, prefix):
    if kind == "sqlite":
        with sqlite3.connect(os.path.join(home.path, "pat.db")) as db:
            return [row[0] for row in db.execute("SELECT id FROM pats WHERE name LIKE ? ORDER BY id", (prefix + "%",))]
    out = subprocess.run(["psql", "-tA", database, "-c", f"SELECT id FROM patkit.pats WHERE name LIKE '{prefix}%' ORDER BY id"],
                         check=True, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line]


def throughput_once(kind, nodes_count, args, pat, scripts, url):
    database = name = None
    if kind == "postgres":
        database, name = fresh_database(url)
    homes = [Home(pat)]
    for _ in range(1, nodes_count):
        homes.append(Home(pat, keys_from=homes[0]))
    token = homes[0].admin(database)
    nodes = [Node(home, database) for home in homes]
    try:
        prefix = "c" + uuid.uuid4().hex[:6]
        per_node = max(1, args.connections // nodes_count)
        results = [None] * nodes_count

        def load(index, script, seconds, env):
            results[index] = wrk(nodes[index].port, script, seconds, per_node, env)

        def run_all(script, seconds, envs):
            workers = [threading.Thread(target=load, args=(i, script, seconds, envs[i])) for i in range(nodes_count)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            return sum(r[0] for r in results) / seconds, sum(r[1] for r in results)

        base = {"BENCH_TOKEN": token, "BENCH_PATH": API}
        creates, create_errors = run_all(scripts["create"], args.seconds,
                                         [dict(base, BENCH_PREFIX=f"{prefix}{i}") for i in range(nodes_count)])
        ids = registry_ids(kind, database, homes[0], prefix)
        revoke_seconds = max(1, args.seconds // 3)
        files = []
        for i in range(nodes_count):
            handle, path = tempfile.mkstemp(prefix="patbench-ids-")
            with os.fdopen(handle, "w") as f:
                f.write("\n".join(ids[i::nodes_count]) + "\n")
            files.append(path)
        revokes, revoke_errors = run_all(scripts["revoke"], revoke_seconds,
                                         [dict(base, BENCH_IDS=files[i]) for i in range(nodes_count)])
        for path in files:
            os.unlink(path)
        exhausted = revokes * revoke_seconds > len(ids)
        return creates, revokes, (create_errors, revoke_errors), exhausted
    finally:
        for node in nodes:
            node.stop()
        for home in homes:
            home.remove()
        if name:
            drop_database(url, name)


def throughput(args, pat):
    url = server_url()
    scripts = {}
    for key, text in (("create", CREATE_LUA), ("revoke", REVOKE_LUA)):
        handle, path = tempfile.mkstemp(suffix=".lua")
        with os.fdopen(handle, "w") as f:
            f.write(text)
        scripts[key] = path
    configurations = [("sqlite", 1), ("postgres", 1), ("postgres", 2)]
    measured = {c: [] for c in configurations}
    for run in range(args.runs):
        for configuration in configurations:
            creates, revokes, errors, exhausted = throughput_once(*configuration, args, pat, scripts, url)
            measured[configuration].append((creates, revokes))
            note = " (ran out of PATs to revoke: revokes/s is a lower bound)" if exhausted else ""
            print(f"run {run + 1}: {configuration[0]:8} × {configuration[1]} node(s): {creates:8.1f} creates/s "
                  f"{revokes:8.1f} revokes/s, errors (non-2xx, socket): {errors[0]} creating, {errors[1]} revoking{note}",
                  flush=True)
    print(f"\nmedians of {args.runs} runs, {args.seconds} s of creates and {max(1, args.seconds // 3)} s of revokes each, "
          f"{args.connections} connections:")
    print("| registry | nodes | creates/s | revokes/s |\n| --- | --- | --- | --- |")
    for (kind, count), values in measured.items():
        print(f"| {kind} | {count} | {statistics.median(v[0] for v in values):.0f} | {statistics.median(v[1] for v in values):.0f} |")
    for path in scripts.values():
        os.unlink(path)


# ---------------------------------------------------------------------------------------------
# propagation


class Receiver(http.server.ThreadingHTTPServer):
    """Records when each webhook event arrives: (event, PAT id) → monotonic time."""

    def __init__(self):
        self.arrivals = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = time.monotonic()
                try:
                    data = json.loads(body)
                    key = (data["event"], data["data"]["id"])
                    with receiver.lock:
                        receiver.arrivals.setdefault(key, now)
                except (ValueError, KeyError):
                    pass
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def list_key(pat_id):
    """The revocation-list lookup key of a PAT id (README: BLAKE2b-128 of "patkit.jti" 0x00 id)."""
    return hashlib.blake2b(b"patkit.jti\0" + pat_id.encode(), digest_size=16).digest()


def propagation(args, pat):
    url = server_url()
    database, name = fresh_database(url)
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    secret = tempfile.mktemp(prefix="patbench-hook-")
    with open(os.open(secret, os.O_CREAT | os.O_WRONLY, 0o600), "w") as f:
        f.write(uuid.uuid4().hex + uuid.uuid4().hex)
    a = Home(pat)
    b = Home(pat, keys_from=a)
    token = a.admin(database)
    node_a = Node(a, database)
    node_b = Node(b, database, ["--webhook", f"http://127.0.0.1:{receiver.server_address[1]}/hook",
                                "--webhook-secret-file", secret])
    listed, pushed, answered = [], [], []
    try:
        for round_ in range(args.rounds):
            status, body = post(node_a.port, API, token, {"name": f"p{round_}", "scopes": ["clients:view"], "duration": "1d"})
            assert status == 201, body
            pat_id = json.loads(body)["id"]
            key = list_key(pat_id)
            time.sleep(0.2)  # let the create settle everywhere first
            # From the moment the revoke is sent: node A answers only after its own publish, while
            # the commit (and so the NOTIFY) comes before that.
            t0 = time.monotonic()
            status, _ = post(node_a.port, f"{API}/{pat_id}/revoke", token)
            answered.append(time.monotonic() - t0)
            assert status == 200
            while True:
                _, served = get(node_b.port, "/.well-known/pat/revocations")
                if key in served:
                    listed.append(time.monotonic() - t0)
                    break
                if time.monotonic() - t0 > 30:
                    raise RuntimeError("node B never published the revoke")
                time.sleep(0.002)
            while ("personalAccessToken.revoked", pat_id) not in receiver.arrivals:
                if time.monotonic() - t0 > 30:
                    raise RuntimeError("node B never delivered the revoke's webhook")
                time.sleep(0.002)
            pushed.append(receiver.arrivals[("personalAccessToken.revoked", pat_id)] - t0)
    finally:
        node_a.stop()
        node_b.stop()
        a.remove()
        b.remove()
        os.unlink(secret)
        receiver.shutdown()
        drop_database(url, name)

    def summary(values):
        ms = sorted(v * 1000 for v in values)
        return f"median {statistics.median(ms):.0f} ms, p90 {ms[int(len(ms) * 0.9) - 1]:.0f} ms, max {ms[-1]:.0f} ms"

    print(f"{args.rounds} revokes through node A (PostgreSQL, LISTEN/NOTIFY), from the moment the request is sent:")
    print(f"  node A answers 200 (after its own publish): {summary(answered)}")
    print(f"  node B serves a list refusing it:           {summary(listed)}")
    print(f"  node B's webhook delivers it:               {summary(pushed)}")


# ---------------------------------------------------------------------------------------------
# publish latency


def publish(args, pat):
    url = server_url()
    now = int(time.time())
    horizon = now + 30 * 86400
    results = {}
    for kind in ("sqlite", "postgres"):
        home = Home(pat)
        database = name = None
        try:
            if kind == "postgres":
                database, name = fresh_database(url)
            home.run("publish", database=database)  # creates and migrates the registry (`pat list` never does)
            started = time.monotonic()
            if kind == "sqlite":
                with sqlite3.connect(os.path.join(home.path, "pat.db")) as db:
                    db.executemany(
                        "INSERT INTO pats (id, owner, name, scopes, generation, floor, created_at, updated_at, expires_at, "
                        "max_expires_at, lineage) VALUES (?, ?, ?, 'clients:view:*', 1, 2, ?, ?, ?, ?, '')",
                        ((f"bench{i:017d}", f"owner{i % 1000}", f"n{i}", now, now, horizon, horizon) for i in range(args.entries)))
            else:
                psql(database, f"""
                    INSERT INTO patkit.pats (id, owner, name, scopes, generation, floor, created_at, updated_at, expires_at,
                                             max_expires_at, lineage)
                    SELECT 'bench' || lpad(i::text, 17, '0'), 'owner' || (i % 1000), 'n' || i, 'clients:view:*', 1, 2,
                           {now}, {now}, {horizon}, {horizon}, ''
                    FROM generate_series(0, {args.entries - 1}) AS i""")
                psql(database, "VACUUM ANALYZE patkit.pats")
            print(f"{kind}: {args.entries} revoked PATs loaded in {time.monotonic() - started:.1f} s", flush=True)
            times = []
            for _ in range(args.runs):
                started = time.monotonic()
                output = home.run("publish", database=database)
                times.append(time.monotonic() - started)
            entries = output.split("revocations.bin: ")[1].split(" PAT")[0]
            size = os.path.getsize(os.path.join(home.path, "published", "revocations.bin"))
            results[kind] = times
            print(f"{kind}: pat publish with {entries} entries ({size / 1e6:.1f} MB): "
                  + ", ".join(f"{t:.2f}" for t in times) + f" s; median {statistics.median(times):.2f} s", flush=True)
        finally:
            home.remove()
            if name:
                drop_database(url, name)
    print("| registry | entries | publish (median, whole `pat publish` process) |\n| --- | --- | --- |")
    for kind, times in results.items():
        print(f"| {kind} | {args.entries:,} | {statistics.median(times):.2f} s |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["throughput", "propagation", "publish"])
    parser.add_argument("--pat", default=os.path.join(ROOT, ".build/release/pat"))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    if not os.access(args.pat, os.X_OK):
        sys.exit(f"{args.pat} not found: swift build -c release --product pat (or --pat PATH)")
    {"throughput": throughput, "propagation": propagation, "publish": publish}[args.what](args, os.path.abspath(args.pat))


if __name__ == "__main__":
    main()
