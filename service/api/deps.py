"""Dependencies shared by the routes (short aliases, as in the FastAPI full-stack template)."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from service.errors import PayloadTooLarge, Unauthorized
from service.live.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def require_admin(runtime: RuntimeDep, authorization: Annotated[str | None, Header()] = None) -> None:
    """Bearer auth for /v1/admin/*; constant-time comparison of the token."""
    token = runtime.settings.admin_token
    scheme, _, given = (authorization or "").partition(" ")
    if token is None or scheme.lower() != "bearer" or not secrets.compare_digest(
        given.strip().encode(), token.get_secret_value().encode()
    ):
        raise Unauthorized("admin routes need 'Authorization: Bearer <token>' with the configured token")


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes: by Content-Length up front, and while reading
    (a chunked body has no Content-Length, so the count is what enforces the limit)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge.at("body", f"{declared} bytes is more than the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge.at("body", f"more than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
