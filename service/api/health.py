"""KServe V2 health probes: live = the process answers; ready = a verified model and valid weights."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.deps import RuntimeDep

router = APIRouter(prefix="/v2/health", tags=["health"])


@router.get("/live")
async def live() -> dict:
    return {"live": True}


@router.get("/ready")
async def ready(runtime: RuntimeDep) -> JSONResponse:
    """200 while a (model, weights) pair is serving, including during a swap; 503 otherwise."""
    serving = runtime.state.serving
    if serving is None:
        return JSONResponse({"ready": False, "reason": runtime.not_ready_reason()}, status_code=503,
                            headers={"Retry-After": str(runtime.settings.retry_after)})
    return JSONResponse({"ready": True, "model_version": serving.model.version,
                         "weights_generation": serving.weights.generation})
