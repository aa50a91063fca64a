"""Which rows a model was trained on, and whether a retrain's holdout could hold any of them.

A gate that scores CURRENT on rows CURRENT trained on favours CURRENT (a leaked holdout: issue 21, item 2).
Every bundle records its data lineage (manifest `data_window.lineage`):

    rule    how the rows were split: files (pre-split), column, time, random (a seeded permutation of the
            whole table, in memory) or hash (a seeded hash of each request id, streamed), with what the
            rule depends on (seed, fractions, request id, split column, timestamp, window)
    files   the Parquet files behind each role (`train`, `valid`, `test` for pre-split files; `path` for
            one dataset that the rule splits), with their sizes
    train_time / holdout_time   the training and holdout splits' time ranges, with a timestamp

Before a retrain trains (training/nightly/retrain.py), `overlap` compares the candidate's lineage with CURRENT's: when some file
CURRENT trained on also feeds the candidate's holdout, the holdout is independent of CURRENT's training
rows only if both split those files by the same rule (a split column; a hash of the request id; the same
permutation of the same files; or a time split whose holdout starts after CURRENT's training rows end,
checked once the candidate's split is known). Otherwise the retrain is refused, naming what to pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from training.data.tables import dataset
from training.spec import RankerSpec

if TYPE_CHECKING:
    from training.data.interface import TrainingData

RULE_KEYS = {"files": (), "column": ("split_column",), "time": ("timestamp",),
             "random": ("seed", "valid_fraction", "test_fraction", "request_id", "start", "end"),
             "hash": ("seed", "valid_fraction", "test_fraction", "request_id")}


def split_rule(spec: RankerSpec, streamed: bool) -> dict:
    """How the spec splits its rows, with what that rule depends on."""
    cfg = spec.data
    if cfg.train is not None:
        kind = "files"
    elif cfg.split_column:
        kind = "column"
    elif cfg.carve_method == "time":
        kind = "time"
    else:
        kind = "hash" if streamed else "random"
    return {"kind": kind, **{k: getattr(cfg, k) for k in RULE_KEYS[kind]}}


def data_files(path: str) -> dict[str, int]:
    """The Parquet files of one dataset path (file, directory or glob) and their sizes in bytes."""
    if "://" in path:
        return {path: -1}  # an object store URL: named as given
    return {str(Path(f).resolve()): Path(f).stat().st_size for f in dataset(path).files}


def lineage(spec: RankerSpec, streamed: bool = False, train_time: tuple | None = None,
            holdout_time: tuple | None = None) -> dict:
    """The spec's data lineage (see the module docstring); times as ISO strings."""
    files = {role: data_files(path) for role, path in spec.data.sources().items()}
    return {"rule": split_rule(spec, streamed), "files": files, "train_time": _iso(train_time),
            "holdout_time": _iso(holdout_time)}


def data_lineage(spec: RankerSpec, data: TrainingData) -> dict:
    """The lineage of a run's data: its files and split rule, and (with a timestamp) its train and holdout ranges."""
    splits, ts = data.splits, spec.data.timestamp
    times = (splits.time_range("train", ts), splits.time_range(splits.holdout_name(), ts)) if ts else (None, None)
    return lineage(spec, data.streamed, *times)


def _iso(time_range: tuple | None) -> list[str] | None:
    return [time_range[0].isoformat(), time_range[1].isoformat()] if time_range else None


def trained_files(lin: dict) -> dict[str, int]:
    """The files a model's training rows came from (with pre-split files: its train files)."""
    return lin["files"].get("train", lin["files"].get("path", {}))


def holdout_files(lin: dict) -> dict[str, int]:
    """The files a run's holdout rows come from: the test files (valid without them), or its one dataset."""
    f = lin["files"]
    if "train" in f:
        return f.get("test") or f.get("valid") or {}
    return f.get("path", {})


def overlap(current: dict | None, candidate: dict) -> str | None:
    """Why the candidate's holdout may hold rows CURRENT trained on, or None when it cannot (or CURRENT
    recorded no lineage: bundles from before it existed).

    A time split is judged by its times: before the candidate's split is known (no holdout_time) it passes.
    """
    if current is None:
        return None
    shared = sorted(set(trained_files(current)) & set(holdout_files(candidate)))
    if not shared:
        return None
    rule, before = candidate["rule"], current["rule"]
    where = f"{len(shared)} file(s) that CURRENT trained on also give this run's holdout ({_names(shared)})"
    if rule != before:
        return f"{where}, and this run splits them {_rule_text(rule)} where CURRENT was split {_rule_text(before)}"
    if rule["kind"] in ("column", "hash"):
        return None  # every row keeps its split: same column, or the same seeded hash of its request id
    if rule["kind"] == "random":
        same = {f: trained_files(current)[f] for f in shared} == {f: holdout_files(candidate)[f] for f in shared}
        if same and set(current["files"]["path"]) == set(candidate["files"]["path"]):
            return None  # the same files, unchanged: the same permutation
        return (f"{where}, and the files changed since: a random split of other rows is another permutation, so "
                "rows CURRENT trained on land in this holdout")
    if rule["kind"] == "time":
        if candidate["holdout_time"] is None or current["train_time"] is None:
            return None
        if candidate["holdout_time"][0] > current["train_time"][1]:
            return None
        return (f"{where}, and this holdout starts at {candidate['holdout_time'][0]}, before CURRENT's training rows "
                f"end ({current['train_time'][1]})")
    return f"{where} (CURRENT's training file is this run's test file)"


def _names(files: list[str], limit: int = 3) -> str:
    shown = ", ".join(Path(f).name for f in files[:limit])
    return shown + (f" and {len(files) - limit} more" if len(files) > limit else "")


def _rule_text(rule: dict) -> str:
    kind = rule["kind"]
    if kind == "files":
        return "as pre-split files (data.train / valid / test)"
    if kind == "column":
        return f"by column {rule['split_column']!r}"
    if kind == "time":
        return f"by time ({rule['timestamp']!r})"
    return f"at random ({'by a hash of the request id, ' if kind == 'hash' else ''}data.seed {rule['seed']})"
