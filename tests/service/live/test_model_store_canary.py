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
