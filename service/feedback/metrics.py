"""Prometheus metrics of `POST /v1/feedback` (on the server's registry; base units, bounded labels)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

# Why a batch was refused: bad input (422), too large (413), no or a wrong token (401), feedback off or
# the model declares no events (409), no model loaded yet (503), or the write failed (503, retried).
REASONS = ("invalid", "too_large", "unauthorized", "not_declared", "not_ready", "write_failed")
UNKNOWN = "unknown"


class FeedbackMetrics:
    """`ranker_feedback_events_total{event}`, `ranker_feedback_duplicates_total`,
    `ranker_feedback_rejected_total{reason}`, `ranker_feedback_write_failures_total`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.events = Counter("ranker_feedback_events", "Feedback events written (durable), by event name; "
                              f"names the served model does not declare count as {UNKNOWN!r}", ["event"], registry=r)
        self.duplicates = Counter("ranker_feedback_duplicates", "Feedback events skipped: their event_id was "
                                  "written before (a retried batch)", registry=r)
        self.rejected = Counter("ranker_feedback_rejected", "Feedback batches refused, by reason (nothing of "
                                "them written)", ["reason"], registry=r)
        for reason in REASONS:  # exported from the start, so alerts see a 0 before the first
            self.rejected.labels(reason=reason)
        self.write_failures = Counter("ranker_feedback_write_failures", "Feedback batches that could not be made "
                                      "durable (answered 503; the client retries)", registry=r)

    def written(self, events: list[str], declared: dict[str, str]) -> None:
        counts: dict[str, int] = {}
        for name in events:
            label = name if name in declared else UNKNOWN
            counts[label] = counts.get(label, 0) + 1
        for label, n in counts.items():
            self.events.labels(event=label).inc(n)
