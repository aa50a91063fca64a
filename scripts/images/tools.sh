#!/usr/bin/env bash
# What the image scripts need: root, buildah and debootstrap (installed with apt-get when missing).
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
    echo "error: the image scripts run buildah as root (vfs storage, chroot isolation); run as root" >&2
    exit 2
fi
missing=()
for tool in buildah debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
        echo "error: install ${missing[*]} (Debian/Ubuntu packages of the same names)" >&2
        exit 2
    fi
    echo "installing ${missing[*]} ..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi
