"""The model store inside the app: refusals, retries after a weights change, no model at all."""

import json
import shutil

from server_helpers import wait_until

from service.contract.bundle import MANIFEST_FILE


def publish_renamed_task(registry, bundle_dir, tmp_path) -> int:
    """A copy of the bundle whose `rating` head is called `stars` (the demo weights name `rating`)."""
    work = tmp_path / "renamed"
    shutil.copytree(bundle_dir, work)
    manifest = json.loads((work / MANIFEST_FILE).read_text())
    for task in manifest["tasks"]:
        task["name"] = "stars" if task["name"] == "rating" else task["name"]
    (work / MANIFEST_FILE).write_text(json.dumps(manifest))
    return registry.publish(work)


def test_misfit_model_is_refused_then_taken_once_the_weights_fit(client, registry, bundle_dir, tmp_path,
                                                                 weights_path):
    version = publish_renamed_task(registry, bundle_dir, tmp_path)
    models = lambda: client.get("/v1/models").json()  # noqa: E731
    assert wait_until(lambda: str(version) in models()["refused_versions"])
    assert "profiles.balanced.rating" in models()["refused_versions"][str(version)]
    assert models()["model"]["version"] == 1 and client.get("/v2/health/ready").status_code == 200
    weights_path.write_text("profiles: {default: {click: 1.0, like: 1.0}}\n")  # fits both models
    assert wait_until(lambda: models()["model"]["version"] == version, timeout=5)
    assert models()["refused_versions"] == {}


def test_version_history_gives_the_rollback_target(client, registry, bundle_dir):
    runtime = client.app.state.runtime
    assert runtime.models.previous_version() is None
    registry.publish(bundle_dir)
    assert wait_until(lambda: runtime.state.model.version == 2)
    assert runtime.models.previous_version() == 1


def test_long_lived_objects_are_frozen_after_a_load(client):
    import gc

    # The app, model and weights are out of the cyclic GC's reach: full collections stay short.
    assert gc.get_freeze_count() > 10_000


def test_a_replaced_model_is_freed_after_the_swap(client, registry, bundle_dir):
    import weakref

    runtime = client.app.state.runtime
    # The per-model request schema is a class (pydantic create_model): it lives in reference
    # cycles, so only a full collection after the swap frees it, even though it was frozen.
    old_schema = weakref.ref(runtime.state.model.parser._schema)
    registry.publish(bundle_dir)
    assert wait_until(lambda: runtime.state.model.version == 2)
    assert wait_until(lambda: old_schema() is None, timeout=5)
