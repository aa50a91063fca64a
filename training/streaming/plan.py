"""Pass 1 of the streaming path: read every row once, in record batches, and fit what the bundle needs.

    build_plan(spec)
        sources      the spec's data (data.path, or data.train / valid / test), one Source each
        assignment   which split each row is in (training/streaming/assign.py; the time split's cuts
                     are found first, reading the timestamp column only)
        pass 1       every row validated; training rows into TrainStats; per piece, rows per split;
                     validation and test rows' labels, request index and time range kept as arrays
        refine       the training rows' numeric columns once more: the exact medians
        -> StreamPlan: encoders, label scalers, bias encoders, rows per split per piece, eval arrays

What stays in memory: the statistics (one count per distinct categorical value), and for validation
and test (N, T) float64 labels and (N,) int64 request indices. Training rows are never kept, but for
`numeric_embedding: ple` / `ple_auto` a uniform sample of up to 200,000 rows' numeric values
(fitting.RowSample; at most 20 million values), which their bins are fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from service.contract.features import FeatureEncoders
from training.data import requests
from training.data.bias_inputs import BiasEncoders
from training.data.splits import check_column_splits, check_sizes
from training.data.tables import LabelScaler, no_finite_values, no_labels, no_rows, raw_labels
from training.evaluation.constant import Constant
from training.spec import RankerSpec
from training.streaming.assign import TEST, TRAIN, VALID, ByColumn, ByHash, ByTime, Fixed
from training.streaming.fitting import TrainStats
from training.streaming.source import Source
from training.streaming.timecut import Keys, time_cuts

SPLITS = ("train", "valid", "test")


@dataclass
class SourcePlan:
    """One source, how its rows are assigned, and its rows per piece and split."""

    source: Source
    assign: object  # Fixed | ByColumn | ByTime | ByHash: (table, pos) -> (N,) split codes
    rows: np.ndarray = field(default=None)  # (pieces, 3) rows per split
    bases: list[int] = field(default_factory=list)  # pos of each piece's first row in the window


@dataclass
class EvalArrays:
    """What a validation or test split keeps in memory: labels and requests, row-aligned."""

    raw_labels: np.ndarray  # (N, T) float64, NaN = not observed
    request: np.ndarray | None  # (N,) int64 dense request index, or None without a request_id
    time_range: tuple | None  # (min, max) timestamps, or None without a timestamp


@dataclass
class StreamPlan:
    spec: RankerSpec
    sources: list[SourcePlan]
    method: str
    encoders: FeatureEncoders
    scalers: dict[str, LabelScaler]
    bias: BiasEncoders | None
    evals: dict[str, EvalArrays]  # "valid", and "test" when it has rows
    train_range: tuple | None
    warnings: list[str] = field(default_factory=list)
    numeric_sample: np.ndarray | None = None  # (N, F) encoded training numerics of a row sample (ple / ple_auto)
    constants: dict[str, Constant] = field(default_factory=dict)  # the training labels' constant baseline

    def rows(self, split: str) -> int:
        k = SPLITS.index(split)
        return int(sum(int(p.rows[:, k].sum()) for p in self.sources))


def make_sources(spec: RankerSpec) -> tuple[list[SourcePlan], str]:
    """The spec's sources and how their rows are split (time cuts are found here: pass 0)."""
    cfg = spec.data
    if cfg.train is None:
        source = Source(spec, cfg.path)
        assign, method = _assigner(spec, source, cfg.test_fraction)
        return [SourcePlan(source, assign)], method
    train = Source(spec, cfg.train)
    plans = []
    if cfg.valid:
        plans.append(SourcePlan(train, Fixed(TRAIN)))
        method = "from files"
    else:
        assign, how = _assigner(spec, train, 0.0)
        plans.append(SourcePlan(train, assign))
        method = f"from files, valid carved from train {how}"
    for path, code in ((cfg.valid, VALID), (cfg.test, TEST)):
        if path:
            plans.append(SourcePlan(Source(spec, path), Fixed(code)))
    return plans, method


def _assigner(spec: RankerSpec, source: Source, test_fraction: float) -> tuple[object, str]:
    cfg = spec.data
    if cfg.split_column and cfg.train is None:
        return ByColumn(cfg.split_column), f"by column {cfg.split_column!r}"
    if cfg.carve_method == "time":
        train_frac = 1.0 - cfg.valid_fraction - test_fraction
        cuts, _, _ = time_cuts(Keys(source, cfg.timestamp, cfg.request_id), [train_frac, train_frac + cfg.valid_fraction])
        return ByTime(cfg.timestamp, cfg.request_id, cuts[0], cuts[1]), "by time"
    return ByHash(cfg.request_id, cfg.seed, cfg.valid_fraction, test_fraction), \
        f"at random (seed {cfg.seed}, by a hash of each request's id)"


