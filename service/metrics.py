"""Prometheus metrics (names as in DESIGN.md; base units; no per-user labels).

Each app gets its own CollectorRegistry, so several apps (tests) never collide. Head scores are
observed a whole batch at a time: one `Histogram.observe` per candidate would cost ~1 µs each, more
than the model itself for 500 candidates.

Several server processes (`ranker-serve --workers N`) run prometheus-client's multiprocess mode: with
PROMETHEUS_MULTIPROC_DIR set before prometheus_client is imported, every metric value lives in files
of that directory and /metrics adds up every process's files (MultiProcessCollector).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from service.registry.canary import CanaryRecord

LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)
INFERENCE_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1)
CANDIDATE_BUCKETS = (1, 10, 25, 50, 100, 200, 300, 500, 750, 1000, 2000, 5000)
# One set of edges for every head: probabilities (0-1), ratings (1-5), seconds of watch time.
HEAD_SCORE_BUCKETS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0,
                      2.0, 3.0, 4.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Unknown request fields are named by clients: the first this many distinct names (per process) get
# their own label value and one warning each, later ones share OTHER_FIELD, so no client can grow the
# series or the log without bound. Names are cut to MAX_FIELD_NAME characters.
MAX_UNKNOWN_FIELDS = 50
MAX_FIELD_NAME = 80
OTHER_FIELD = "__other__"

log = logging.getLogger(__name__)


def multiprocess_mode() -> bool:
    """True when this process shares its metrics with sibling server processes through files."""
    return bool(os.environ.get(MULTIPROC_ENV))


class HeadScoreHistogram(Collector):
    """`ranker_head_score{task}`: a histogram fed with whole arrays (np.searchsorted, not a loop)."""

    name = "ranker_head_score"

    def __init__(self, buckets: tuple[float, ...] = HEAD_SCORE_BUCKETS) -> None:
        self._edges = np.asarray(buckets, dtype=np.float64)
        self._lock = threading.Lock()
        self._counts: dict[str, np.ndarray] = {}  # task -> per-bucket counts, last = +Inf
        self._sums: dict[str, float] = {}
        # Multiprocess mode: the counts go to a Histogram's per-bucket values, which live in the shared files.
        self._shared = Histogram(self.name, "Distribution of each task head's output", ["task"], buckets=buckets,
                                 registry=None) if multiprocess_mode() else None

    def observe(self, heads: Mapping[str, np.ndarray]) -> None:
        """heads: {task: (B,)}, all of one length: every task's buckets in one searchsorted and one bincount."""
        if not heads:
            return
        values = np.stack(list(heads.values()))  # (T, B)
        n_buckets = len(self._edges) + 1
        # side="left": a value equal to an edge falls in that bucket (le = less or equal).
        idx = np.searchsorted(self._edges, values, side="left") + n_buckets * np.arange(len(heads))[:, None]
        all_counts = np.bincount(idx.ravel(), minlength=n_buckets * len(heads)).reshape(len(heads), n_buckets)
        totals = values.sum(axis=1, dtype=np.float64).tolist()
        for task, counts, total in zip(heads, all_counts, totals, strict=True):
            if self._shared is not None:
                self._add_shared(task, counts, total)
                continue
            with self._lock:
                if task not in self._counts:
                    self._counts[task] = np.zeros(n_buckets, dtype=np.int64)
                    self._sums[task] = 0.0
                self._counts[task] += counts
                self._sums[task] += total

    def _add_shared(self, task: str, counts: np.ndarray, total: float) -> None:
        """Per-bucket (not cumulative) counts into the Histogram's values, as its observe() would leave them."""
        child = self._shared.labels(task=task)
        for bucket, n in zip(child._buckets, counts.tolist(), strict=True):  # private, but stable since 0.4
            if n:
                bucket.inc(n)
        child._sum.inc(total)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, "Distribution of each task head's output", labels=["task"])
        with self._lock:
            snapshot = {t: (c.cumsum(), self._sums[t]) for t, c in self._counts.items()}
        for task, (cumulative, total) in sorted(snapshot.items()):
            buckets = [(_edge(e), float(n)) for e, n in zip(self._edges, cumulative[:-1], strict=True)]
            buckets.append(("+Inf", float(cumulative[-1])))
            family.add_metric([task], buckets, total)
        yield family


def _edge(value: float) -> str:
    return repr(float(value))


