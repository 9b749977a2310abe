#!/usr/bin/env python3
"""How soon `pat serve` publishes what it must, measured (the tests assert only the events).

usage: scripts/publish-faults.py cli   [--runs N] [--database URL] [--pat PATH]
       scripts/publish-faults.py fault [--runs N] [--outage SECONDS] [--database URL] [--pat PATH]

cli    `pat serve` (SQLite in a temporary home, or --database) with a webhook receiver; N times a
       PAT is created and then revoked with the CLI (another process). Measured from `pat revoke`
       returning to (a) the served list changing (its ETag; polled every 5 ms — nothing else can
       publish: the server's timer is 30 minutes away) and (b) the revoked event reaching the
       receiver. Each run then checks with `pat verify` that the served list refuses the token.
       Target: within a second.

fault  `pat serve`; API traffic (creates) runs while HOME/published is made unwritable (mode 0500,
       and revocations.bin replaced by a directory, which stops root too) for --outage seconds,
       during which PATs are revoked through the API (each answered "published": false). The
       traffic stops when the folder is restored (so no later change publishes for them: only
       the retry can). Measured from the restore to "enforced": /status reporting 0 unpublished
       changes, after which every PAT revoked meanwhile must be refused by the API (401).
       Target: within 2 s for the default outage (1 s). With longer outages the retry backs off
       (1 s, 2 s, 4 s … 60 s), and the wait after a restore grows with it.

Prints each run, then the median and maximum; exits 1 when a run misses its event.
"""
import argparse
import http.server
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["cli", "fault"])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--outage", type=float, default=1.0, help="fault: seconds the folder stays unwritable")
    parser.add_argument("--database", help="a postgres:// URL (default: HOME/pat.db)")
    parser.add_argument("--pat", default=default_pat())
    args = parser.parse_args()
    if not os.access(args.pat, os.X_OK):
        sys.exit(f"no pat binary at {args.pat}: run `swift build --product pat` (or pass --pat)")
    print(f"{args.mode}: {args.runs} runs, pat at {args.pat}, registry {'PostgreSQL' if args.database else 'SQLite'}; "
          f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}; load average {os.getloadavg()[0]:.1f}")
    return cli(args) if args.mode == "cli" else fault(args)


def default_pat():
    release = os.path.join(ROOT, ".build", "release", "pat")
    return release if os.access(release, os.X_OK) else os.path.join(ROOT, ".build", "debug", "pat")


