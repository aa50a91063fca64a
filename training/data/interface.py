"""What training needs from data, declared once: `TrainingData`, and the splits it hands out.

Two implementations hold it: the in-memory run's `Prepared` (training/fit/train.py: every split as
arrays) and the streamed run's `Streamed` (training/streaming/prepare.py: splits read and encoded on
demand). fit, export, the gates and the reports take a `TrainingData` and never ask which one they
hold, as the server takes a `RankingModel` (service/live/model.py). The rules both follow (which
split a row is in, how encoders are fitted on the training rows) live in training/data/splits.py
and training/data/tables.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa

from service.contract.features import FeatureEncoders
from training.data.bias_inputs import BiasData
from training.data.tables import Encoded, LabelScaler

if TYPE_CHECKING:
    from training.evaluation.constant import Constant
    from training.spec import RankerSpec
    from training.streaming.feed import EvalFeed, MemoryFeed, StreamFeed


class SplitRows(Protocol):
    """One split's encoded rows (data/tables.py Encoded, or a streamed split encoded as it is read).

    raw_labels (N, T) float64 in label units (NaN = missing) and request (N,) int64 or None are whole
    arrays for valid and test; the inputs come a chunk at a time.
    """

    raw_labels: np.ndarray | None
    request: np.ndarray | None

    def __len__(self) -> int: ...

    def head(self, n: int) -> Encoded:
        """The first n rows, encoded (parity rows, calibration rows, the ONNX example)."""
        ...

    def chunks(self, size: int) -> Iterator[Encoded]:
        """Every row, encoded, in order, a chunk at a time."""
        ...

    def shard(self, rank: int, world: int) -> tuple[np.ndarray, Any]:
        """Rank's share: (its rows' positions in the split, rows with `chunks`)."""
        ...


class SplitTables(Protocol):
    """How the rows were split, and each split's raw rows (Splits, or StreamSplits read on demand)."""

    method: str  # for reports: "by time", "at random (seed 0)", ...
    warnings: list[str]  # requests spanning splits, one-row requests, ...

    def names(self) -> list[str]: ...

    def holdout_name(self) -> str: ...

    def rows(self, split: str) -> int: ...

    def time_range(self, split: str, column: str) -> tuple | None: ...

    def tables(self, split: str, columns: list[str] | None = None) -> Iterator[pa.Table]: ...

    def first_rows(self, split: str, n: int) -> pa.Table: ...

    @property
    def column_names(self) -> list[str]: ...


class TrainingData(Protocol):
    """A run's data side: splits, the encoders and label scalers fitted on training rows, the holdout, batches.

    `test` is None when the spec has no test split. `streamed` says how a `data.split: random` run split
    its rows (a seeded hash of the request id when streamed, a seeded permutation in memory): the
    lineage records it.
    """

    splits: SplitTables
    encoders: FeatureEncoders
    scalers: dict[str, LabelScaler]
    train: SplitRows
    valid: SplitRows
    test: SplitRows | None
    bias: BiasData | None  # training-only bias-tower inputs (model.bias_tower)
    loading: str  # which data path ran, and why (the manifest's data_window.loading)
    streamed: bool

    @property
    def constants(self) -> dict[str, Constant]:
        """task -> the training labels' constant baseline."""
        ...

    def holdout(self) -> SplitRows:
        """The rows a finished model is judged on: test, or valid without a test split."""
        ...

    def training_numerics(self) -> np.ndarray | None:
        """(N, F) encoded training numerics that `numeric_embedding: ple` fits its bins on (streamed: a sample)."""
        ...

    def train_arrays(self) -> Encoded | None:
        """The whole training split as arrays when it is held in memory (the GBDT baseline fits on it), else None."""
        ...

    def feeds(self, spec: RankerSpec, bias: BiasData | None, grouped: bool) -> tuple[MemoryFeed | StreamFeed, EvalFeed]:
        """What the training loop reads: the training batches and the validation rows (with `bias` inputs when
        the graph has a bias tower; batches of whole requests when `grouped`)."""
        ...
