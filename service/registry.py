"""A model registry on a filesystem: versioned bundles and an atomically replaced CURRENT pointer.

Layout under `<root>/<model_name>/`:
    versions/000001/{model.onnx, manifest.json, ...}   complete bundles only (renamed into place)
    CURRENT                                             the serving version, replaced atomically
    history.jsonl                                       one line per change of CURRENT
    .lock                                               held while publishing or moving CURRENT

A publish copies the bundle into a staging directory, fsyncs it, then renames it into
`versions/`; CURRENT is then written to a temp file, fsynced and renamed over the old one. A crash
at any point leaves CURRENT naming a complete bundle.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from service.bundle import atomic_write_bytes, read_manifest, write_manifest

CURRENT_FILE = "CURRENT"
HISTORY_FILE = "history.jsonl"
VERSIONS_DIR = "versions"


class RegistryError(Exception):
    """A registry operation that cannot be done; the message says why."""


class RegistryLocked(RegistryError):
    """Another process holds the registry lock."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            with open(Path(dirpath) / name, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(dirpath))


class Registry:
    """Versions of one model under a root directory.

    Args:
        root: registry root directory (shared between the trainer and every server).
        model_name: subdirectory for this model.
        keep: how many versions retention keeps (CURRENT and its predecessor are always kept).
    """

    def __init__(self, root: str | Path, model_name: str, keep: int = 5) -> None:
        if keep < 2:
            raise ValueError("keep must be >= 2 so that rollback always has a target")
        self.root = Path(root)
        self.model_name = model_name
        self.keep = keep
        self.model_dir = self.root / model_name
        self.versions_dir = self.model_dir / VERSIONS_DIR

    # -- reading (what servers do) -------------------------------------------------------------

    def versions(self) -> list[int]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(int(p.name) for p in self.versions_dir.iterdir() if p.name.isdigit())

    def current(self) -> int | None:
        try:
            text = (self.model_dir / CURRENT_FILE).read_text().strip()
        except FileNotFoundError:
            return None
        if not text.isdigit():
            raise RegistryError(f"{self.model_dir / CURRENT_FILE}: not a version number: {text!r}")
        return int(text)

    def bundle_dir(self, version: int) -> Path:
        path = self.versions_dir / f"{version:06d}"
        if not path.is_dir():
            raise RegistryError(f"version {version} of {self.model_name!r} does not exist")
        return path

    def history(self) -> list[dict]:
        path = self.model_dir / HISTORY_FILE
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    # -- writing (what the trainer and operators do) -------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive, non-blocking; released by the OS if the holder dies."""
        self.model_dir.mkdir(parents=True, exist_ok=True)
        with open(self.model_dir / ".lock", "w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as e:
                raise RegistryLocked(
                    f"registry {self.model_dir} is locked by another publish; try again when it finishes"
                ) from e
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def publish(self, bundle_dir: Path, *, make_current: bool = True, reason: str = "published") -> int:
        """Copy a bundle in as the next version; optionally make it CURRENT. Returns the version."""
        with self.lock():
            version = max(self.versions(), default=0) + 1
            self.versions_dir.mkdir(parents=True, exist_ok=True)
            staging = self.model_dir / f".staging-{uuid.uuid4().hex}"
            try:
                shutil.copytree(bundle_dir, staging)
                manifest = read_manifest(staging)
                write_manifest(staging, manifest.model_copy(update={"model_version": version}))
                _fsync_tree(staging)
                os.rename(staging, self.versions_dir / f"{version:06d}")
                _fsync_dir(self.versions_dir)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            if make_current:
                self._set_current(version, reason)
            self._apply_retention()
        return version

    def promote(self, version: int, reason: str = "promoted") -> None:
        with self.lock():
            self.bundle_dir(version)  # must exist
            self._set_current(version, reason)

    def rollback(self) -> int:
        """Point CURRENT at the newest older version that has served before. Returns it.

        Versions that were published but never made current (rejected by the gates) are skipped;
        repeated rollbacks keep walking back.
        """
        with self.lock():
            current = self.current()
            target = self._previous_current(current)
            if target is None:
                raise RegistryError(f"no earlier version of {self.model_name!r} to roll back to")
            self._set_current(target, f"rollback from {current}")
            return target

    def _set_current(self, version: int, reason: str) -> None:
        atomic_write_bytes(self.model_dir / CURRENT_FILE, f"{version}\n".encode())
        _fsync_dir(self.model_dir)
        entry = {"version": version, "at": datetime.now(UTC).isoformat(), "reason": reason}
        with open(self.model_dir / HISTORY_FILE, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _apply_retention(self) -> None:
        versions = self.versions()
        current = self.current()
        protected = {current, self._previous_current(current)}
        for v in versions[: max(0, len(versions) - self.keep)]:
            if v not in protected:
                shutil.rmtree(self.versions_dir / f"{v:06d}", ignore_errors=True)

    def _previous_current(self, current: int | None) -> int | None:
        existing = set(self.versions())
        served = {h["version"] for h in self.history()} & existing
        return max((v for v in served if current is None or v < current), default=None)
