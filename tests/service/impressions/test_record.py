"""The record's pieces that need no server: sampling, RANKER_LOG_FEATURES, a model's log layout."""

from __future__ import annotations

import pytest

from service.impressions.config import parse_features
from service.impressions.record import build_layout, sampled
from service.settings import Settings


def test_sampling_is_a_stable_hash_of_the_request_id() -> None:
    ids = [f"r{i}" for i in range(4000)]
    first = [sampled(i, 0.25) for i in ids]
    assert first == [sampled(i, 0.25) for i in ids]  # no random draw
    assert 0.22 < sum(first) / len(ids) < 0.28
    assert all(sampled(i, 1.0) for i in ids[:10]) and not any(sampled(i, 0.0) for i in ids[:10])
    # A lower rate keeps a subset of a higher one's ids (one threshold on one hash).
    assert all(sampled(i, 0.5) for i, kept in zip(ids, first, strict=True) if kept)


@pytest.mark.parametrize("text,expected", [("all", None), ("ALL", None), ("none", ()), ("", ()),
                                           ("a, b,,c", ("a", "b", "c"))])
def test_log_features_setting(text: str, expected) -> None:
    assert parse_features(text) == expected


def test_settings_turn_the_log_on_only_with_a_directory() -> None:
    assert Settings().log_config() is None
    config = Settings(log_dir="/tmp/x", log_features="user_id,hour", log_sample=0.5).log_config()
    assert (config.destination, config.features, config.sample, config.flush_seconds) == (
        "/tmp/x", ("user_id", "hour"), 0.5, 1.0)
    with pytest.raises(ValueError, match="log_sample"):
        Settings(log_sample=1.5)


def test_layout_columns(manifest) -> None:
    everything = build_layout(manifest, None)
    names = everything.schema.names
    assert names[:14] == ["request_id", "ts", "replica", "model_name", "model_version", "model_role",
                          "weights_generation", "profile", "experiment", "arm", "user_key", "item_id", "position",
                          "score"]
    assert [n for n in names if n.startswith("head_")] == [f"head_{t.name}" for t in manifest.tasks]
    features = {f.name for f in manifest.features.all()} - {"item_id"}  # item_id is the item_id column
    assert features <= set(names) and names[-2:] == ["defaulted", "clipped"]
    one = build_layout(manifest, ("hour", "not-a-feature"))
    assert [f.name for f in one.features] == ["hour"]
    assert "defaulted" not in build_layout(manifest, ()).schema.names


def test_the_log_keeps_the_layouts_of_the_latest_model_versions_only(manifest, tmp_path) -> None:
    """A server that runs through months of nightly promotions keeps a few versions' layouts (and their
    vocabularies), the latest ones; a version seen again gets its layout back."""
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry

    from service.impressions.config import LogConfig
    from service.impressions.writer import MAX_LAYOUTS, ImpressionLog

    log = ImpressionLog(LogConfig(destination=str(tmp_path)), CollectorRegistry())
    layouts = [log._layout(SimpleNamespace(manifest=manifest, version=v)) for v in range(1, MAX_LAYOUTS + 3)]
    assert [version for _, version in log._layouts] == list(range(3, MAX_LAYOUTS + 3))
    assert log._layout(SimpleNamespace(manifest=manifest, version=MAX_LAYOUTS + 2)) is layouts[-1]
    assert log._layout(SimpleNamespace(manifest=manifest, version=1)) == layouts[0]  # built again, equal
