"""What every peer adapter serves: the project's own ranking path, raw request bytes in, response bytes out.

`Ranker.rank(raw)` is `service.live.pipeline.rank` (parse -> score -> response_body: the same model,
encoder, weights profile and calibration as ranker-serve) on a `Serving` built like the server's. The
bundle and weights come from PEERS_BUNDLE and PEERS_WEIGHTS (set by bench/serving/peers/run.py).
Imports nothing of the frameworks, so it runs in every peer's virtualenv and in the project's.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

from bench.serving.serve_stages import load_serving
from service.live.pipeline import rank

ENDPOINTS = {  # server -> (POST path, readiness GET path)
    "ranker-serve": ("/v1/rank", "/v2/health/ready"),
    "kserve": ("/v1/models/ranker:predict", "/v1/models/ranker"),
    "bentoml": ("/rank", "/readyz"),
    "litserve": ("/predict", "/health"),
    "rayserve": ("/v1/rank", "/-/healthz"),
}


class Ranker:
    def __init__(self, bundle: str | None = None, weights: str | None = None) -> None:
        self.serving = load_serving(Path(bundle or os.environ["PEERS_BUNDLE"]),
                                    Path(weights or os.environ["PEERS_WEIGHTS"]))
        gc.freeze()  # as ranker-serve does after a model load

    def rank(self, raw: bytes) -> bytes:
        return rank(self.serving, raw).body
