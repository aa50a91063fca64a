"""The position-bias tower's inputs (modeling/bias_tower.py): encoders fitted on the training rows, every split encoded.

Bias features are encoded here and not by the serving encoders: the server never sees them, so
they are not part of the bundle. Categorical values get an embedding each (index 0 = unseen);
numeric values are standardized with training statistics (missing -> 0, the mean).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.data import DataError
from training.data.splits import Splits
from training.data.tables import ValueFreq, as_strings, value_counts, vocabulary
from training.spec.model import BiasTowerConfig


@dataclass(frozen=True)
class BiasEncoders:
    """Vocabularies of the categorical bias columns and (mean, std) of the numeric ones, from training rows."""

    vocab: dict[str, list[str]]  # column -> values, most frequent first; value i has index i + 1 (0 = unseen)
    stats: dict[str, tuple[float, float]]  # column -> (mean, std)

    @classmethod
    def of(cls, cfg: BiasTowerConfig, counts: dict[str, ValueFreq],
           moments: dict[str, tuple[int, float, float]]) -> BiasEncoders:
        """The rule both data paths fit by: per categorical column its (values, counts) -> the max_vocab most
        frequent; per numeric column (count, mean, std) of its finite values -> (mean, std), (0, 1) without any
        and std 1 for a constant column."""
        vocab = {name: vocabulary(*counts[name], cfg.max_vocab, 1) for name in cfg.categorical}
        stats = {}
        for name in cfg.numeric:
            count, mean, std = moments[name]
            stats[name] = (mean, std if std > 1e-12 else 1.0) if count else (0.0, 1.0)
        return cls(vocab, stats)

    def cardinalities(self) -> list[int]:
        return [len(v) + 1 for v in self.vocab.values()]

    def encode(self, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """Rows of a split -> (N, Cb) int64 and (N, Fb) float32 bias inputs."""
        n = table.num_rows
        cat = np.zeros((n, len(self.vocab)), dtype=np.int64)
        for j, (name, values) in enumerate(self.vocab.items()):
            where = pc.index_in(as_strings(table.column(name)), value_set=pa.array(values, pa.string()))
            cat[:, j] = pc.fill_null(where, -1).to_numpy() + 1
        num = np.zeros((n, len(self.stats)), dtype=np.float32)
        for j, (name, (mean, std)) in enumerate(self.stats.items()):
            x = table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False)
            num[:, j] = np.where(np.isfinite(x), (x - mean) / std, 0.0)
        return cat, num


def fit_bias_encoders(train: pa.Table, cfg: BiasTowerConfig) -> BiasEncoders:
    for name in cfg.numeric:
        t = train.schema.field(name).type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
            raise DataError(f"column {name!r}: numeric bias feature (model.bias_tower.numeric) must be "
                            f"numeric or boolean, not {t}")
    counts = {name: value_counts(train.column(name)) for name in cfg.categorical}
    moments = {}
    for name in cfg.numeric:
        x = train.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False)
        x = x[np.isfinite(x)]
        moments[name] = (x.size, float(x.mean()) if x.size else 0.0, float(x.std()) if x.size else 1.0)
    return BiasEncoders.of(cfg, counts, moments)


@dataclass(frozen=True)
class BiasData:
    """The bias inputs of every split, row-aligned with the encoded splits."""

    encoders: BiasEncoders
    splits: dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (categorical, numeric)


def prepare_bias(splits: Splits, cfg: BiasTowerConfig) -> BiasData:
    """Encoders fitted on the training split; every split's bias inputs."""
    enc = fit_bias_encoders(splits.train, cfg)
    return BiasData(enc, {name: enc.encode(table) for name, table in splits.named().items()})
