"""A registry store on an fsspec object store (`s3://bucket/prefix`, `memory://` in tests).

Layout under `<url>/<model_name>/` mirrors the local one:
    versions/000007/<bundle files>   uploaded first
    versions/000007/COMPLETE         written last: {"version", "files": {path: {size, sha256}}}
    CURRENT                          one PUT (atomic on S3)
    history.jsonl                    rewritten whole under the lock (object stores cannot append)
    .lock                            a lease, created with If-None-Match: * (conditional PUT)

S3 credentials and endpoint come from the usual AWS variables (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL for MinIO and other S3-compatible servers) or from
`storage_options`. fsspec is imported only when a URL root is used, so a local registry needs
nothing beyond the serving install.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from service.registry.failpoints import pause_point
from service.registry.store import (
    COMPLETE_MARKER,
    LOCK_FILE,
    VERSIONS_DIR,
    RegistryError,
    RegistryLocked,
    describe_holder,
    file_digests,
    holder_info,
    version_name,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")


def storage_errors(method: Callable[..., T]) -> Callable[..., T]:
    """Re-raise failures of the storage client (connection refused, throttling, credentials) as
    RegistryError, the one error readers of the registry handle; the cause stays attached."""

    @functools.wraps(method)
    def wrapper(self: ObjectStore, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except RegistryError:
            raise
        except Exception as e:  # each fsspec backend raises its own client errors (botocore, aiohttp, ...)
            raise RegistryError(f"registry {self.location}: storage error in {method.__name__}: "
                                f"{type(e).__name__}: {e}") from e

    return wrapper


def default_cache_dir(url: str) -> Path:
    base = Path(tempfile.gettempdir()) / "ranker-registry-cache"
    return base / hashlib.sha1(url.encode()).hexdigest()[:12]


class ObjectStore:
    """Registry primitives over an fsspec filesystem (see the module docstring for the layout)."""

    def __init__(self, url: str, model_name: str, cache_dir: Path | None = None,
                 storage_options: dict[str, Any] | None = None) -> None:
        try:
            import fsspec
        except ImportError as e:  # the serving image without the [s3] extra
            raise RegistryError(f"registry {url}: URL roots need fsspec (pip install 'mtl-ranker[s3]')") from e
        try:
            # A fresh filesystem per registry: fsspec's instance cache would pin the endpoint and
            # credentials of the first registry opened in this process.
            options = {"skip_instance_cache": True, **(storage_options or {})}
            self.fs, root = fsspec.core.url_to_fs(url, **options)
        except (ImportError, ValueError) as e:
            raise RegistryError(f"registry {url}: cannot open it with fsspec: {e}") from e
        self.prefix = f"{root.rstrip('/')}/{model_name}"
        self.location = f"{url.rstrip('/')}/{model_name}"
        self.cache_dir = Path(cache_dir or default_cache_dir(url)) / model_name

    def _path(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts])

    def _names(self, path: str) -> list[str]:
        self.fs.invalidate_cache(path)  # listings are cached by fsspec; servers poll, so never trust them
        try:
            return [e.rstrip("/").rsplit("/", 1)[-1] for e in self.fs.ls(path, detail=False)]
        except FileNotFoundError:
            return []

    def _prefixes(self) -> list[int]:
        return sorted(int(n) for n in self._names(self._path(VERSIONS_DIR)) if n.isdigit())

    def _marker(self, version: int) -> bytes | None:
        return self.read_version_file(version, COMPLETE_MARKER)

    @storage_errors
    def versions(self) -> list[int]:
        return [v for v in self._prefixes() if self._marker(v) is not None]

    @storage_errors
    def highest_version(self) -> int:
        return max(self._prefixes(), default=0)

    @storage_errors
    def read(self, name: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._path(name))
        except FileNotFoundError:
            return None

    @storage_errors
    def replace(self, name: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(name), data)  # a single PUT: readers see the old or the new object

    @storage_errors
    def append(self, name: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(name), (self.read(name) or b"") + data)  # the caller holds the lock

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="ranker-publish-") as tmp:
            yield Path(tmp)

    @storage_errors
    def commit(self, staging: Path, version: int) -> None:
        """Upload every file, then the COMPLETE marker: until the marker exists the version does not."""
        files = file_digests(staging)
        prefix = self._path(VERSIONS_DIR, version_name(version))
        for i, rel in enumerate(files):
            self.fs.put_file(str(staging / rel), f"{prefix}/{rel}")
            if i == 0:
                pause_point("uploading")
        marker = {"version": version, "files": files, "completed_at": datetime.now(UTC).isoformat()}
        self.fs.pipe_file(f"{prefix}/{COMPLETE_MARKER}", json.dumps(marker, indent=1).encode())

    @storage_errors
    def read_version_file(self, version: int, name: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._path(VERSIONS_DIR, version_name(version), name))
        except FileNotFoundError:
            return None

    @storage_errors
    def local_version_dir(self, version: int) -> Path:
        """Fetch a complete version into the cache (verified against its marker); returns the path."""
        marker = self._marker(version)
        if marker is None:
            raise RegistryError(f"version {version} does not exist in {self.location}")
        target = self.cache_dir / version_name(version)
        if (target / COMPLETE_MARKER).is_file() and (target / COMPLETE_MARKER).read_bytes() == marker:
            return target
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_dir / f".fetch-{uuid.uuid4().hex}"
        try:
            self._download(version, json.loads(marker)["files"], tmp)
            (tmp / COMPLETE_MARKER).write_bytes(marker)
            if target.exists():
                shutil.rmtree(target)  # a stale copy that no longer matches the marker
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    def _download(self, version: int, files: dict[str, dict[str, Any]], dest: Path) -> None:
        prefix = self._path(VERSIONS_DIR, version_name(version))
        for rel in files:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(f"{prefix}/{rel}", str(dest / rel))
        got = file_digests(dest)
        bad = sorted(rel for rel, want in files.items() if got.get(rel) != want)
        if bad:
            raise RegistryError(f"version {version} in {self.location}: fetched file(s) {bad} do not match COMPLETE")

    @storage_errors
    def delete_version(self, version: int) -> None:
        prefix = self._path(VERSIONS_DIR, version_name(version))
        self.fs.rm_file(f"{prefix}/{COMPLETE_MARKER}")  # it stops being a version first
        pause_point("retention_renamed")
        self.fs.rm(prefix, recursive=True)

    @contextlib.contextmanager
    def lock(self, ttl: float) -> Iterator[None]:
        """A lease object created only if absent; an expired lease (its holder died) is broken."""
        path = self._path(LOCK_FILE)
        info = holder_info(ttl)
        if not self._try_create(path, info):
            held = self.read(LOCK_FILE)
            if held is not None and not _expired(held):
                raise RegistryLocked(f"registry {self.location} is locked by another publish "
                                     f"({describe_holder(held)}); try again when it finishes")
            if held is not None:
                logger.warning("breaking an expired registry lease: %s", describe_holder(held))
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm_file(path)
            if not self._try_create(path, info):
                raise RegistryLocked(f"registry {self.location}: another job took the expired lease first")
        try:
            yield
        finally:
            self._release(info["owner"])

    @storage_errors
    def _release(self, owner: str) -> None:
        held = self.read(LOCK_FILE)
        if held is not None and json.loads(held).get("owner") == owner:
            self.fs.rm_file(self._path(LOCK_FILE))

    @storage_errors
    def _try_create(self, path: str, info: dict[str, Any]) -> bool:
        try:
            self.fs.pipe_file(path, json.dumps(info).encode(), mode="create")
            return True
        except FileExistsError:
            return False

    @storage_errors
    def clean_leftovers(self) -> None:
        """Version prefixes without a COMPLETE marker: uploads of publishes that died (lock held)."""
        for v in self._prefixes():
            if self._marker(v) is None:
                logger.warning("removing incomplete upload of version %d in %s", v, self.location)
                self.fs.rm(self._path(VERSIONS_DIR, version_name(v)), recursive=True)


def _expired(raw: bytes) -> bool:
    try:
        return datetime.fromisoformat(json.loads(raw)["expires_at"]) < datetime.now(UTC)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return False  # unreadable: do not break what we do not understand
