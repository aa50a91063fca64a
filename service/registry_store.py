"""Where a registry keeps its bytes: a local directory or an fsspec object store (`s3://...`).

Both stores give `service.registry.Registry` the same few primitives; what "atomic" means differs.

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
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)

VERSIONS_DIR = "versions"
COMPLETE_MARKER = "COMPLETE"
LOCK_FILE = ".lock"
# Test hook: a publish pauses (sleeps) at the named point so a test can SIGKILL it right there.
PAUSE_ENV = "RANKER_REGISTRY_PAUSE_AT"
PAUSE_FILE_ENV = "RANKER_REGISTRY_PAUSE_FILE"
PAUSE_SECONDS = 120.0


class RegistryError(Exception):
    """A registry operation that cannot be done; the message says why."""


class RegistryLocked(RegistryError):
    """Another process holds the registry lock."""


def pause_point(name: str) -> None:
    """If RANKER_REGISTRY_PAUSE_AT names this point: touch RANKER_REGISTRY_PAUSE_FILE and sleep.

    Only the crash-safety tests set these variables; they kill the process while it sleeps.
    """
    if os.environ.get(PAUSE_ENV) != name:
        return
    marker = os.environ.get(PAUSE_FILE_ENV)
    if marker:
        Path(marker).write_text(name)
    time.sleep(PAUSE_SECONDS)


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
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        out[path.relative_to(root).as_posix()] = {"size": path.stat().st_size, "sha256": digest.hexdigest()}
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


# -- local filesystem ------------------------------------------------------------------------------


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            with open(Path(dirpath) / name, "rb") as f:
                os.fsync(f.fileno())
        fsync_dir(Path(dirpath))


class LocalStore:
    """A registry model directory on a local or shared POSIX filesystem."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = Path(model_dir)
        self.versions_dir = self.model_dir / VERSIONS_DIR
        self.location = str(self.model_dir)

    def versions(self) -> list[int]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(int(p.name) for p in self.versions_dir.iterdir() if p.name.isdigit())

    def highest_version(self) -> int:
        return max(self.versions(), default=0)

    def read(self, name: str) -> bytes | None:
        try:
            return (self.model_dir / name).read_bytes()
        except FileNotFoundError:
            return None

    def replace(self, name: str, data: bytes) -> None:
        """Temp file in the same directory, fsync, rename over the old file, fsync the directory."""
        path = self.model_dir / name
        fd, tmp = tempfile.mkstemp(dir=self.model_dir, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            pause_point(f"{name.lower()}_tmp_written")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        fsync_dir(self.model_dir)

    def append(self, name: str, data: bytes) -> None:
        with open(self.model_dir / name, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        # Inside the model directory, so that the final rename stays on one filesystem.
        path = self.model_dir / f".staging-{uuid.uuid4().hex}"
        path.mkdir(parents=True)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def commit(self, staging: Path, version: int) -> None:
        fsync_tree(staging)
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        os.rename(staging, self.versions_dir / version_name(version))
        fsync_dir(self.versions_dir)

    def local_version_dir(self, version: int) -> Path:
        path = self.versions_dir / version_name(version)
        if not path.is_dir():
            raise RegistryError(f"version {version} does not exist in {self.model_dir}")
        return path

    def read_version_file(self, version: int, name: str) -> bytes | None:
        try:
            return (self.versions_dir / version_name(version) / name).read_bytes()
        except FileNotFoundError:
            return None

    def delete_version(self, version: int) -> None:
        # Rename out of versions/ first: a crash mid-delete must not leave a half version listed.
        trash = self.model_dir / f".trash-{version_name(version)}-{uuid.uuid4().hex[:8]}"
        os.rename(self.versions_dir / version_name(version), trash)
        fsync_dir(self.versions_dir)
        pause_point("retention_renamed")
        shutil.rmtree(trash, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self, ttl: float) -> Iterator[None]:
        """Exclusive and non-blocking; the OS releases flock(2) if the holder dies."""
        self.model_dir.mkdir(parents=True, exist_ok=True)
        path = self.model_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # no O_TRUNC: the holder's note stays readable
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as e:
                raise RegistryLocked(
                    f"registry {self.model_dir} is locked by another publish ({describe_holder(path.read_bytes())}); "
                    "try again when it finishes"
                ) from e
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder_info(ttl)).encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the flock

    def clean_leftovers(self) -> None:
        """Staging, trash and temp files of publishes that died (call with the lock held)."""
        if not self.model_dir.is_dir():
            return
        for p in self.model_dir.iterdir():
            if p.name.startswith((".staging-", ".trash-")):
                shutil.rmtree(p, ignore_errors=True)
            elif p.name.startswith(".") and p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)