class RankerMetrics:
    """Every metric the server exports, on its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_duration = Histogram(
            "ranker_request_duration_seconds", "Time to answer a /v1/rank request", ["profile", "status"],
            buckets=LATENCY_BUCKETS, registry=r)
        self.inference_duration = Histogram(
            "ranker_inference_duration_seconds", "Time in session.run per request", buckets=INFERENCE_BUCKETS,
            registry=r)
        self.candidates = Histogram(
            "ranker_candidates_per_request", "Candidates in a scored request", buckets=CANDIDATE_BUCKETS, registry=r)
        self.requests = Counter("ranker_requests", "/v1/rank requests by HTTP status", ["status"], registry=r)
        # arm "none": the request named its profile, or there is no experiment (weights.yaml `experiments`).
        self.profile_requests = Counter("ranker_profile_requests", "Answered /v1/rank requests by profile and "
                                        "experiment arm", ["profile", "arm"], registry=r)
        self.model_info = Gauge("ranker_model_info", "1 for the model version being served", ["version"], registry=r,
                                multiprocess_mode="livemax")  # any live process serving it
        self._versions: set[str] = set()
        # The canary beside CURRENT: mode "canary" or "shadow"; at most one series at 1 per process.
        self.canary_info = Gauge("ranker_canary_info", "1 for the canary or shadow version loaded beside CURRENT",
                                 ["version", "mode"], registry=r, multiprocess_mode="livemax")
        self._canaries: set[tuple[str, str]] = set()
        # The registry's CANARY_CHECK (`ranker experiment canary-check`, from the joined log) of the running canary.
        self.canary_check_failing = Gauge(
            "ranker_canary_check_failing", "1 when the last check of the running canary found it worse than CURRENT "
            "on a guarded task, or a sample-ratio mismatch", registry=r, multiprocess_mode="livemax")
        # role: current | canary | shadow (the model that scored); bounded, never a version or a user.
        self.model_requests = Counter("ranker_model_requests", "Requests scored, by the role of the model that "
                                      "scored them (current, canary, shadow)", ["role"], registry=r)
        self.model_loads = Counter("ranker_model_loads", "Model load attempts by result", ["result"], registry=r)
        self.weights_reloads = Counter(
            "ranker_weights_reloads", "weights.yaml load attempts by result", ["result"], registry=r)
        self.features_defaulted = Counter(
            "ranker_features_defaulted", "Feature values a request left out, given the model's default, by feature",
            ["feature"], registry=r)
        self.features_clipped = Counter(
            "ranker_features_clipped", "Numeric feature values outside the training range, clipped to it, by "
            "feature", ["feature"], registry=r)
        self.unknown_fields = Counter(
            "ranker_request_unknown_fields", "Requests carrying a field the model does not read, by field "
            f"(user.<name>, context.<name>, candidates.<name>; the first {MAX_UNKNOWN_FIELDS} names, then "
            f"{OTHER_FIELD})", ["field"], registry=r)
        self._unknown_seen: set[str] = set()
        self._unknown_lock = threading.Lock()
        self.head_score = HeadScoreHistogram()
        r.register(self.head_score)
        # For the alert rules (deploy/monitoring): set when the served pair changes, never per request.
        self.non_finite_scores = Counter(
            "ranker_non_finite_scores", "Requests refused because the model produced a NaN or infinite score",
            registry=r)
        self.ready = Gauge("ranker_ready", "1 while a verified model with valid weights serves (ready probe 200)",
                           registry=r, multiprocess_mode="livemin")  # any live process not ready: 0
        self.model_created = Gauge(
            "ranker_model_created_timestamp_seconds", "When the served model's bundle was created (manifest "
            "created_at), Unix seconds", registry=r, multiprocess_mode="livemin")  # the oldest model served
        self.model_refused = Gauge(
            "ranker_model_refused", "1 while the version this process should serve (CURRENT, or a pinned one) "
            "was refused; the previous model keeps serving", registry=r, multiprocess_mode="livemax")
        self.feature_info = Gauge("ranker_feature_info", "1 for each feature the served model reads, by its source "
                                  "(user, context: once per request; item: once per candidate)",
                                  ["feature", "source"], registry=r, multiprocess_mode="livemax")
        self._feature_labels: set[tuple[str, str]] = set()
        self.head_score_training = Gauge(
            "ranker_head_score_training", "The served model's head outputs on its holdout (manifest score_stats), "
            "by task and stat (mean, p05, p50, p95)", ["task", "stat"], registry=r, multiprocess_mode="livemax")
        self._training_labels: set[tuple[str, str]] = set()
        self.weights_generation = Gauge("ranker_weights_generation", "Generation of the active weights.yaml",
                                        registry=r, multiprocess_mode="livemax")
        self.weights_refused = Gauge(
            "ranker_weights_refused", "1 while weights.yaml holds content that was refused (the last good weights "
            "stay active)", registry=r, multiprocess_mode="livemax")

    def set_model_version(self, version: int) -> None:
        if multiprocess_mode():  # clear() would leave the old version's value in this process's file
            for old in self._versions:
                self.model_info.labels(version=old).set(0)
        else:
            self.model_info.clear()
        self._versions.add(str(version))
        self.model_info.labels(version=str(version)).set(1)

    def set_canary(self, record: CanaryRecord | None) -> None:
        """record: the CanaryRecord loaded beside CURRENT, or None when no canary serves."""
        if multiprocess_mode():
            for version, mode in self._canaries:
                self.canary_info.labels(version=version, mode=mode).set(0)
        else:
            self.canary_info.clear()
        if record is not None:
            labels = (str(record.version), str(record.mode))
            self._canaries.add(labels)
            self.canary_info.labels(version=labels[0], mode=labels[1]).set(1)

    def set_serving(self, ready: bool, model_created: datetime | None = None) -> None:
        """After a model or weights swap: the ready flag, and the served model's creation time."""
        self.ready.set(1 if ready else 0)
        if model_created is not None:
            self.model_created.set(model_created.timestamp())

    def set_feature_sources(self, sources: Mapping[str, str]) -> None:
        """sources: feature -> user | context | item, of the model now served (the alerts' denominators)."""
        labels = set(sources.items())
        for feature, source in self._feature_labels - labels:
            self.feature_info.labels(feature=feature, source=source).set(0)  # a 0, not removed: see set_model_version
        for feature, source in labels:
            self.feature_info.labels(feature=feature, source=source).set(1)
        self._feature_labels |= labels

    def set_training_scores(self, stats: Mapping[str, Mapping[str, float]]) -> None:
        """stats: task -> {stat: value} of the model now served; a task or stat it lacks reads NaN."""
        values = {(task, stat): v for task, by_stat in stats.items() for stat, v in by_stat.items()}
        for task, stat in self._training_labels - set(values):
            self.head_score_training.labels(task=task, stat=stat).set(float("nan"))
        for (task, stat), v in values.items():
            self.head_score_training.labels(task=task, stat=stat).set(v)
        self._training_labels |= set(values)

    def observe_request(self, profile: str, status: int, seconds: float, arm: str | None = None) -> None:
        self.request_duration.labels(profile=profile, status=str(status)).observe(seconds)
        self.requests.labels(status=str(status)).inc()
        if profile:
            self.profile_requests.labels(profile=profile, arm=arm or "none").inc()

    def observe_defaulted(self, counts: Mapping[str, int]) -> None:
        """counts: feature -> values defaulted in one request (service.contract.missing)."""
        for feature, n in counts.items():
            self.features_defaulted.labels(feature=feature).inc(n)

    def observe_clipped(self, counts: Mapping[str, int]) -> None:
        """counts: numeric feature -> values clipped to the training range in one request."""
        for feature, n in counts.items():
            self.features_clipped.labels(feature=feature).inc(n)

    def observe_unknown(self, fields: list[str]) -> None:
        """fields: one request's unknown fields (service.contract.unknown), each counted once."""
        for name in fields:
            self.unknown_fields.labels(field=self._unknown_label(name[:MAX_FIELD_NAME])).inc()

    def _unknown_label(self, name: str) -> str:
        if name in self._unknown_seen:  # the common case, without the lock (a set read is atomic)
            return name
        with self._unknown_lock:
            if name in self._unknown_seen:
                return name
            if len(self._unknown_seen) >= MAX_UNKNOWN_FIELDS:
                return OTHER_FIELD
            self._unknown_seen.add(name)
            full = len(self._unknown_seen) == MAX_UNKNOWN_FIELDS
        log.warning("request field %r is not read by the model (a typo of a feature name?); counted in "
                    "ranker_request_unknown_fields_total", name, extra={"field": name})
        if full:
            log.warning("%d distinct unknown request fields seen; later ones are counted as %r and not logged",
                        MAX_UNKNOWN_FIELDS, OTHER_FIELD)
        return name

    def render(self) -> bytes:
        if not multiprocess_mode():
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # every process's files, summed (gauges by their mode)
        return generate_latest(merged)
