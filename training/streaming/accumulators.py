"""Statistics merged over record batches: what pass 1 fits the encoders and label scalers from.

    ValueCounts    exact counts per categorical value (vocabularies with max_vocab / min_count)
    Moments        count, mean and M2 merged by Chan et al.'s parallel formula (mean, population std)
    ExactMedian    np.median of a stream in two reads: a histogram over the float64 bit pattern, then
                   the values of the one or two buckets that hold the middle ranks
    NumericStats   everything a NumericEncoder needs: median, clip range, moments after the transform

Nothing here is approximate: the in-memory statistics are reproduced up to float rounding of the
sums (tests/training/streaming/test_stats.py compares them). Memory: one entry per distinct value
for ValueCounts; 65,536 counts plus the distinct values of the middle bucket(s) for ExactMedian.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

BUCKET_BITS = 16  # sign + exponent + 4 mantissa bits of a float64: 65,536 buckets
COMPACT_EVERY = 2_000_000  # ValueCounts re-aggregates its pending (value, count) pairs past this many


class ValueCounts:
    """Counts of each non-null value of a string column, merged across batches (exact)."""

    def __init__(self) -> None:
        self._parts: list[pa.Table] = []
        self._pending = 0

    def add(self, strings: pa.Array | pa.ChunkedArray) -> None:
        counts = pc.value_counts(strings.drop_null())
        self._parts.append(pa.table({"v": counts.field("values"), "c": counts.field("counts")}))
        self._pending += len(counts)
        if self._pending > COMPACT_EVERY:
            self._compact()

    def _compact(self) -> None:
        if len(self._parts) > 1:
            merged = pa.concat_tables(self._parts).group_by("v", use_threads=False).aggregate([("c", "sum")])
            self._parts = [merged.rename_columns(["v", "c"])]
        self._pending = len(self._parts[0]) if self._parts else 0

    def result(self) -> tuple[list[str], np.ndarray]:
        """(values, counts); order unspecified."""
        self._compact()
        if not self._parts:
            return [], np.zeros(0, dtype=np.int64)
        t = self._parts[0]
        return t.column("v").to_pylist(), t.column("c").to_numpy()


@dataclass
class Moments:
    """count, mean and sum of squared deviations (M2) of the values seen, merged batch by batch."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: np.ndarray) -> None:
        if x.size:
            mean = float(x.mean())
            self.merge(Moments(int(x.size), mean, float(((x - mean) ** 2).sum())))

    def add_constant(self, value: float, count: int) -> None:
        if count:
            self.merge(Moments(count, value, 0.0))

    def merge(self, other: Moments) -> None:
        n = self.count + other.count
        if not other.count:
            return
        delta = other.mean - self.mean
        self.mean += delta * other.count / n
        self.m2 += other.m2 + delta * delta * self.count * other.count / n
        self.count = n

    @property
    def std(self) -> float:
        """Population standard deviation (numpy's default), 0 for no values."""
        return float(np.sqrt(self.m2 / self.count)) if self.count else 0.0


def order_keys(x: np.ndarray) -> np.ndarray:
    """(N,) float64 -> (N,) uint64 whose unsigned order is the numeric order (for finite and inf)."""
    bits = np.ascontiguousarray(x, dtype=np.float64).view(np.uint64)
    negative = (bits >> np.uint64(63)).astype(bool)
    return np.where(negative, ~bits, bits | np.uint64(1 << 63))


class ExactMedian:
    """np.median of finite values seen in batches, exactly: count per bucket first, then (`refine`)
    the distinct values and counts of the buckets holding the middle rank(s) on a second read."""

    def __init__(self) -> None:
        self.hist = np.zeros(1 << BUCKET_BITS, dtype=np.int64)
        self._targets: dict[int, int] | None = None  # bucket -> rank of its smallest value
        self._values: list[tuple[np.ndarray, np.ndarray]] = []  # (distinct values, counts)

    def add(self, finite: np.ndarray) -> None:
        self.hist += np.bincount(_bucket(finite), minlength=len(self.hist))

    @property
    def count(self) -> int:
        return int(self.hist.sum())

    def middle_ranks(self) -> tuple[int, int]:
        n = self.count
        return (n - 1) // 2, n // 2

    def _target_buckets(self) -> dict[int, int]:
        if self._targets is None:
            ends = np.cumsum(self.hist)
            self._targets = {}
            for rank in self.middle_ranks():
                b = int(np.searchsorted(ends, rank, side="right"))
                self._targets[b] = int(ends[b] - self.hist[b])
        return self._targets

    def refine(self, finite: np.ndarray) -> None:
        targets = np.fromiter(self._target_buckets(), dtype=np.int64)
        keep = np.isin(_bucket(finite), targets)
        if keep.any():
            self._values.append(np.unique(finite[keep], return_counts=True))
            if sum(len(v) for v, _ in self._values) > COMPACT_EVERY:
                self._values = [self._merged()]

    def _merged(self) -> tuple[np.ndarray, np.ndarray]:
        values = np.concatenate([v for v, _ in self._values])
        counts = np.concatenate([c for _, c in self._values])
        distinct, inverse = np.unique(values, return_inverse=True)
        return distinct, np.bincount(inverse, weights=counts).astype(np.int64)

    def result(self) -> float:
        """The median, as np.median computes it (the mean of the two middle values for an even count)."""
        if not self.count:
            raise ValueError("no values")
        values, counts = self._merged()
        ends = np.cumsum(counts)
        first = min(self._target_buckets().values())  # rank of the smallest collected value
        middle = [values[np.searchsorted(ends, r - first, side="right")] for r in self.middle_ranks()]
        return float(np.mean(np.array(middle, dtype=np.float64)))


def _bucket(x: np.ndarray) -> np.ndarray:
    return (order_keys(x) >> np.uint64(64 - BUCKET_BITS)).astype(np.int64)


@dataclass
class NumericStats:
    """One numeric feature over the training rows: the statistics a NumericEncoder is built from."""

    transform: str
    median: ExactMedian = field(default_factory=ExactMedian)
    moments: Moments = field(default_factory=Moments)  # of transform(x) over finite x
    lo: float = np.inf
    hi: float = -np.inf
    missing: int = 0  # null or NaN: filled with the median
    pos_inf: int = 0  # clipped to hi
    neg_inf: int = 0  # clipped to lo

    def add(self, x: np.ndarray, apply_transform) -> None:
        finite = x[np.isfinite(x)]
        self.missing += int(np.isnan(x).sum())
        self.pos_inf += int(np.isposinf(x).sum())
        self.neg_inf += int(np.isneginf(x).sum())
        if finite.size:
            self.lo, self.hi = min(self.lo, float(finite.min())), max(self.hi, float(finite.max()))
            self.median.add(finite)
            self.moments.add(apply_transform(finite))

    def refine(self, x: np.ndarray) -> None:
        self.median.refine(x[np.isfinite(x)])

    def finish(self, apply_transform) -> tuple[float, float, float, float, float]:
        """(fill, lo, hi, mean, std) after the second read: missing rows count at the median, infinite ones
        at the clip bounds, as the in-memory fit encodes them."""
        fill = self.median.result()
        m = Moments(self.moments.count, self.moments.mean, self.moments.m2)
        for value, count in ((fill, self.missing), (self.hi, self.pos_inf), (self.lo, self.neg_inf)):
            m.add_constant(float(apply_transform(np.array([value]))[0]), count)
        return fill, self.lo, self.hi, m.mean, m.std
