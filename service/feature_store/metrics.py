"""Prometheus metrics of the feature store, registered on the server's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LOOKUP_BUCKETS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


class FeatureStoreMetrics:
    """Lookups, misses and store errors per entity; snapshot loads; lookup time per store."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.lookups = Counter("ranker_feature_lookups", "Ids looked up in the feature store", ["entity"], registry=r)
        self.misses = Counter("ranker_feature_misses", "Ids not found in the feature store (model defaults used)",
                              ["entity"], registry=r)
        self.errors = Counter("ranker_feature_store_errors", "Failed feature-store reads (outage, timeout)",
                              ["entity"], registry=r)
        self.duration = Histogram("ranker_feature_lookup_duration_seconds", "Time to look up one request's ids",
                                  ["entity", "store"], buckets=LOOKUP_BUCKETS, registry=r)
        self.snapshot_loads = Counter("ranker_feature_snapshot_loads", "Snapshot load attempts by result",
                                      ["entity", "result"], registry=r)
        self.snapshot_version = Gauge("ranker_feature_snapshot_version", "Snapshot version being served",
                                      ["entity"], registry=r)
        self.snapshot_rows = Gauge("ranker_feature_snapshot_rows", "Ids in the served snapshot", ["entity"], registry=r)
