#!/usr/bin/env bash
# Installs what the integration tests need on a fresh machine:
#   - mosquitto (Debian package) for the MQTT sink tests;
#   - dynalite (npm package, a DynamoDB-compatible server) into .tools/
#     for the DynamoDB state tests.
# Idempotent: does nothing for what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  echo "test-deps: installing mosquitto (apt-get)" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends mosquitto >/dev/null
  # the package starts a system broker on 1883 on some systems; tests use their own
  ($SUDO systemctl stop mosquitto 2>/dev/null || $SUDO service mosquitto stop 2>/dev/null || true) >/dev/null 2>&1
fi

if [ ! -x .tools/dynalite/node_modules/.bin/dynalite ]; then
  if ! command -v npm >/dev/null; then
    echo "test-deps: npm is required to install dynalite (apt-get install nodejs npm)" >&2
    exit 1
  fi
  echo "test-deps: installing dynalite (npm) into .tools/dynalite" >&2
  mkdir -p .tools/dynalite
  (cd .tools/dynalite && npm install --no-audit --no-fund --silent --prefix . dynalite@3 >/dev/null)
fi
