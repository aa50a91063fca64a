"""The embedded store (the default): follows each entity's snapshot CURRENT in the registry.

A new version is read and validated on a loader thread while the old snapshot keeps serving,
then swapped in as one reference: a request holds the snapshot it started with to the end, so a
swap fails no request. A version that fails validation (a missing column, a wrong type, repeated
ids, a bad sha256) is refused, logged and counted; the old snapshot keeps serving and the version
is not retried by polling.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from service.contract.bundle import Manifest
from service.contract.lookups import ENTITIES, feature_kinds
from service.feature_store.metrics import FeatureStoreMetrics
from service.feature_store.snapshot import Found, Snapshot, SnapshotError
from service.feature_store.snapshots import load_version, snapshot_registry
from service.registry import RegistryError

log = logging.getLogger(__name__)


class EmbeddedStore:
    """Snapshots of every entity, in this process.

    Args:
        root: the registry root (the models' own).
        model_name: whose snapshots to follow.
        metrics: the feature-store metrics.
        serving_manifest: the manifest of the model being served, or None (to validate new snapshots).
        on_swap: called after a snapshot is swapped in (a model refused for the old one may now fit).
    """

    kind = "embedded"

    def __init__(self, root: str | Path, model_name: str, metrics: FeatureStoreMetrics,
                 serving_manifest: Callable[[], Manifest | None] = lambda: None,
                 on_swap: Callable[[], None] = lambda: None) -> None:
        self.registries = {e: snapshot_registry(root, model_name, e) for e in ENTITIES}
        self.metrics = metrics
        self.serving_manifest = serving_manifest
        self.on_swap = on_swap
        self.snapshots: dict[str, Snapshot] = {}  # replaced whole, never mutated
        self.refused: dict[str, dict[int, str]] = {e: {} for e in ENTITIES}
        self._loader = anyio.CapacityLimiter(1)

    def lookup(self, entity: str, ids: Sequence[Any], kinds: dict[str, str]) -> Found:
        snapshot = self.snapshots.get(entity)
        if snapshot is None:
            return Found.missing(len(ids), kinds)  # nothing published yet: every id is a miss, and counted
        return snapshot.lookup(ids, kinds)

    def fits(self, manifest: Manifest) -> str | None:
        """Why the active snapshots cannot serve this model (None when they can, or none is published)."""
        for entity, snapshot in self.snapshots.items():
            kinds = feature_kinds(manifest.lookups, manifest.features, entity)
            problem = snapshot.kinds_problem(kinds) if kinds else None
            if problem:
                return f"the {entity} feature snapshot cannot serve it: {problem}"
        return None

    def check(self) -> dict[str, str]:
        """Load each entity's CURRENT snapshot if it is new (blocking). Entity -> result."""
        results = self._load_new()
        if "success" in results.values():
            self.on_swap()
        return results

    def _load_new(self) -> dict[str, str]:
        return {entity: self._check_entity(entity) for entity in ENTITIES}

    def _check_entity(self, entity: str) -> str:
        registry = self.registries[entity]
        try:
            target = registry.current()
        except (RegistryError, OSError) as e:
            log.error("cannot read a feature snapshot's CURRENT", extra={"entity": entity, "error": str(e)})
            return "failed"
        active = self.snapshots.get(entity)
        if target is None or (active is not None and active.version == target):
            return "unchanged"
        if target in self.refused[entity]:
            return "skipped"
        return self._load(entity, target)

    def _load(self, entity: str, version: int) -> str:
        manifest = self.serving_manifest()
        kinds = feature_kinds(manifest.lookups, manifest.features, entity) if manifest is not None else None
        t0 = time.perf_counter()
        try:
            snapshot = load_version(self.registries[entity], entity, version, kinds)
        except (SnapshotError, RegistryError, OSError) as e:
            self.refused[entity][version] = str(e)
            self.metrics.snapshot_loads.labels(entity=entity, result="refused").inc()
            log.error("feature snapshot refused; the previous one keeps serving",
                      extra={"entity": entity, "snapshot_version": version, "error": str(e)})
            return "refused"
        self.snapshots = {**self.snapshots, entity: snapshot}
        self.metrics.snapshot_loads.labels(entity=entity, result="success").inc()
        self.metrics.snapshot_version.labels(entity=entity).set(version)
        self.metrics.snapshot_rows.labels(entity=entity).set(snapshot.rows)
        log.info("feature snapshot loaded", extra={"entity": entity, "snapshot_version": version, "rows": snapshot.rows,
                                                   "megabytes": round(snapshot.nbytes / 2**20, 1),
                                                   "load_seconds": round(time.perf_counter() - t0, 3)})
        return "success"

    async def run(self, interval: float) -> None:
        """Poll forever (cancelled at shutdown)."""
        while True:
            await asyncio.sleep(interval)
            await self.check_async()

    async def check_async(self) -> dict[str, str]:
        """`check` with the loading on a thread and `on_swap` back on the event loop (the model store's)."""
        results = await anyio.to_thread.run_sync(partial(self._load_new), limiter=self._loader)
        if "success" in results.values():
            self.on_swap()
        return results

    def describe(self) -> dict[str, Any]:
        """For GET /v1/models: the snapshot served per entity and the refused versions."""
        out: dict[str, Any] = {"store": self.kind}
        for entity in ENTITIES:
            s = self.snapshots.get(entity)
            out[entity] = {"version": s.version if s else None, "rows": s.rows if s else 0,
                           "refused": {str(v): why for v, why in self.refused[entity].items()}}
        return out
