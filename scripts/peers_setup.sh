#!/usr/bin/env bash
# One virtualenv per serving framework under .venv-peers/<name> (git-ignored), for bench/serving/peers.
# Each gets the project's serving side (-e '.[serve]', no training extras) plus the framework; where a
# framework's pins conflict with the project's, the framework wins inside its own venv.
# Usage: scripts/peers_setup.sh [kserve|bentoml|litserve|rayserve ...]   (default: all four)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
names=("$@"); [ ${#names[@]} -eq 0 ] && names=(kserve bentoml litserve rayserve)
for name in "${names[@]}"; do
  venv=.venv-peers/$name
  start=$(date +%s)
  [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
  # pyproject.toml's extra peers-<name>: the serving side and the framework; with the project's
  # constraints where they resolve, else the framework's own pins win (only inside this venv).
  "$venv/bin/pip" install -q -e ".[peers-$name]" -c constraints.txt \
    || "$venv/bin/pip" install -q -e ".[peers-$name]"
  "$venv/bin/python" -c "import service.live.pipeline"
  # No CUDA: nvidia-ml-py (BentoML's pure-Python NVML binding) is the only nvidia package allowed.
  cuda=$("$venv/bin/pip" list 2>/dev/null | grep -i nvidia | grep -vi '^nvidia-ml-py ' || true)
  if [ -n "$cuda" ]; then echo "$name: CUDA packages pulled in: $cuda" >&2; exit 1; fi
  echo "$name: $(( $(date +%s) - start )) s, $(du -sh "$venv" | cut -f1)"
done