class _Collector:
    """Pass 1's per-split accumulators besides TrainStats."""

    def __init__(self, spec: RankerSpec) -> None:
        self.spec = spec
        self.labels: dict[int, list[np.ndarray]] = {VALID: [], TEST: []}
        self.ids: dict[int, list[pa.Array]] = {VALID: [], TEST: []}
        self.ranges: dict[int, list] = {TRAIN: [], VALID: [], TEST: []}
        self.finite = {f.name: 0 for f in spec.features.numeric}  # over every row, as `validate` counts
        self.observed = {t.name: 0 for t in spec.label_tasks()}

    def add(self, table: pa.Table, split: np.ndarray, stats: TrainStats) -> None:
        for f in self.spec.features.numeric:
            self.finite[f.name] += int(pc.sum(pc.is_finite(table.column(f.name).cast(pa.float64()))).as_py() or 0)
        for t in self.spec.label_tasks():
            self.observed[t.name] += table.num_rows - table.column(t.column).null_count
        for code in (TRAIN, VALID, TEST):
            part = table.filter(pa.array(split == code)) if (split != code).any() else table
            if not part.num_rows:
                continue
            if self.spec.data.timestamp:
                mm = pc.min_max(part.column(self.spec.data.timestamp))
                self.ranges[code].append((mm["min"].as_py(), mm["max"].as_py()))
            if code == TRAIN:
                stats.add(part)
                continue
            self.labels[code].append(raw_labels(part, self.spec))
            if self.spec.data.request_id:
                self.ids[code].append(part.column(self.spec.data.request_id).combine_chunks())

    def eval_arrays(self, code: int) -> EvalArrays:
        labels = np.concatenate(self.labels[code]) if self.labels[code] else np.zeros((0, len(self.spec.tasks)))
        request = None
        if self.spec.data.request_id:
            ids = self.ids[code]
            request = requests.request_index(pa.chunked_array(ids)) if ids else np.zeros(0, dtype=np.int64)
        return EvalArrays(labels, request, self.time_range(code))

    def time_range(self, code: int) -> tuple | None:
        r = self.ranges[code]
        return (min(a for a, _ in r), max(b for _, b in r)) if r else None


def build_plan(spec: RankerSpec) -> StreamPlan:
    """Pass 1 and the median read; raises DataError naming the column or key at fault, as load_splits does."""
    plans, method = make_sources(spec)
    stats, collect = TrainStats(spec), _Collector(spec)
    for plan in plans:
        plan.rows, pos = np.zeros((len(plan.source.pieces), 3), dtype=np.int64), 0
        for i, piece in enumerate(plan.source.pieces):
            plan.bases.append(pos)
            for table in plan.source.batches(piece):
                split = plan.assign(table, np.arange(pos, pos + table.num_rows))
                plan.rows[i] += np.bincount(split, minlength=3)
                collect.add(table, split, stats)
                pos += table.num_rows
    _check(spec, plans, collect)
    names = [name for k, name in enumerate(SPLITS) if sum(int(p.rows[:, k].sum()) for p in plans)]
    warnings = _refine(spec, plans, stats, collect, names)
    evals = {"valid": collect.eval_arrays(VALID)}
    if sum(int(p.rows[:, TEST].sum()) for p in plans):
        evals["test"] = collect.eval_arrays(TEST)
    encoders = stats.encoders()
    return StreamPlan(spec, plans, method, encoders, stats.scalers(), stats.bias_encoders(), evals,
                      collect.time_range(TRAIN), warnings, stats.numeric_sample(encoders), stats.constants())


def _check(spec: RankerSpec, plans: list[SourcePlan], collect: _Collector) -> None:
    """What load_splits refuses: no rows, an empty split, no finite value, a task with no labels."""
    totals = sum(p.rows.sum(axis=0) for p in plans)
    if not totals.sum():
        no_rows(spec, plans[0].source.path)
    cfg = spec.data
    if cfg.split_column and cfg.train is None:
        check_column_splits([int(totals[TRAIN]), int(totals[VALID])], cfg.split_column)
    else:
        check_sizes(int(totals[TRAIN]), int(totals[VALID]), int(totals[TEST]), cfg,
                    test_wanted=cfg.train is None and cfg.test_fraction > 0)
    for name, finite in collect.finite.items():
        no_finite_values(name, finite)
    for t in spec.label_tasks():
        no_labels(t, collect.observed[t.name])


def _refine(spec: RankerSpec, plans: list[SourcePlan], stats: TrainStats, collect: _Collector,
            names: list[str]) -> list[str]:
    """Read the training rows' numeric columns (and request ids) again: exact medians, and the requests
    of valid / test that also have training rows (the spanning warning)."""
    rid = spec.data.request_id
    held_out = _held_out_ids(collect) if rid else None
    spanning: list[pa.Array] = []
    for plan in plans:
        if not plan.rows[:, TRAIN].sum():
            continue
        columns = sorted({f.name for f in spec.features.numeric} | set(plan.assign.columns()) | ({rid} if rid else set()))
        for i, piece in enumerate(plan.source.pieces):
            if not plan.rows[i, TRAIN]:
                continue
            pos = plan.bases[i]
            for table in plan.source.batches(piece, columns):
                train = table.filter(pa.array(plan.assign(table, np.arange(pos, pos + table.num_rows)) == TRAIN))
                pos += table.num_rows
                stats.refine(train)
                if held_out is not None and len(held_out):
                    ids = train.column(rid).combine_chunks()
                    spanning.append(pc.unique(ids.filter(pc.is_in(ids, value_set=held_out))))
    return _spanning_warning(spec, collect, held_out, spanning, names) if rid else []


def _held_out_ids(collect: _Collector) -> pa.Array:
    ids = [a for code in (VALID, TEST) for a in collect.ids[code]]
    return pc.unique(pa.chunked_array(ids).combine_chunks()) if ids else pa.array([])


def _spanning_warning(spec: RankerSpec, collect: _Collector, held_out: pa.Array, spanning: list[pa.Array],
                      names: list[str]) -> list[str]:
    """Requests of valid / test with rows in another split (training, or each other)."""
    sets = [pc.unique(pa.chunked_array(collect.ids[c]).combine_chunks()) for c in (VALID, TEST) if collect.ids[c]]
    found = [*spanning]
    if len(sets) == 2:
        found.append(sets[0].filter(pc.is_in(sets[0], value_set=sets[1])))
    count = len(pc.unique(pa.chunked_array(found, type=held_out.type).combine_chunks())) if found else 0
    note = requests.spanning_message(count, len(held_out), "validation/test requests", spec.data.request_id, names)
    return [note] if note else []
