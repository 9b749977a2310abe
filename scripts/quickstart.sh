#!/usr/bin/env bash
# PATKit quick start on a fresh Debian/Ubuntu machine with Swift 6:
# installs the system libraries, builds `pat` (without the server side), makes a signing key under keys/ (once),
# publishes the signed key set and revocation list, issues a PAT and verifies it offline as an
# edge would (pinning the trust anchor). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
need=()
for pkg in libsodium-dev pkg-config libsqlite3-dev zlib1g-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]}"
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q "${need[@]}"
fi

# pyseto (a stock PASETO implementation) in .venv, for the interoperability tests.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import pyseto' 2>/dev/null; then
  echo "==> installing pyseto into .venv (interoperability tests)"
  python3 -m venv .venv && .venv/bin/pip install -q pyseto || echo "   (pyseto not installed: interoperability tests will be skipped)"
fi

# Without the Server trait (Package.swift): no Hummingbird, AsyncHTTPClient, postgres-nio,
# swift-nio-ssl or swift-crypto, which the commands below do not use and which take most of a fresh
# build. `pat serve` and the PostgreSQL registry then say to build the full pat: `swift build
# --product pat` (or `swift test`, which builds it) in this same .build.
echo "==> building pat (the commands below; without the server side: swift build --product pat adds it)"
swift build --product pat --disable-default-traits
PAT="$(swift build --show-bin-path)/pat"

if ! ls keys/k4.pid.*.secret >/dev/null 2>&1; then
  echo "==> generating a signing key in keys/"
  "$PAT" keys generate
fi
echo "==> keys"
"$PAT" keys list

echo "==> publishing the key set (signed by the online trust anchor) and the revocation list to published/"
"$PAT" publish
"$PAT" keys export --anchors > published/anchors.txt

echo "==> issuing a PAT for alice (clients:view, channels:connect_client:ch-42; 30 days)"
TOKEN="$("$PAT" issue --subject alice --scope clients:view --scope channels:connect_client:ch-42 --expires-in 30d --domain demo)"
echo "$TOKEN"

echo "==> verifying it offline as an edge would: key set signed by the pinned anchor, revocation list checked"
echo "$TOKEN" | "$PAT" verify --trust-anchor published/anchors.txt --require clients:view --domain demo
echo "==> done: the token above is valid"
