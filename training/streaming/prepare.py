"""In memory or streamed: which data path a run takes, and the streamed run's `Streamed` (the
counterpart of training/fit/train.py's in-memory `Prepared`).

`data.streaming.mode` decides: `memory`, `stream`, or `auto`, which streams when the spec's data
holds more than `max_memory_rows` rows by the Parquet metadata (no data is read to decide). The run
logs which path it took and why, and the manifest's data window records it (`loading`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from service.contract.features import FeatureEncoders
from training.data.bias_inputs import BiasData
from training.data.tables import LabelScaler
from training.evaluation.constant import Constant
from training.spec import RankerSpec
from training.streaming.feed import EvalFeed, StreamFeed
from training.streaming.plan import StreamPlan, build_plan
from training.streaming.source import Source
from training.streaming.splits import StreamedSplit, StreamSplits

logger = logging.getLogger(__name__)


@dataclass
class Streamed:
    """The streamed run's TrainingData (training/data/interface.py): the fields of the in-memory Prepared,
    read on demand."""

    splits: StreamSplits
    encoders: FeatureEncoders
    scalers: dict[str, LabelScaler]
    train: StreamedSplit
    valid: StreamedSplit
    test: StreamedSplit | None
    bias: BiasData | None
    plan: StreamPlan
    loading: str

    streamed = True

    def holdout(self) -> StreamedSplit:
        return self.test if self.test is not None else self.valid

    @property
    def constants(self) -> dict[str, Constant]:
        return self.plan.constants

    def training_numerics(self) -> np.ndarray | None:
        return self.plan.numeric_sample  # a uniform sample of the training rows

    def train_arrays(self) -> None:
        return None  # never all in memory

    def feeds(self, spec: RankerSpec, bias: BiasData | None, grouped: bool) -> tuple[StreamFeed, EvalFeed]:
        enc = bias.encoders if bias else None
        feed = StreamFeed(self.plan, enc, spec.train.batch_size, spec.train.seed, grouped)
        return feed, EvalFeed(self.valid, enc, spec.data.streaming.read_batch_rows, grouped)


def choose_loading(spec: RankerSpec) -> tuple[str, str]:
    """("memory" | "stream", why) for the spec's data."""
    cfg = spec.data.streaming
    if cfg.mode != "auto":
        return cfg.mode, f"data.streaming.mode {cfg.mode}"
    rows = sum(Source(spec, path).rows for path in spec.data.sources().values())
    mode = "stream" if rows > cfg.max_memory_rows else "memory"
    relation = "more" if mode == "stream" else "no more"
    return mode, f"{rows:,} rows, {relation} than data.streaming.max_memory_rows {cfg.max_memory_rows:,}"


def prepare_stream(spec: RankerSpec, why: str) -> Streamed:
    """Pass 1 (training/streaming/plan.py), then the splits as streamed views."""
    plan = build_plan(spec)
    batch = spec.data.streaming.read_batch_rows
    test = StreamedSplit(plan, "test", batch) if "test" in plan.evals else None
    bias = BiasData(plan.bias, {}) if plan.bias is not None else None
    loading = (f"streamed ({why}): {sum(len(s.source.pieces) for s in plan.sources):,} row groups, shuffle buffer "
               f"{spec.data.streaming.shuffle_buffer:,} rows")
    return Streamed(StreamSplits(plan), plan.encoders, plan.scalers, StreamedSplit(plan, "train", batch),
                    StreamedSplit(plan, "valid", batch), test, bias, plan, loading)
