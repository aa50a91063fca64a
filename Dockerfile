# syntax=docker/dockerfile:1
# Two images from one file (docs/OPERATIONS.md):
#   docker build --target serve -t ranker-serve:0.1.0 .   onnxruntime + FastAPI; no torch, no training code
#   docker build --target train -t ranker-train:0.1.0 .   CPU torch; runs `ranker retrain` and `ranker train`
# For a registry on S3 add the s3 extra to the serving image: --build-arg SERVE_EXTRAS=serve,s3
# Without a Docker engine: scripts/images/build.sh serve|train (buildah; base image from
# scripts/images/base.sh as PYTHON_IMAGE; the host's pip settings through PIP_CONFIG_FILE).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 ranker \
 && useradd --system --uid 10001 --gid ranker --home-dir /app --shell /usr/sbin/nologin ranker
WORKDIR /app

# One wheel of the project; only the files it is built from, so other edits keep the layer cache.
FROM base AS wheel
# A pip.conf mounted into the build (e.g. a package mirror); unset, pip uses its defaults.
ARG PIP_CONFIG_FILE
COPY pyproject.toml constraints.txt README.md ./
COPY service/ service/
COPY training/ training/
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM base AS serve
ARG SERVE_EXTRAS=serve
ARG PIP_CONFIG_FILE
COPY constraints.txt /tmp/constraints.txt
COPY --from=wheel /wheels /wheels
# The wheel carries both import packages; the serving image drops `training` (and the `ranker`
# entry point that needs it) and fails the build if torch or pandas slipped in.
RUN pip install -c /tmp/constraints.txt "$(ls /wheels/*.whl)[${SERVE_EXTRAS}]" \
 && rm -rf /wheels /tmp/constraints.txt \
 && python -c "import importlib.util as u, shutil; shutil.rmtree(u.find_spec('training').submodule_search_locations[0])" \
 && rm -f /usr/local/bin/ranker \
 && python -c "import importlib.util as u, sys; bad = [m for m in ('torch', 'pandas', 'training') if u.find_spec(m)]; sys.exit(f'serve image must not have {bad}' if bad else 0)"
COPY configs/weights.yaml /app/configs/weights.yaml
USER ranker
ENV RANKER_HOST=0.0.0.0 \
    RANKER_PORT=8000 \
    RANKER_REGISTRY_ROOT=/registry \
    RANKER_WEIGHTS_PATH=/app/configs/weights.yaml
EXPOSE 8000
# The slim image has no curl; the standard library makes the probe.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/v2/health/live' % os.environ.get('RANKER_PORT', '8000'), timeout=2)"]
CMD ["ranker-serve"]

FROM base AS train
# torch==2.13.0+cpu (constraints.txt) lies on PyTorch's CPU index, not on PyPI, whose 2.13.0 is the
# multi-GB CUDA build. TORCH_INDEX= (empty) when pip's settings already reach a +cpu wheel, e.g. a
# local wheel directory mounted into the build (scripts/images/build.sh).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG PIP_CONFIG_FILE
COPY constraints.txt /tmp/constraints.txt
COPY --from=wheel /wheels /wheels
# LightGBM (the LambdaMART baseline) links the system's OpenMP, which slim images lack.
RUN ldconfig -p | grep -q libgomp.so.1 || { apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*; }
RUN pip install ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} -c /tmp/constraints.txt "$(ls /wheels/*.whl)[train,s3]" \
 && rm -rf /wheels /tmp/constraints.txt
COPY configs/ /app/configs/
USER ranker
ENTRYPOINT ["ranker"]
CMD ["--help"]
