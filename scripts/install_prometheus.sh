#!/usr/bin/env bash
# The alert-rule tests run promtool and a real prometheus (tests/prometheus_helpers.py); install Debian's
# package when either is missing. Needs root (CI and the dev machines run as root); elsewhere it says
# what to run. The package's own service is stopped and disabled: the tests start their own servers.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "prometheus is missing and this is not root: run 'sudo apt-get install -y prometheus'" >&2
    echo "(the alert-rule tests need prometheus and promtool)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
else
    service prometheus stop >/dev/null 2>&1 || true
    update-rc.d prometheus disable >/dev/null 2>&1 || true
fi
prometheus --version 2>&1 | head -1
