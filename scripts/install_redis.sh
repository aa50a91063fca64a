#!/usr/bin/env bash
# The tests start a real redis-server (tests/redis_helpers.py); install Debian's package when it is
# missing. Needs root (CI and the dev machines run as root); elsewhere it says what to run.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "redis-server is missing and this is not root: run 'sudo apt-get install -y redis-server'" >&2
    echo "(the Redis feature-store tests need it)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends redis-server >/dev/null
redis-server --version