class Home:
    """A temporary PATKit home, the `pat` runner and a running `pat serve`."""

    def __init__(self, args, directory):
        self.args, self.path = args, directory
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PAT_")}
        self.env["PAT_HOME"] = directory
        if args.database:
            self.env["PAT_DATABASE_URL"] = args.database
        self.server = None

    def pat(self, *arguments):
        result = subprocess.run([self.args.pat, *arguments], env=self.env, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            sys.exit(f"pat {' '.join(arguments)} failed: {result.stderr.strip()}")
        return result.stdout

    def serve(self, *arguments):
        self.log = open(os.path.join(self.path, "serve.log"), "w+")
        self.server = subprocess.Popen([self.args.pat, "serve", "--listen", "127.0.0.1:0", "--rate-limit", "0", *arguments],
                                       env=self.env, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                self.log.seek(0)
                sys.exit(f"pat serve exited: {self.log.read()[-2000:]}")
            self.log.seek(0)
            match = re.search(r"started and listening on 127\.0\.0\.1:(\d+)", self.log.read())
            if match:
                self.port = int(match.group(1))
                return
            time.sleep(0.05)
        sys.exit("pat serve did not start within 60 s")

    def stop(self):
        if self.server:
            self.server.terminate()
            self.server.wait(timeout=60)

    def get(self, path, token=None, method="GET", body=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()


class Receiver:
    """A webhook endpoint on loopback: records when each revoked event arrives, by PAT id."""

    def __init__(self):
        arrivals = self.arrivals = {}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                event = json.loads(body)
                if event.get("event") == "personalAccessToken.revoked":
                    arrivals[event["data"]["id"]] = time.monotonic()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def cli(args):
    publish_delays, hook_delays, failed = [], [], False
    with tempfile.TemporaryDirectory(prefix="patkit-cli-") as directory:
        home, receiver = Home(args, directory), Receiver()
        home.pat("keys", "generate")
        secret = os.path.join(directory, "hook.key")
        with open(secret, "w") as f:
            f.write(os.urandom(32).hex())
        os.chmod(secret, 0o600)
        home.serve("--webhook", f"{receiver.url}={secret}")
        try:
            for run in range(args.runs):
                created = json.loads(home.pat("create", "--owner", "o", "--name", f"p{run}-{os.getpid()}", "--scope", "clients:view",
                                              "--expires-in", "1d", "--json"))
                time.sleep(1.5)  # let the create's own publish and delivery pass
                etag = home.get("/.well-known/pat/revocations")[1].get("ETag")
                home.pat("revoke", "--", created["id"])
                revoked = time.monotonic()
                published = None
                while time.monotonic() - revoked < 30:
                    if home.get("/.well-known/pat/revocations")[1].get("ETag") != etag:
                        published = time.monotonic()
                        break
                    time.sleep(0.005)
                while created["id"] not in receiver.arrivals and time.monotonic() - revoked < 30:
                    time.sleep(0.005)
                delivered = receiver.arrivals.get(created["id"])
                if published is None or delivered is None or not refused(home, created["accessToken"]):
                    print(f"run {run + 1}: MISSED (published: {published is not None}, delivered: {delivered is not None})")
                    failed = True
                    continue
                publish_delays.append(published - revoked)
                hook_delays.append(delivered - revoked)
                print(f"run {run + 1}: list published {publish_delays[-1] * 1000:.0f} ms, "
                      f"webhook delivered {hook_delays[-1] * 1000:.0f} ms after `pat revoke` returned")
        finally:
            home.stop()
    if publish_delays:
        print(f"\npublished: median {statistics.median(publish_delays) * 1000:.0f} ms, max {max(publish_delays) * 1000:.0f} ms; "
              f"webhook: median {statistics.median(hook_delays) * 1000:.0f} ms, max {max(hook_delays) * 1000:.0f} ms "
              f"({len(publish_delays)} runs)")
    return 1 if failed else 0


def refused(home, token):
    """`pat verify` against what the server serves right now refuses the token as revoked."""
    status, _, body = home.get("/.well-known/pat/revocations")
    keys = home.get("/.well-known/pat/keys")[2]
    served = os.path.join(home.path, "served")
    os.makedirs(served, exist_ok=True)
    with open(os.path.join(served, "revocations.bin"), "wb") as f:
        f.write(body)
    with open(os.path.join(served, "keys.json"), "wb") as f:
        f.write(keys)
    anchors = os.path.join(served, "anchors.txt")
    with open(anchors, "w") as f:
        f.write(home.pat("keys", "export", "--anchors"))
    result = subprocess.run([home.args.pat, "verify", "--json", "--trust-anchor", anchors, "--keys", os.path.join(served, "keys.json"),
                             "--revocations", os.path.join(served, "revocations.bin"), token],
                            env=home.env, capture_output=True, text=True, timeout=60)
    return status == 200 and json.loads(result.stdout).get("code") == "revoked"


def fault(args):
    delays, failed = [], False
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="patkit-fault-") as directory:
            home = Home(args, directory)
            home.pat("keys", "generate")
            tag = f"{os.getpid()}-{run}"  # names unique per run: a --database registry outlives the run
            admin = home.pat("create", "--owner", "admin", "--name", f"bootstrap-{tag}", "--scope", "pats:admin",
                             "--catalog", "management", "--expires-in", "1d").strip()
            home.serve()
            try:
                victims = []
                for index in range(40):
                    status, _, body = home.get("/v3/personal-access-tokens", admin, "POST",
                                               {"name": f"v{index}-{tag}", "owner": "vic", "scopes": ["pats:read"]})
                    created = json.loads(body)
                    victims.append((created["id"], created["accessToken"]))
                stop = threading.Event()

                def traffic():
                    index = 0
                    while not stop.is_set():
                        home.get("/v3/personal-access-tokens", admin, "POST", {"name": f"t{index}-{tag}", "owner": "tess",
                                                                                "scopes": ["clients:view"]})
                        index += 1

                worker = threading.Thread(target=traffic)
                worker.start()
                time.sleep(0.3)
                published_dir = os.path.join(directory, "published")
                listed = os.path.join(published_dir, "revocations.bin")
                saved = os.path.join(directory, "revocations.bin.saved")
                os.rename(listed, saved)
                os.mkdir(listed)
                os.chmod(published_dir, 0o500)
                broken = time.monotonic()
                revoked, unpublished_answers = [], 0
                for victim in victims:
                    if time.monotonic() - broken >= args.outage:
                        break
                    status, _, body = home.get(f"/v3/personal-access-tokens/{victim[0]}/revoke", admin, "POST")
                    unpublished_answers += json.loads(body).get("published") is False
                    revoked.append(victim)
                while time.monotonic() - broken < args.outage:
                    time.sleep(0.01)
                stop.set()
                worker.join()
                os.chmod(published_dir, 0o700)
                os.rmdir(listed)
                os.rename(saved, listed)
                restored = time.monotonic()
                enforced = None
                while time.monotonic() - restored < 120:
                    status, _, body = home.get("/status")
                    if status == 200 and json.loads(body)["publishing"]["unpublishedChanges"] == 0:
                        enforced = time.monotonic()
                        break
                    time.sleep(0.005)
                refused_all = enforced is not None and all(
                    home.get(f"/v3/personal-access-tokens/{victim[0]}", victim[1])[0] == 401 for victim in revoked)
                if not refused_all:
                    print(f"run {run + 1}: MISSED (enforced: {enforced is not None})")
                    failed = True
                    continue
                delays.append(enforced - restored)
                print(f"run {run + 1}: {len(revoked)} revokes while unwritable ({unpublished_answers} answered "
                      f"\"published\": false); enforced {delays[-1] * 1000:.0f} ms after the restore")
            finally:
                home.stop()
    if delays:
        print(f"\noutage {args.outage:g} s: restore → enforced median {statistics.median(delays) * 1000:.0f} ms, "
              f"max {max(delays) * 1000:.0f} ms ({len(delays)} runs)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
