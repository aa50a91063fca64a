#!/usr/bin/env bash
# The Python base image the Dockerfile builds on (its PYTHON_IMAGE build arg), made without a Docker
# engine: debootstrap a minimal Debian bookworm root with python3, pip and venv into a buildah
# container, then commit it. Prints the image name on stdout (progress goes to stderr).
#
#   scripts/images/base.sh            # as root -> localhost/ranker-python:bookworm-<hash>
#
# Needs root, buildah and debootstrap (scripts/images/tools.sh installs them on Debian/Ubuntu).
# The image is cached in the buildah store (scripts/images/buildah.sh: .cache/containers) under a
# tag keyed by this script and the CA bundle, so a re-run takes a second; `rm -rf .cache` resets it.
#
# Knobs: DEBIAN_MIRROR (default http://deb.debian.org/debian), CA_BUNDLE (default the host's
# /etc/ssl/certs/ca-certificates.crt: where TLS to the package index is intercepted, the image must
# trust the same roots as the host).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/buildah.sh"
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
PACKAGES=python3,python3-pip,python3-venv,ca-certificates,libgomp1   # libgomp1: LightGBM's OpenMP (train image)

key=$(cat "$0" "$CA_BUNDLE" | sha256sum | cut -c1-12)
IMAGE=localhost/ranker-python:bookworm-$key
if bah inspect --type image "$IMAGE" >/dev/null 2>&1; then
    echo "base image $IMAGE is cached" >&2
    echo "$IMAGE"
    exit 0
fi

# Bases of earlier versions of this script or CA bundle: vfs keeps a full copy of each.
for old in $(bah images --noheading --format '{{.Name}}:{{.Tag}}' | grep '^localhost/ranker-python:'); do
    bah rmi "$old" >/dev/null
done
ctr=$(bah from scratch)
trap 'bah rm "$ctr" >/dev/null 2>&1 || true' EXIT
root=$(bah mount "$ctr")
echo "debootstrap bookworm ($PACKAGES) from $MIRROR ..." >&2
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$MIRROR" >&2

# `python`/`pip` as the official python images name them; pip may install into the system Python
# (an image has no other user of it), so drop Debian's EXTERNALLY-MANAGED guard (PEP 668).
ln -sf python3 "$root/usr/bin/python"
ln -sf pip3 "$root/usr/bin/pip"
rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
install -m 0644 "$CA_BUNDLE" "$root/etc/ssl/certs/ca-certificates.crt"
# What an image never needs: package lists, the .deb cache, docs, man pages, translations.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
       "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/var/log/*
bah umount "$ctr" >/dev/null

bah config --env LANG=C.UTF-8 --cmd python3 \
    --label org.opencontainers.image.description="Debian bookworm minbase + python3, pip, venv (scripts/images/base.sh)" \
    "$ctr"
bah commit --rm --quiet "$ctr" "$IMAGE" >/dev/null
trap - EXIT
echo "$IMAGE"
