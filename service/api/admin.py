"""/v1/admin/*: reload and rollback, behind a bearer token. Not mounted at all without a token.

reload    re-read weights.yaml and follow the registry's CURRENT again (retrying refused versions)
rollback  serve an earlier version on this replica and hold it (until the next reload); for the
          whole fleet move CURRENT instead (`ranker rollback`), which every replica follows
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query

from service.api.deps import RuntimeDep, require_admin
from service.api.models import model_summary
from service.errors import Conflict, NotFound

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.post("/reload")
async def reload(runtime: RuntimeDep) -> dict[str, Any]:
    runtime.models.unpin()
    weights = await anyio.to_thread.run_sync(lambda: runtime.weights.check(force=True))
    model = await runtime.models.check(retry_refused=True)
    return {"weights": vars(weights), "model": vars(model), "status": model_summary(runtime)}


@router.post("/rollback")
async def rollback(runtime: RuntimeDep,
                   version: Annotated[int | None, Query(ge=1, description="default: the version served before")] = None,
                   ) -> dict[str, Any]:
    target = version if version is not None else runtime.models.previous_version()
    if target is None:
        raise Conflict("this replica has served no earlier version; pass ?version=N")
    known = await anyio.to_thread.run_sync(runtime.models.registry.versions)
    if target not in known:
        raise NotFound(f"version {target} is not in the registry (it has {known})")
    check = await runtime.models.pin(target)
    if check.result not in ("success", "unchanged"):
        raise Conflict(f"version {target} was refused: {check.error}")
    return {"model": vars(check), "status": model_summary(runtime)}
