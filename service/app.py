"""Assembles the FastAPI app: runtime, lifespan, error handlers, routers. Nothing runs at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.api import admin, feedback, health, metrics, models, rank
from service.api.errors import install_error_handlers
from service.live.runtime import Runtime
from service.settings import Settings, load_settings


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """The ranking server. Without arguments, settings come from the environment (uvicorn --factory)."""
    settings = settings or load_settings()
    runtime = runtime or Runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title="mtl-ranker", summary="Multi-task ranking server", version="0.1.0", lifespan=lifespan)
    app.state.runtime = runtime
    install_error_handlers(app, settings.retry_after)
    for module in (rank, feedback, health, models, metrics):
        app.include_router(module.router)
    if settings.admin_token is not None:
        app.include_router(admin.router)
    return app
