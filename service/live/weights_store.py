"""Hot reload of weights.yaml by polling its bytes.

Polling the content (not inotify events) sees every way a file can change: editors that write in
place or rename over it, Kubernetes ConfigMap symlink swaps, network filesystems. A file that fails
validation keeps the last good weights active; the failure is logged with the offending key and
counted in `ranker_weights_reloads_total{result="failed"}`, once per distinct bad content.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio

from service.contract.files import sha256_bytes
from service.live.state import ServingState
from service.metrics import RankerMetrics
from service.profiles import WeightsError, parse_weights

log = logging.getLogger(__name__)

ReloadResult = Literal["success", "failed", "unchanged"]


@dataclass(frozen=True)
class WeightsCheck:
    result: ReloadResult
    generation: int | None
    error: str | None = None


class WeightsStore:
    """Keeps `state`'s weights in step with the file at `path`."""

    def __init__(self, path: Path, state: ServingState, metrics: RankerMetrics,
                 on_change: Callable[[], None] | None = None) -> None:
        self.path = Path(path)
        self.on_change = on_change
        self.state = state
        self.metrics = metrics
        self.generation = 0  # of the last accepted file; increases by one per accepted change
        self.last_error: str | None = None
        self._seen: str | None = None  # sha256 of the last content looked at, good or bad
        self._accepted: str | None = None  # sha256 of the active content
        self._lock = threading.Lock()  # the poller and an admin reload may check at once

    def check(self, force: bool = False) -> WeightsCheck:
        """Read the file; if its content changed (or force), validate and activate it."""
        with self._lock:
            return self._check(force)

    def _check(self, force: bool) -> WeightsCheck:
        try:
            data = self.path.read_bytes()
        except OSError as e:
            return self._fail(f"cannot read {self.path}: {e}", digest=f"oserror:{e.errno}", force=force)
        digest = sha256_bytes(data)
        # force re-validates a refused file (it may fit a newer model); the active content never changes.
        if digest == self._accepted and self.last_error is not None:  # a refused file reverted to the good one
            self._seen, self.last_error = digest, None
            self.metrics.weights_refused.set(0)
        if digest == self._accepted or (digest == self._seen and not force):
            return WeightsCheck("unchanged", self.generation or None, self.last_error)
        try:
            weights = parse_weights(data, generation=self.generation + 1, source=str(self.path))
            self.state.set_weights(weights)
        except WeightsError as e:
            return self._fail(str(e), digest=digest, force=force)
        self._seen = self._accepted = digest
        self.generation, self.last_error = weights.generation, None
        self.metrics.weights_reloads.labels(result="success").inc()
        self.metrics.weights_generation.set(weights.generation)
        self.metrics.weights_refused.set(0)
        self.metrics.set_serving(self.state.ready)
        if self.on_change is not None:
            self.on_change()
        log.info("weights loaded", extra={"weights_generation": weights.generation, "sha256": digest[:12],
                                          "profiles": weights.profile_names})
        return WeightsCheck("success", weights.generation)

    def _fail(self, error: str, digest: str, force: bool) -> WeightsCheck:
        if digest != self._seen or force:
            self._seen, self.last_error = digest, error
            self.metrics.weights_reloads.labels(result="failed").inc()
            self.metrics.weights_refused.set(1)
            log.error("weights file refused; the last good weights stay active",
                      extra={"error": error, "weights_generation": self.generation or None})
        return WeightsCheck("failed", self.generation or None, error)

    async def run(self, interval: float) -> None:
        """Poll forever (cancelled at shutdown); the first check runs at once."""
        while True:
            await anyio.to_thread.run_sync(self.check)
            await asyncio.sleep(interval)
