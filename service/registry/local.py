"""A registry store on a local or shared POSIX filesystem (a path, or a Kubernetes PVC).

A version is a directory renamed into `versions/` after every file in it was fsynced, so a reader
sees all of it or nothing. CURRENT is replaced by rename. The lock is flock(2): the OS releases it
when the holder dies, however it dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from service.contract.files import atomic_write_bytes, fsync_dir, fsync_tree
from service.registry.failpoints import pause_point
from service.registry.store import (
    LOCK_FILE,
    VERSIONS_DIR,
    RegistryError,
    RegistryLocked,
    describe_holder,
    holder_info,
    version_name,
)


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
        atomic_write_bytes(self.model_dir / name, data, before_rename=partial(pause_point, f"{name.lower()}_tmp_written"))

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
