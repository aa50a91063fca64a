"""Issue 21, item 5: unknown request fields are counted under a bounded set of labels, each logged once."""

import logging

from service.metrics import MAX_FIELD_NAME, MAX_UNKNOWN_FIELDS, OTHER_FIELD, RankerMetrics


def count(metrics: RankerMetrics, field: str) -> float:
    return metrics.registry.get_sample_value("ranker_request_unknown_fields_total", {"field": field}) or 0.0


def test_unknown_fields_get_a_bounded_set_of_labels_and_one_warning_each(caplog):
    metrics = RankerMetrics()
    caplog.set_level(logging.WARNING, logger="service.metrics")
    names = [f"user.f{i}" for i in range(MAX_UNKNOWN_FIELDS + 20)]
    for _ in range(3):
        metrics.observe_unknown(names)
    assert count(metrics, "user.f0") == 3 and count(metrics, f"user.f{MAX_UNKNOWN_FIELDS - 1}") == 3
    assert count(metrics, f"user.f{MAX_UNKNOWN_FIELDS}") == 0 and count(metrics, OTHER_FIELD) == 3 * 20
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == MAX_UNKNOWN_FIELDS + 1 and "'user.f0'" in warnings[0] and OTHER_FIELD in warnings[-1]


def test_a_long_field_name_is_cut():
    metrics = RankerMetrics()
    metrics.observe_unknown(["candidates." + "k" * 100_000])
    assert count(metrics, ("candidates." + "k" * 100_000)[:MAX_FIELD_NAME]) == 1
