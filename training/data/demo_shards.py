"""Demo logs too large for one table, generated and written one shard at a time.

`ranker demo-data --rows 50000000` cannot build 50M rows in memory (about 150 bytes a row), so
above `shard_rows` the requests are drawn in shards: shard s holds consecutive requests in its own
slice of the time span, drawn from its own random streams ([seed, 1, s], [seed, 2, s], [seed, 3, s]).
The world (users, items, their hidden traits and the title proxy) is shared, so every shard shows
the same catalogue, and rows stay in time order across shards. Memory is one shard.

Files: out_dir/date=YYYY-MM-DD/part-SSSSS.parquet (a shard that spans midnight writes two files).
A row count of at most `shard_rows` is written by `write_partitioned(generate(cfg))` as before;
sharded output is another draw of the same world, not the same rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from training.data.demo import (
    DemoConfig,
    _impressions,
    _simulate_rows,
    _title_caps,
    _world,
    feature_snapshots,
    write_partitioned,
)

DEFAULT_SHARD_ROWS = 2_000_000


def shard_plan(cfg: DemoConfig, shard_rows: int) -> list[tuple[int, int, float, float]]:
    """(first request, requests, t0, t1 seconds) of each shard; time is split in proportion to requests."""
    k = cfg.candidates_per_request
    n_req = max(1, cfg.rows // k)
    per = max(1, shard_rows // k)
    span = cfg.days * 86_400.0
    return [(first, min(per, n_req - first), span * first / n_req, span * min(first + per, n_req) / n_req)
            for first in range(0, n_req, per)]


def generate_shard(cfg: DemoConfig, world: dict[str, np.ndarray], caps: np.ndarray, s: int,
                   part: tuple[int, int, float, float]) -> pa.Table:
    """Shard s of the sharded demo logs (rows sorted by time)."""
    rng = np.random.default_rng([cfg.seed, 1, s])
    imp = _impressions(cfg, world, rng, part)
    table, _ = _simulate_rows(cfg, world, imp, rng, np.random.default_rng([cfg.seed, 2, s]),
                              np.random.default_rng([cfg.seed, 3, s]), caps)
    return table


def write_sharded(cfg: DemoConfig, out_dir: Path, shard_rows: int = DEFAULT_SHARD_ROWS,
                  features_out: Path | None = None) -> tuple[list[Path], dict[str, Path]]:
    """Write the demo logs shard by shard; returns (the Parquet files, the feature snapshot files)."""
    world = _world(cfg)
    caps = _title_caps(cfg, world, np.random.default_rng([cfg.seed, 4]))
    files: list[Path] = []
    snapshots: dict[str, list[pa.Table]] = {"item": [], "user": []}
    for s, part in enumerate(shard_plan(cfg, shard_rows)):
        table = generate_shard(cfg, world, caps, s, part)
        files += write_partitioned(table, out_dir, f"part-{s:05d}.parquet")
        for entity, snap in feature_snapshots(table).items():
            snapshots[entity].append(snap)
    return files, _write_merged_snapshots(snapshots, features_out)


def _write_merged_snapshots(parts: dict[str, list[pa.Table]], out_dir: Path | None) -> dict[str, Path]:
    """Each id's newest values over all shards (later shards are newer), as write_feature_snapshots writes."""
    import pyarrow.parquet as pq

    if out_dir is None:
        return {}
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for entity, tables in parts.items():
        key = "item_id" if entity == "item" else "user_id"
        merged = pa.concat_tables(tables)
        names = [c for c in merged.column_names if c != key]
        agg = merged.group_by(key, use_threads=False).aggregate([(n, "last") for n in names])
        table = agg.rename_columns([n.removesuffix("_last") for n in agg.column_names]).sort_by(key)
        paths[entity] = out_dir / f"{entity}s.parquet"
        pq.write_table(table, paths[entity])
    return paths
