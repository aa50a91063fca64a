#!/usr/bin/env bash
# The whole product on demo data, on this machine:
#   generate impression logs -> train -> export a verified bundle -> publish it to a local registry
#   -> publish the item and user feature snapshots (the embedded feature store)
#   -> start the ranking server on 127.0.0.1 (impression log on, into logs/ beside the registry)
#   -> send one real /v1/rank request with ids only (features looked up by id) and print the answer.
#
# Then the server keeps running in the foreground (Ctrl-C stops it cleanly) when the output is a
# terminal; otherwise (CI, pipes) it is stopped cleanly right after the example request.
# Override with KEEP_SERVING=1 or KEEP_SERVING=0. Other knobs: DEMO_ROWS, REGISTRY, PORT, LOG_DIR.
# It ends with the time each stage took: setup (SETUP_MS, measured by `make run`), training, serving.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${DEMO_ROWS:-200000}
REGISTRY=${REGISTRY:-registry}
PORT=${PORT:-8000}
LOG_DIR=${LOG_DIR:-$(dirname "$REGISTRY")/logs}  # the impression log, beside the registry
if [ -t 1 ]; then KEEP_SERVING=${KEEP_SERVING:-1}; else KEEP_SERVING=${KEEP_SERVING:-0}; fi
URL="http://127.0.0.1:$PORT"
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
seconds() { awk -v ms="$1" 'BEGIN { printf "%.1f s", ms / 1000 }'; }

T_DATA=$(now_ms)
[ -d data/demo ] && [ -f data/demo-features/items.parquet ] || ranker demo-data data/demo --rows "$ROWS"
T_TRAIN=$(now_ms)
ranker train configs/demo.yaml --out runs/demo-bundle --registry "$REGISTRY"
# The feature store: the catalogue's item and user features, validated against the model just published.
ranker features publish data/demo-features/items.parquet --registry "$REGISTRY" --entity item
ranker features publish data/demo-features/users.parquet --registry "$REGISTRY" --entity user
T_SERVE=$(now_ms)

echo "starting the ranking server on $URL (log: runs/serve.log; impressions: $LOG_DIR/impressions)"
ranker-serve --registry-root "$REGISTRY" --model-name demo --weights-path configs/weights.yaml \
    --log-dir "$LOG_DIR" --host 127.0.0.1 --port "$PORT" > runs/serve.log 2>&1 &
SERVER=$!
stop_server() {
    if kill -0 "$SERVER" 2>/dev/null; then
        kill -TERM "$SERVER" && wait "$SERVER" || true
        echo "server stopped"
    fi
}
trap stop_server EXIT
trap 'exit 130' INT TERM

python - "$URL" "$SERVER" <<'PY'
import os, sys, time, urllib.request
url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        if urllib.request.urlopen(url + "/v2/health/ready", timeout=2).status == 200:
            sys.exit(0)
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("the server exited; see runs/serve.log")
    time.sleep(0.2)
sys.exit("the server did not become ready within 120 s; see runs/serve.log")
PY
T_READY=$(now_ms)

echo
echo "POST $URL/v1/rank  (ids only: 20 candidates of the demo catalogue, top 5, profile satisfaction_first;"
echo "item and user features come from the embedded feature store):"
python -m service.examples runs/demo-bundle --ids-only --candidates 20 --top-k 5 --profile satisfaction_first > runs/example-request.json
python - runs/example-request.json <<'PY'
import json, sys
body = json.load(open(sys.argv[1]))
print(json.dumps({**body, "candidates": body["candidates"][:3] + ["..."]}))
PY
python - "$URL" runs/example-request.json <<'PY'
import json, sys, urllib.request
url, path = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url + "/v1/rank", data=open(path, "rb").read(), headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=10) as r:
    print(json.dumps(json.load(r), indent=2))
PY
T_DONE=$(now_ms)
if [ "$KEEP_SERVING" != "1" ]; then
    stop_server  # the log writer publishes its Parquet file on the way out
    python - "$LOG_DIR" <<'PY'
import sys
from pathlib import Path
import pyarrow.parquet as pq
files = sorted(Path(sys.argv[1]).glob("impressions/date=*/hour=*/*.parquet"))
rows = sum(pq.read_metadata(f).num_rows for f in files)
print(f"impression log: {rows} rows in {len(files)} Parquet file(s) under {sys.argv[1]}/impressions")
PY
fi

echo
echo "time: setup $(if [ -n "${SETUP_MS:-}" ]; then seconds "$SETUP_MS"; else echo "not measured (run through make run)"; fi)," \
     "training $(seconds $((T_SERVE - T_DATA))) (demo data $(seconds $((T_TRAIN - T_DATA))), train + export + publish $(seconds $((T_SERVE - T_TRAIN))))," \
     "serving $(seconds $((T_DONE - T_SERVE))) (start to ready $(seconds $((T_READY - T_SERVE))), first request $(seconds $((T_DONE - T_READY))))"

if [ "$KEEP_SERVING" = "1" ]; then
    echo
    echo "The server keeps running on $URL (Ctrl-C to stop). Try:"
    echo "  curl -s $URL/v1/rank -H 'Content-Type: application/json' -d @runs/example-request.json"
    echo "  curl -s $URL/v1/models;  curl -s $URL/metrics | grep ^ranker_"
    echo "  edit configs/weights.yaml: the next request uses the new profiles"
    echo "  ls $LOG_DIR/impressions/*/*: what was ranked, as Parquet (a file per segment roll and at shutdown)"
    wait "$SERVER"
fi
