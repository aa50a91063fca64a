"""Everything one server process runs with: settings, state, stores, metrics, limits.

Built by `create_app`, started and stopped by its lifespan (never at import). Routes reach it
through `service.api.deps.RuntimeDep`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from functools import partial

import anyio

from service.contract.feedback import FeedbackConfig
from service.errors import FeedbackOff, NotReady, Overloaded, RankerError
from service.feature_store.embedded import EmbeddedStore
from service.feature_store.lookup import FeatureLookup
from service.feature_store.metrics import FeatureStoreMetrics
from service.feature_store.redis_store import RedisStore
from service.feedback.events import parse_feedback
from service.feedback.log import Appended, FeedbackLog
from service.feedback.metrics import FeedbackMetrics
from service.impressions.writer import ImpressionLog
from service.live.model_store import ModelStore
from service.live.pipeline import Ranked, rank, shadow_rank
from service.live.state import Canary, Serving, ServingState
from service.live.weights_store import WeightsStore
from service.metrics import RankerMetrics
from service.registry import Registry
from service.settings import Settings
from service.tracing import RequestTrace, Tracing, build_tracing

log = logging.getLogger(__name__)


class Runtime:
    """The server's moving parts.

    Args:
        settings: validated settings.
        registry: the model registry (default: `Registry(settings.registry_root, settings.model_name)`).
        tracing: where request spans go (default: OTLP when settings.otlp_endpoint is set, else None: off).
    """

    def __init__(self, settings: Settings, registry: Registry | None = None, tracing: Tracing | None = None) -> None:
        self.settings = settings
        self.tracing = tracing if tracing is not None else build_tracing(settings)
        self.metrics = RankerMetrics()
        self.state = ServingState()
        registry = registry or Registry(settings.registry_root, settings.model_name)
        self.feature_metrics = FeatureStoreMetrics(self.metrics.registry)
        self.features = build_feature_store(settings, self.feature_metrics, self.state,
                                            on_swap=lambda: self.models.weights_changed())
        self.lookup = FeatureLookup(self.features, self.feature_metrics, settings.feature_on_error == "closed")
        self.models = ModelStore(registry, self.state, self.metrics, settings.session_config(),
                                 settings.max_candidates, fits=self.features.fits)
        self.weights = WeightsStore(settings.weights_path, self.state, self.metrics, on_change=self.models.weights_changed)
        log_config = settings.log_config()
        self.impressions = ImpressionLog(log_config, self.metrics.registry) if log_config is not None else None
        self.feedback_metrics = FeedbackMetrics(self.metrics.registry) if log_config is not None else None
        self.feedback = (FeedbackLog(log_config, self.feedback_metrics, settings.feedback_dedup_ids)
                         if log_config is not None and self.feedback_metrics is not None else None)
        self.in_flight = 0
        self._limiter: anyio.CapacityLimiter | None = None
        self._feedback_limiter: anyio.CapacityLimiter | None = None
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        """Load the weights, then poll the weights file and the registry in the background."""
        threads = self.settings.scoring_threads
        self._limiter = anyio.CapacityLimiter(threads) if threads else None
        # Feedback appends are serialized by the log's lock: two threads keep one writing and the next
        # one parsed, and the calls beyond wait on the event loop, not in the shared thread pool.
        self._feedback_limiter = anyio.CapacityLimiter(2)
        # Weights first, so the first model is checked against them (a misfit model is the one refused).
        await anyio.to_thread.run_sync(self.weights.check)
        # Snapshots before the first model: the model is checked against them, and it never serves
        # id-only requests from an empty store while its snapshot is still loading.
        await self.features.check_async()
        s = self.settings
        if self.impressions is not None:
            self.impressions.start()
        if self.feedback is not None:
            self.feedback.start()
        self._tasks = [
            asyncio.create_task(self.weights.run(s.weights_poll_interval), name="weights-poll"),
            asyncio.create_task(self.models.run(s.poll_interval), name="registry-poll"),
            asyncio.create_task(self.features.run(s.feature_poll_interval), name="features-poll"),
        ]
        log.info("ranker started", extra={"registry_root": s.registry_root, "model_name": s.model_name,
                                          "weights_path": str(s.weights_path)})

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.impressions is not None:  # after the last request: what was queued is written and published
            await anyio.to_thread.run_sync(self.impressions.stop)
        if self.feedback is not None:
            await anyio.to_thread.run_sync(self.feedback.stop)
        if self.tracing is not None:  # the spans still queued are exported (bounded by the export timeout)
            await anyio.to_thread.run_sync(self.tracing.shutdown)

    def serving(self) -> Serving:
        """The (model, weights) pair for one request; NotReady (503) until both are valid."""
        serving = self.state.serving
        if serving is None:
            raise NotReady(self.not_ready_reason())
        return serving

    def not_ready_reason(self) -> str:
        if self.state.weights is None:
            return f"no valid weights loaded from {self.settings.weights_path}: {self.weights.last_error}"
        if self.state.model is None:
            refused = "; ".join(f"v{v}: {why}" for v, why in self.models.refused.items())
            return f"no verified model loaded yet{' (refused ' + refused + ')' if refused else ''}"
        return "the loaded weights do not fit the loaded model"

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Bound the requests in flight; beyond the limit shed load at once (503) instead of queueing."""
        if self.in_flight >= self.settings.max_in_flight:
            raise Overloaded(f"more than {self.settings.max_in_flight} requests in flight; retry shortly")
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    async def rank(self, serving: Serving, body: bytes, header_request_id: str | None,
                   trace: RequestTrace | None = None) -> Ranked:
        """Run the CPU-bound ranking path on a scoring thread (the event loop keeps serving probes), or
        on the event loop itself with scoring_threads 0."""
        fn = partial(rank, serving, body, self.metrics, header_request_id, self.lookup, self.impressions, trace)
        if self._limiter is None:
            return fn()
        return await anyio.to_thread.run_sync(fn, limiter=self._limiter)

    async def take_feedback(self, body: bytes, config: FeedbackConfig) -> Appended:
        """Check a feedback body against the model's events and write it durably, both on a worker thread
        (parsing 1,000 events takes ~0.7 ms, the Arrow batch and the fsync longer: never on the event loop)."""
        log = self.feedback
        if log is None:
            raise FeedbackOff("feedback is off on this server: RANKER_LOG_DIR (the log destination) is not set")
        max_events = self.settings.feedback_max_events
        return await anyio.to_thread.run_sync(lambda: log.append(parse_feedback(body, config, max_events)),
                                              limiter=self._feedback_limiter)

    async def shadow(self, shadow: Canary, body: bytes, request_id: str) -> None:
        """Score an answered request with the shadow model (the route runs this after the response is sent).
        Shed first when the server is at its in-flight limit; a failure is counted and logged, never raised."""
        if self.in_flight >= self.settings.max_in_flight:
            self.metrics.model_requests.labels(role="shadow_skipped").inc()
            return
        fn = partial(shadow_rank, shadow, body, request_id, self.metrics, self.lookup, self.impressions)
        try:
            if self._limiter is None:
                fn()
            else:
                await anyio.to_thread.run_sync(fn, limiter=self._limiter)
        except RankerError as e:
            self.metrics.model_requests.labels(role="shadow_failed").inc()
            log.warning("the shadow model could not score a request", extra={
                "request_id": request_id, "model_version": shadow.model.version, "error": e.message})


def build_feature_store(settings: Settings, metrics: FeatureStoreMetrics, state: ServingState,
                        on_swap: Callable[[], None]) -> EmbeddedStore | RedisStore:
    """The store `settings.feature_store` names: registry snapshots (embedded) or Redis."""
    if settings.feature_store == "redis":
        store: EmbeddedStore | RedisStore = RedisStore(
            settings.redis_url, settings.model_name, settings.redis_timeout, settings.redis_retry_interval,
            settings.feature_cache_ttl, settings.feature_cache_size, settings.redis_prefix)
    else:
        store = EmbeddedStore(settings.registry_root, settings.model_name, metrics,
                              serving_manifest=lambda: state.model.manifest if state.model is not None else None,
                              on_swap=on_swap)
    return store
