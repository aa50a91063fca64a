"""Shared by the retrain tests: a quick spec file, a registry seeded with the session bundle, and a
copy of the demo data whose *training* labels are shuffled (the holdout stays clean, so the
comparison with CURRENT on the same holdout is fair)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from training.spec import RankerSpec

LABELS = ["click", "watch_time", "like", "rating"]


def quick_spec(spec: RankerSpec, data: Path | None = None, epochs: int = 3, **gates: float) -> RankerSpec:
    """The demo spec with few epochs, one thread and optional gate overrides."""
    update = {"train": spec.train.model_copy(update={"epochs": epochs, "threads": 1}),
              "gates": spec.gates.model_copy(update=gates)}
    if data is not None:
        update["data"] = spec.data.model_copy(update={"path": str(data)})
    return spec.model_copy(update=update)


def write_spec(spec: RankerSpec, path: Path) -> Path:
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    return path


def shuffle_training_labels(src: Path, dst: Path, holdout_fraction: float = 0.15, seed: int = 1) -> Path:
    """Copy src with the label columns permuted among the oldest (1 - holdout_fraction) rows."""
    table = pq.read_table(src, partitioning="hive").drop(["date"]).sort_by("ts")
    cut = int(table.num_rows * (1 - holdout_fraction))
    perm = np.random.default_rng(seed).permutation(cut)
    idx = pa.array(np.r_[perm, np.arange(cut, table.num_rows)])
    for name in LABELS:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, pc.take(table.column(name), idx))
    dst.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, dst / "part-0.parquet")
    return dst


def pre_split(src: Path, out: Path) -> dict[str, str]:
    """The demo rows at src as train / valid / test files (oldest 80 % / next 10 % / newest 10 %) without their
    timestamp: a user's pre-split table."""
    table = pq.read_table(src, partitioning="hive").sort_by("ts").drop_columns(["ts"])
    if "date" in table.column_names:
        table = table.drop_columns(["date"])
    n = table.num_rows
    cuts = {"train": (0, int(0.8 * n)), "valid": (int(0.8 * n), int(0.9 * n)), "test": (int(0.9 * n), n)}
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, (lo, hi) in cuts.items():
        files[name] = str(out / f"{name}.parquet")
        pq.write_table(table.slice(lo, hi - lo), files[name])
    return files
