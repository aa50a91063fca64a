"""Follows the registry's CURRENT pointer: load, verify, warm up off the event loop, then swap.

A version that fails to load (bad sha256, failing parity sample, unloadable graph) or whose tasks
no longer fit the active weights is refused: the old model keeps serving, the refusal is logged
and counted in `ranker_model_loads_total{result}`, and the version is not retried by polling
(an admin reload retries it; a weights change retries the versions refused for the weights). An operator can pin a version (admin rollback); polling then holds
it until an admin reload follows CURRENT again.

The CANARY record (service/registry/canary.py) is followed on the same poll: its version is loaded
and verified beside CURRENT the same way and handed to the state with the record; one that fails
is refused the same way (logged, counted, in `refused`, shown by /v1/models) while CURRENT serves
everyone. An ended record, or a canary version that became CURRENT, drops the canary.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio

from service.contract.bundle import BundleError, Manifest, SessionConfig
from service.live.model import load_model
from service.live.state import ModelRefused, ServingState
from service.metrics import RankerMetrics
from service.registry import CanaryRecord, Registry, RegistryError

log = logging.getLogger(__name__)
T = TypeVar("T")

LoadResult = Literal["success", "failed", "refused", "unchanged", "skipped", "no_current"]


@dataclass(frozen=True)
class ModelCheck:
    """What one check of the registry did."""

    result: LoadResult
    version: int | None
    error: str | None = None


class ModelStore:
    """Keeps `state`'s model in step with the registry.

    Args:
        registry: where versions and the CURRENT pointer live (only current/bundle_dir/versions are used).
        state: the serving state to swap models into.
        session_config: onnxruntime options for new sessions.
        max_candidates: the request limit (the parser and the warm-up batch use it).
        fits: manifest -> why the model cannot serve (e.g. the feature snapshot lacks a column it
            looks up), or None; a model that does not fit is refused like one that misfits the weights.
    """

    def __init__(self, registry: Registry, state: ServingState, metrics: RankerMetrics,
                 session_config: SessionConfig, max_candidates: int,
                 fits: Callable[[Manifest], str | None] | None = None) -> None:
        self.fits = fits
        self.registry = registry
        self.state = state
        self.metrics = metrics
        self.session_config = session_config
        self.max_candidates = max_candidates
        self.refused: dict[int, str] = {}  # version -> why; not retried by polling
        self._misfits: set[int] = set()  # refused only because of the weights: retried when they change
        self.pinned: int | None = None
        self.history: deque[int] = deque(maxlen=32)  # versions served by this process, oldest first
        self._lock = asyncio.Lock()  # one load at a time
        self._said_no_current = False
        self._loader = anyio.CapacityLimiter(1)  # loads never take the scoring threads
        self.canary_record: CanaryRecord | None = None  # the registry's, as last read
        self.canary_error: str | None = None  # why the record's version does not serve, if it does not

    async def check(self, retry_refused: bool = False) -> ModelCheck:
        """Load the target version (pinned, else CURRENT) if it is not the one serving; then follow CANARY."""
        async with self._lock:
            result = await self._check_current(retry_refused)
            await self._follow_canary(retry_refused)
            return result

    async def _check_current(self, retry_refused: bool) -> ModelCheck:
        try:
            target = self.pinned if self.pinned is not None else await self._run(self.registry.current)
        except (RegistryError, OSError) as e:
            log.error("cannot read the registry's CURRENT pointer", extra={"error": str(e)})
            return ModelCheck("failed", None, str(e))
        if target is None:
            if not self._said_no_current:
                log.warning("the registry has no CURRENT version of this model yet; polling",
                            extra={"registry": str(self.registry.root), "model_name": self.registry.model_name})
                self._said_no_current = True
            return ModelCheck("no_current", None)
        # Only the version: a reference to the old model held across _load would keep it (and its
        # request schema's reference cycles) alive through the post-swap collection, then frozen.
        if self._serving_version() == target:
            self.metrics.model_refused.set(0)
            return ModelCheck("unchanged", target)
        if target in self.refused and not retry_refused:
            return ModelCheck("skipped", target, self.refused[target])
        check = await self._load(target)
        self.metrics.model_refused.set(0 if check.result == "success" else 1)
        return check

    async def pin(self, version: int) -> ModelCheck:
        """Serve `version` (loading it now) and stop following CURRENT until `unpin`."""
        previous = self.pinned
        self.pinned = version
        check = await self.check(retry_refused=True)
        if check.result not in ("success", "unchanged"):
            self.pinned = previous
        return check

    def unpin(self) -> None:
        self.pinned = None

    def weights_changed(self) -> None:
        """New weights (or a new feature snapshot) may fit versions refused for the old ones: let
        polling try them again."""
        for version in list(self._misfits):
            self.refused.pop(version, None)
        self._misfits.clear()

    def _serving_version(self) -> int | None:
        model = self.state.model
        return model.version if model is not None else None

    def previous_version(self) -> int | None:
        """The version served before the current one, for a rollback without an explicit version."""
        current = self._serving_version()
        earlier = [v for v in self.history if v != current]
        return earlier[-1] if earlier else None

    async def run(self, interval: float) -> None:
        """Poll forever (cancelled at shutdown); the first check runs at once."""
        while True:
            await self.check()
            await asyncio.sleep(interval)

    async def _follow_canary(self, retry_refused: bool) -> None:
        """Make the state's canary what the CANARY record says (a failed read keeps what serves)."""
        try:
            record = await self._run(self.registry.canary)
        except (RegistryError, OSError) as e:
            log.error("cannot read the registry's CANARY record; the canary (if any) is unchanged",
                      extra={"error": str(e)})
            return
        self.canary_record = record
        await self._follow_check(record)
        loaded = self.state.canary
        if record is None or record.version == self._serving_version():
            self.canary_error = None
            if loaded is not None:
                self.state.clear_canary()
                self.metrics.set_canary(None)
                log.info("canary ended", extra={"model_version": loaded.model.version})
            return
        if loaded is not None and loaded.model.version == record.version:
            if loaded.record != record:
                self.state.set_canary_record(record)
                self.metrics.set_canary(record)
            return
        if loaded is not None:  # a canary of another version (aborted and replaced between two polls)
            self.state.clear_canary()
            self.metrics.set_canary(None)
        if record.version in self.refused and not retry_refused:
            return
        check = await self._load(record.version, record)
        self.canary_error = check.error

    async def _follow_check(self, record: CanaryRecord | None) -> None:
        """`ranker_canary_check_failing` from CANARY_CHECK, read only while a canary runs (a failed read keeps it)."""
        if record is None or record.mode != "canary":
            self.metrics.canary_check_failing.set(0)
            return
        try:
            check = await self._run(self.registry.canary_check)
        except (RegistryError, OSError) as e:
            log.error("cannot read the registry's CANARY_CHECK record", extra={"error": str(e)})
            return
        failing = check is not None and check.version == record.version and check.failing
        self.metrics.canary_check_failing.set(int(failing))

    async def _load(self, version: int, canary: CanaryRecord | None = None) -> ModelCheck:
        role = canary.mode if canary is not None else "current"
        try:
            bundle_dir: Path = await self._run(self.registry.bundle_dir, version)
            loaded = self.state.canary
            if canary is None and loaded is not None and loaded.model.version == version:
                model = loaded.model  # a promoted canary: loaded and verified already, warm
            else:
                model = await self._run(load_model, bundle_dir, version, self.session_config, self.max_candidates)
            problem = self.fits(model.manifest) if self.fits is not None else None
            if problem:
                raise ModelRefused(f"model version {version}: {problem}")
            replaced = self.state.model is not None
            if canary is not None:
                self.state.set_canary(model, canary)
            else:
                self.state.set_model(model)
        except (BundleError, RegistryError, ModelRefused, OSError) as e:
            result = "refused" if isinstance(e, ModelRefused) else "failed"
            self.refused[version] = str(e)
            if result == "refused":
                self._misfits.add(version)
            self.metrics.model_loads.labels(result=result).inc()
            log.error("model version refused; the previous model keeps serving" if canary is None else
                      f"{role} version refused; CURRENT serves every request",
                      extra={"model_version": version, "result": result, "role": role, "error": str(e)})
            return ModelCheck(result, version, str(e))
        self.refused.pop(version, None)
        self._misfits.discard(version)
        self.metrics.model_loads.labels(result="success").inc()
        if canary is not None:
            self.metrics.set_canary(canary)
        else:
            self.history.append(version)
            self.metrics.set_model_version(version)
            self.metrics.set_serving(self.state.ready, model.manifest.created_at)
            self.metrics.set_feature_sources({f.name: f.source for f in model.manifest.features.all()})
            self.metrics.set_training_scores(training_scores(model.manifest))
        await self._run(freeze_long_lived, replaced)
        log.info("model version loaded", extra={"model_version": version, "role": role, "path": str(bundle_dir),
                                                "load_seconds": round(model.load_seconds, 3)})
        return ModelCheck("success", version)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Registry reads and model loads run on their own thread, never on the event loop."""
        return await anyio.to_thread.run_sync(partial(fn, *args), limiter=self._loader)


TRAINING_STATS = ("p05", "p50", "p95")  # the quantiles the dashboard draws beside the served ones


def training_scores(manifest: Manifest) -> dict[str, dict[str, float]]:
    """task -> mean and TRAINING_STATS of its holdout outputs, for the tasks whose manifest has them."""
    out = {}
    for task in manifest.tasks:
        if task.score_stats is not None:
            qs = task.score_stats.quantiles
            out[task.name] = {"mean": task.score_stats.mean, **{q: qs[q] for q in TRAINING_STATS if q in qs}}
    return out


def freeze_long_lived(replaced: bool) -> None:
    """Move everything alive now (the app, the model, the weights) out of the cyclic GC's reach.

    Otherwise every full collection walks all of it: ~30-50 ms with the demo model, once every
    ~200 requests of 500 candidates, which is the server's p99. A replaced model is mostly freed by
    reference counting, but its request schema (classes made by pydantic's create_model) lives in
    reference cycles: after a swap, unfreezing and one full collection free it. The first load
    replaces nothing, so it only freezes.
    """
    if replaced:
        gc.unfreeze()
        gc.collect()
    gc.freeze()
