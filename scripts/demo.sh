#!/usr/bin/env bash
# The main job on demo data: generate logs, train, export, publish to a local registry.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${DEMO_ROWS:-200000}
REGISTRY=${REGISTRY:-registry}

[ -d data/demo ] || ranker demo-data data/demo --rows "$ROWS"
ranker train configs/demo.yaml --out runs/demo-bundle --registry "$REGISTRY"
