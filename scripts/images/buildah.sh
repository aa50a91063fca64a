# Sourced by the image scripts: buildah on one store per checkout, no Docker engine and no daemon.
# vfs works on any filesystem (no overlay mounts inside containers); chroot isolation needs no
# user namespaces or runc. IMAGE_STORE moves the store (default .cache/containers).
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
IMAGE_STORE=${IMAGE_STORE:-$REPO_ROOT/.cache/containers}
export BUILDAH_ISOLATION=chroot

BUILDAH=(buildah --root "$IMAGE_STORE/storage" --runroot "$IMAGE_STORE/run" --storage-driver vfs)
bah() { "${BUILDAH[@]}" "$@"; }
