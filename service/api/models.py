"""GET /v1/models: the bundle being served, the active weights, refused versions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.api.deps import RuntimeDep
from service.live.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models")
async def models(runtime: RuntimeDep) -> dict[str, Any]:
    return model_summary(runtime)


def model_summary(runtime: Runtime) -> dict[str, Any]:
    model, weights = runtime.state.model, runtime.state.weights
    out: dict[str, Any] = {
        "model_name": runtime.settings.model_name,
        "ready": runtime.state.ready,
        "pinned_version": runtime.models.pinned,
        "refused_versions": {str(v): why for v, why in runtime.models.refused.items()},
        "model": None,
        "canary": canary_summary(runtime),
        "weights": None,
        "feature_store": runtime.features.describe(),
    }
    if model is not None:
        m = model.manifest
        out["model"] = {
            "version": model.version,
            "created_at": m.created_at.isoformat(),
            "loaded_at": getattr(model, "loaded_at", None),
            "model_sha256": m.model_sha256,
            "tasks": [t.model_dump(mode="json") for t in m.tasks],
            "features": {s: m.features.by_source(s) for s in ("user", "context", "item")},
            "item_id_feature": m.features.item_id_feature,
            "required_features": [f.name for f in m.features.all() if f.on_missing == "error"],
            "lookups": m.lookups,
            "data_window": m.data_window,
            # Test metrics only when training was asked for them (--eval-test); validation otherwise.
            "offline_metrics": {split: m.metrics[split] for split in ("valid", "test") if split in m.metrics},
        }
    if weights is not None:
        out["weights"] = {
            "generation": weights.generation,
            "sha256": weights.sha256,
            "default_profile": weights.file.default_profile,
            "profiles": {name: {t: tw.model_dump() for t, tw in p.root.items()}
                         for name, p in weights.file.profiles.items()},
            "experiments": weights.file.experiments.model_dump() if weights.file.experiments else None,
            "last_error": runtime.weights.last_error,
        }
    return out


def canary_summary(runtime: Runtime) -> dict[str, Any] | None:
    """The registry's CANARY record as last polled, and whether its version serves here (or why not)."""
    record, loaded = runtime.models.canary_record, runtime.state.canary
    if record is None:
        return None
    serving = loaded is not None and loaded.model.version == record.version
    return {"version": record.version, "share": record.share, "mode": record.mode, "salt": record.salt,
            "started_at": record.started_at, "serving": serving,
            "error": None if serving else runtime.models.canary_error or runtime.models.refused.get(record.version)}
