"""Write a feature snapshot, or incremental updates, to Redis (`ranker features load-redis`).

The file is validated against the model first (the same checks as a registry snapshot: columns,
types, unique non-null ids, no infinities), then written in batches of MSET, one JSON object of
raw values per id under `<prefix>:<model>:<entity>:<id>`. A row replaces the id's previous
features whole, so an update file holds complete rows of the ids that changed. `replace=True`
(a full snapshot) also deletes the ids of this entity that the file no longer has.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import redis

from service.contract.lookups import ENTITY_KEY
from service.feature_store.redis_store import redis_key
from service.feature_store.snapshots import read_validated

BATCH_ROWS = 5_000


@dataclass(frozen=True)
class LoadReport:
    written: int
    deleted: int


def load_into_redis(path: Path, client: redis.Redis, model_name: str, entity: str, kinds: dict[str, str],
                    prefix: str = "ranker", replace: bool = False) -> LoadReport:
    """Validate `path` against `kinds` (the model's looked-up features), then write it; raises SnapshotError."""
    read_validated(Path(path), entity, kinds)  # refuses a bad file before anything is written
    key = ENTITY_KEY[entity]
    written, ids = 0, set()
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=[key, *kinds]):
        mapping = {}
        for row in batch.to_pylist():
            k = redis_key(prefix, model_name, entity, row.pop(key))
            mapping[k] = orjson.dumps(row)  # NaN -> null (missing)
        client.mset(mapping)
        written += len(mapping)
        if replace:
            ids.update(mapping)
    deleted = _delete_others(client, f"{prefix}:{model_name}:{entity}:", ids) if replace else 0
    return LoadReport(written, deleted)


def _delete_others(client: redis.Redis, key_prefix: str, keep: set[str]) -> int:
    stale = [k for k in (raw.decode() for raw in client.scan_iter(match=f"{key_prefix}*", count=10_000))
             if k not in keep]
    for i in range(0, len(stale), BATCH_ROWS):
        client.delete(*stale[i:i + BATCH_ROWS])
    return len(stale)
