"""Everything the bundle fits on the training rows, accumulated batch by batch (pass 1) and finished
after one more read of the numeric columns (the exact medians, and for `numeric_embedding: ple` /
`ple_auto` a uniform sample of the rows' numeric values to fit the bins on).

The results are built by the same rules as the in-memory fit (training/data/tables.py): the
encoders from merged statistics through `encoders_of` and `BiasEncoders.of`, label
scalers through `LabelScaler.of`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from service.contract.features import FeatureEncoders, NumericEncoder
from training.data.bias_inputs import BiasEncoders
from training.data.tables import (
    LabelScaler,
    _require_numeric,
    as_strings,
    encoders_of,
)
from training.evaluation.constant import Constant
from training.spec import RankerSpec
from training.streaming.accumulators import Moments, NumericStats, ValueCounts

# Training rows whose numeric values `numeric_embedding: ple` / `ple_auto` fit their bins on when streaming: up to
# 200,000, and fewer for a wide table, so that the sample holds at most 20 million values (160 MB of float64).
NUMERIC_SAMPLE_ROWS = 200_000
NUMERIC_SAMPLE_VALUES = 20_000_000


def numeric_sample_rows(n_numeric: int) -> int:
    return min(NUMERIC_SAMPLE_ROWS, NUMERIC_SAMPLE_VALUES // max(1, n_numeric))


def _floats(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False)  # null -> nan


class RowSample:
    """A uniform random sample of up to `size` rows, kept batch by batch: each row draws a key from a seeded
    stream, and the rows with the `size` smallest keys stay. The keys follow the row order, not the batch
    sizes; with `size` rows or fewer, every row stays, in order."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self._rng = size, np.random.default_rng(seed)
        self._keys: list[np.ndarray] = []
        self._rows: list[np.ndarray] = []
        self._held = 0

    def add(self, rows: np.ndarray) -> None:
        """(N, F) rows, in order."""
        self._keys.append(self._rng.random(len(rows)))
        self._rows.append(rows)
        self._held += len(rows)
        if self._held > 2 * self.size:
            self._compact()

    def _compact(self) -> None:
        keys, rows = np.concatenate(self._keys), np.concatenate(self._rows)
        if len(keys) > self.size:
            keep = np.sort(np.argpartition(keys, self.size - 1)[: self.size])  # in row order
            keys, rows = keys[keep], rows[keep]
        self._keys, self._rows, self._held = [keys], [rows], len(keys)

    def result(self) -> np.ndarray:
        self._compact()
        return self._rows[0]


class TrainStats:
    """Vocabulary counts, numeric statistics, label moments and bias-tower statistics of training rows."""

    def __init__(self, spec: RankerSpec) -> None:
        self.spec = spec
        self.counts = {f.name: ValueCounts() for f in spec.features.categorical}
        self.numeric = {f.name: NumericStats(f.transform) for f in spec.features.numeric}
        self.labels = {t.name: Moments() for t in spec.tasks if t.type == "regression"}
        self.label_means = {t.name: Moments() for t in spec.label_tasks()}  # label units: the constant baseline
        bias = spec.model.bias_tower
        self.bias_counts = {c: ValueCounts() for c in (bias.categorical if bias else [])}
        self.bias_moments = {c: Moments() for c in (bias.numeric if bias else [])}
        self._probes = {f.name: NumericEncoder(name=f.name, source=f.source, transform=f.transform)
                        for f in spec.features.numeric}
        binned = spec.model.numeric_embedding in ("ple", "ple_auto")
        size = numeric_sample_rows(len(spec.features.numeric))
        self.sample = RowSample(size, spec.train.seed) if binned else None
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        """Training rows of one batch (every column the spec reads)."""
        self.rows += table.num_rows
        for name, counts in self.counts.items():
            counts.add(as_strings(table.column(name)))
        for name, stats in self.numeric.items():
            stats.add(_floats(table, name), self._probes[name].apply_transform)
        for t in self.spec.label_tasks():
            y = _floats(table, t.column)
            self.label_means[t.name].add(y[~np.isnan(y)])
            if t.name in self.labels:
                z = LabelScaler.transformed(y, t.label_transform)
                self.labels[t.name].add(z[np.isfinite(z)])
        for name, counts in self.bias_counts.items():
            counts.add(as_strings(table.column(name)))
        for name, moments in self.bias_moments.items():
            _require_numeric(name, table.schema.field(name).type, "numeric bias feature (model.bias_tower.numeric)")
            x = _floats(table, name)
            moments.add(x[np.isfinite(x)])

    def refine(self, table: pa.Table) -> None:
        """The numeric columns of the same training rows, read again: the values around each median."""
        columns = {name: _floats(table, name) for name in self.numeric}
        for name, stats in self.numeric.items():
            stats.refine(columns[name])
        if self.sample is not None:
            self.sample.add(np.stack(list(columns.values()), axis=1))

    def numeric_sample(self, encoders: FeatureEncoders) -> np.ndarray | None:
        """(N, F) encoded numerics of the sampled training rows (every row up to numeric_sample_rows), as the
        in-memory path's training numerics; None unless `ple` / `ple_auto` asked for them."""
        if self.sample is None:
            return None
        raw = self.sample.result()
        return np.stack([enc.encode(raw[:, j]) for j, enc in enumerate(encoders.numeric)], axis=1)

    def encoders(self) -> FeatureEncoders:
        """By the in-memory rules (tables.py encoders_of), from the merged statistics."""
        counts = {name: c.result() for name, c in self.counts.items()}
        numeric = {name: s.finish(self._probes[name].apply_transform) for name, s in self.numeric.items()}
        return encoders_of(self.spec, counts, numeric)

    def scalers(self) -> dict[str, LabelScaler]:
        return {t.name: LabelScaler.of(t.label_transform, m.count, m.mean, m.std)
                for t in self.spec.tasks if (m := self.labels.get(t.name)) is not None}

    def constants(self) -> dict[str, Constant]:
        """task -> the constant baseline, as training/evaluation/constant.py's constants_of on the rows."""
        scalers = self.scalers()
        return {t.name: Constant(m.mean, scalers[t.name].mean if t.label_transform == "log1p" else None)
                for t in self.spec.label_tasks() if (m := self.label_means[t.name]).count}

    def bias_encoders(self) -> BiasEncoders | None:
        """By BiasEncoders.of, the rule training/data/bias_inputs.py fit_bias_encoders fits a training table by."""
        cfg = self.spec.model.bias_tower
        if cfg is None:
            return None
        counts = {name: c.result() for name, c in self.bias_counts.items()}
        return BiasEncoders.of(cfg, counts, {name: (m.count, m.mean, m.std) for name, m in self.bias_moments.items()})
