"""The model store follows the CANARY record: a misfit canary is refused then taken once the weights fit,
a replaced canary stops serving at once, an ended one is dropped."""

from __future__ import annotations

from server_helpers import wait_until
from test_model_store import publish_renamed_task


def canary(client) -> dict | None:
    return client.get("/v1/models").json()["canary"]


def test_a_misfit_canary_is_refused_while_current_serves_then_taken_when_the_weights_fit(
        client, registry, bundle_dir, tmp_path, weights_path):
    runtime = client.app.state.runtime
    version = publish_renamed_task(registry, bundle_dir, tmp_path)
    registry.promote(1)  # publish made it CURRENT; it is the canary here
    registry.start_canary(version, 0.5)
    assert wait_until(lambda: (canary(client) or {}).get("error") is not None)
    assert "profiles.balanced.rating" in canary(client)["error"] and canary(client)["serving"] is False
    assert runtime.state.serving.canary is None and runtime.state.model.version == 1
    weights_path.write_text("profiles: {default: {click: 1.0, like: 1.0}}\n")  # fits both models
    assert wait_until(lambda: (canary(client) or {}).get("serving") is True, timeout=5)
    assert canary(client)["error"] is None


def test_a_canary_replaced_between_polls_stops_serving_and_an_ended_one_is_dropped(client, registry, bundle_dir):
    runtime = client.app.state.runtime
    v2 = registry.publish(bundle_dir, make_current=False)
    v3 = registry.publish(bundle_dir, make_current=False)
    registry.start_canary(v2, 0.5)
    assert wait_until(lambda: runtime.state.serving.canary is not None)
    registry.abort_canary()
    registry.start_canary(v3, 0.5)
    assert wait_until(lambda: runtime.state.serving.canary is not None
                      and runtime.state.serving.canary.model.version == v3)
    registry.abort_canary()
    assert wait_until(lambda: runtime.state.serving.canary is None) and canary(client) is None


def failing_gauge(client) -> float:
    line = next(x for x in client.get("/metrics").text.splitlines() if x.startswith("ranker_canary_check_failing "))
    return float(line.split()[1])


def test_the_canary_check_of_the_running_canary_is_exported_and_clears_when_it_ends(client, registry, bundle_dir):
    from service.registry.canary import CanaryCheck

    v2 = registry.publish(bundle_dir, make_current=False)
    registry.start_canary(v2, 0.5)
    assert wait_until(lambda: client.app.state.runtime.state.serving.canary is not None)
    assert failing_gauge(client) == 0
    worse = CanaryCheck(v2, "worse", ["like"], {"current": 900, "canary": 880}, "2026-12-07T00:00:00+00:00")
    registry.record_canary_check(CanaryCheck(v2 + 1, "worse", ["like"], {}, worse.at))  # another version's: ignored
    assert not wait_until(lambda: failing_gauge(client) == 1, timeout=1.0)
    registry.record_canary_check(worse)
    assert wait_until(lambda: failing_gauge(client) == 1)
    registry.abort_canary()  # the alert's fix: no canary runs, nothing fails
    assert wait_until(lambda: failing_gauge(client) == 0)
