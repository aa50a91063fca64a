# Two commands on a fresh machine:
#   make run    set up, train on demo data, export, publish, serve on localhost, send one request
#   make test   set up and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)

.PHONY: setup services test test-fast image-test run lint bench peers-setup bench-peers clean

setup: $(STAMP)

# PIP_EXTRA: e.g. --extra-index-url https://download.pytorch.org/whl/cpu where no local +cpu wheel lies.
PIP_EXTRA ?=

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(PIP_EXTRA) -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

# Two pytest workers, one per core of the 2-core machines this runs on (TEST_WORKERS=0 for one process).
TEST_WORKERS ?= 2

# The tests start a real redis-server (the Redis feature store) and a real prometheus (the alert rules,
# with promtool); install Debian's packages if missing.
services:
	./scripts/install_redis.sh
	./scripts/install_prometheus.sh

test: setup services
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

test-fast: setup services
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m "not slow"

# image-test: build the Dockerfile's serve and train images with buildah (no Docker engine; as root,
# installs buildah and debootstrap when missing) and run them: tests/ops/test_images.py.
image-test: setup
	./scripts/images/tools.sh
	RANKER_IMAGE_TEST=1 $(BIN)/python -m pytest -q -s -p no:randomly tests/ops/test_images.py

lint: setup
	$(BIN)/ruff check service training tests bench scripts examples

# bench: the core benchmarks' quick modes, a few minutes in all; they print their tables and write nothing
# into docs/ (each full run, which rewrites its section of docs/BENCHMARKS.md, is the command written in that
# section). The serving one needs a bundle: `make run` leaves one in runs/demo-bundle.
BENCH_BUNDLE ?= runs/demo-bundle

bench: setup
	@test -f $(BENCH_BUNDLE)/manifest.json || { echo "no bundle in $(BENCH_BUNDLE): make run first, or BENCH_BUNDLE=DIR"; exit 2; }
	$(BIN)/python -m bench.serving.serve_latency --bundle $(BENCH_BUNDLE) --sizes 20 --requests 20 --duration 0.5 \
		--no-id-only --no-logging --workers-variant 0 --no-doc
	$(BIN)/python -m bench.training.train_throughput --rows 20000 --per-row-rows 2000 --epochs 1 --memory-rows 0 \
		--no-progress --no-write-doc
	$(BIN)/python -m bench.quality.synthetic --smoke --workers 1

# The serving peers (bench/serving/peers): BentoML, LitServe, Ray Serve, KServe, each in its own venv under
# .venv-peers/ (never part of `setup`); bench-peers times them against ranker-serve and rewrites the
# serve-peers section of docs/BENCHMARKS.md (~20 min; PEERS_ARGS='--rounds 1 --seconds 1 --no-doc' for a smoke).
PEERS_ARGS ?=

peers-setup:
	./scripts/peers_setup.sh

bench-peers: setup
	@test -f $(BENCH_BUNDLE)/manifest.json || { echo "no bundle in $(BENCH_BUNDLE): make run first, or BENCH_BUNDLE=DIR"; exit 2; }
	$(BIN)/python -m bench.serving.peers --bundle $(BENCH_BUNDLE) $(PEERS_ARGS)

# run: demo data -> train -> publish to ./registry -> ranker-serve on 127.0.0.1:$(PORT or 8000), impressions
# logged into ./logs -> one real
# /v1/rank request, printed. From a terminal the server then stays in the foreground (Ctrl-C stops it
# cleanly); from CI or a pipe it is stopped right after the request. KEEP_SERVING=1|0 overrides.
# The setup step is timed here and reported by demo.sh with the training and serving times.
run:
	@t0=$$(date +%s%N); $(MAKE) --no-print-directory setup && \
	SETUP_MS=$$(( ($$(date +%s%N) - t0) / 1000000 )) PATH="$(abspath $(BIN)):$$PATH" ./scripts/demo.sh

clean:
	rm -rf $(VENV) data runs registry logs .pytest_cache
