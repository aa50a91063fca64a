"""Where a registry keeps its bytes: a local directory or an fsspec object store (`s3://...`).

Both stores (`local.py`, `object_store.py`) give `model_registry.Registry` the same few primitives; what "atomic" means differs.

LocalStore (a path, or a shared volume such as a Kubernetes PVC)
    A version is a directory renamed into `versions/` after every file in it was fsynced, so a
    reader sees all of it or nothing. CURRENT is replaced by rename. The lock is flock(2): the OS
    releases it when the holder dies, however it dies.

ObjectStore (any fsspec URL: s3://bucket/prefix, gs://..., memory:// in tests)
    There is no rename. A version is a prefix whose files are uploaded first and whose COMPLETE
    marker (every file's size and sha256) is written last; only prefixes with the marker count as
    versions. CURRENT is one PUT, which S3 applies atomically. The lock is a lease object created
    with a conditional PUT (If-None-Match: *), so exactly one creator wins; a lease older than its
    TTL belongs to a dead job and may be broken (see docs/OPERATIONS.md for the caveats).
    Readers fetch a version into a local cache directory, verify every file against the marker,
    then rename the directory into place; versions are immutable, so a cached copy stays valid.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from service.contract.files import sha256_file

VERSIONS_DIR = "versions"
COMPLETE_MARKER = "COMPLETE"
LOCK_FILE = ".lock"


class RegistryError(Exception):
    """A registry operation that cannot be done; the message says why."""


class RegistryLocked(RegistryError):
    """Another process holds the registry lock."""


def version_name(version: int) -> str:
    return f"{version:06d}"


def holder_info(ttl: float) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"owner": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(),
            "acquired_at": now.isoformat(), "expires_at": (now + timedelta(seconds=ttl)).isoformat()}


def describe_holder(raw: bytes | None) -> str:
    try:
        h = json.loads(raw or b"")
        return f"held by pid {h['pid']} on {h['host']} since {h['acquired_at']} (lease until {h['expires_at']})"
    except (json.JSONDecodeError, KeyError, TypeError):
        return "held by another process"


def file_digests(root: Path) -> dict[str, dict[str, Any]]:
    """Relative path -> {size, sha256} for every file under root."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        out[path.relative_to(root).as_posix()] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    return out


class Store(Protocol):
    """The primitives a Registry needs; `name` arguments are files at the model level."""

    location: str

    def versions(self) -> list[int]: ...
    def highest_version(self) -> int: ...
    def read(self, name: str) -> bytes | None: ...
    def replace(self, name: str, data: bytes) -> None: ...
    def append(self, name: str, data: bytes) -> None: ...
    def staging(self) -> contextlib.AbstractContextManager[Path]: ...
    def commit(self, staging: Path, version: int) -> None: ...
    def local_version_dir(self, version: int) -> Path: ...
    def read_version_file(self, version: int, name: str) -> bytes | None: ...
    def delete_version(self, version: int) -> None: ...
    def lock(self, ttl: float) -> contextlib.AbstractContextManager[None]: ...
    def clean_leftovers(self) -> None: ...
