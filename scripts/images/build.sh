#!/usr/bin/env bash
# Build a target of the Dockerfile with buildah, without a Docker engine. Prints the image name.
#
#   scripts/images/build.sh serve    # as root -> localhost/ranker-serve:<version>
#   scripts/images/build.sh train    # as root -> localhost/ranker-train:<version>
#
# PYTHON_IMAGE is the base from scripts/images/base.sh. The build resolves packages where this
# machine's pip does: its settings (scripts/images/host_pip.py) go in as PIP_CONFIG_FILE, and the
# local paths they name (wheel directories, file:// indexes) are mounted read-only under /tmp/host-pip.
# For `train`, TORCH_INDEX (PyTorch's CPU index by default) is left empty when one of those
# directories holds the torch +cpu wheel that constraints.txt pins; set TORCH_INDEX to override.
# PYTHON (default .venv/bin/python, else python3) is the interpreter whose pip settings are read.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/buildah.sh"
TARGET=${1:?usage: build.sh serve|train}
cd "$REPO_ROOT"
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE=localhost/ranker-$TARGET:$VERSION
BUILD_PIP=/tmp/host-pip   # the host's pip.conf and the paths it names, during the build only

base=$("$HERE/base.sh")
pip_dir=.cache/images/pip
mount_list=$("$PYTHON" "$HERE/host_pip.py" "$pip_dir" "$BUILD_PIP")
mounts=()
[ -n "$mount_list" ] && mapfile -t mounts <<< "$mount_list"
args=(--build-arg "PYTHON_IMAGE=$base" --build-arg "PIP_CONFIG_FILE=$BUILD_PIP/conf/pip.conf"
      --volume "$REPO_ROOT/$pip_dir:$BUILD_PIP/conf:ro")
for m in "${mounts[@]+"${mounts[@]}"}"; do args+=(--volume "$m"); done

if [ "$TARGET" = train ] && [ -z "${TORCH_INDEX+set}" ]; then
    torch_pin=$(sed -n 's/^torch==\([^ ]*\).*/\1/p' constraints.txt)
    for m in "${mounts[@]+"${mounts[@]}"}"; do
        if compgen -G "${m%%:*}/torch-${torch_pin}-*.whl" >/dev/null; then
            echo "torch $torch_pin from ${m%%:*} (no TORCH_INDEX)" >&2
            TORCH_INDEX=
        fi
    done
fi
[ -n "${TORCH_INDEX+set}" ] && args+=(--build-arg "TORCH_INDEX=$TORCH_INDEX")

echo "building $IMAGE on $base ..." >&2
bah bud --pull=never --format docker --target "$TARGET" --tag "$IMAGE" "${args[@]}" . >&2
# The image this tag named before is now dangling: vfs keeps a full copy of every image, so drop it.
bah rmi --prune >/dev/null || echo "warning: could not prune dangling images (in use by a container?)" >&2
echo "$IMAGE"
