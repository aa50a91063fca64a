"""Where compacted Parquet files go: a local directory (rename) or an object store (one PUT).

Both make a file visible whole or not at all: a rename within one directory is atomic, and an S3
object exists only once its PUT (or multipart upload) completes. The object store is reached
through fsspec, as the registry reaches it (service/registry/object_store.py): credentials and
endpoint from the usual AWS variables, fsspec imported only for URL destinations.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from service.contract.files import fsync_dir


class SinkError(Exception):
    """The destination refused a file (object store down, credentials); the file is kept to retry."""


class Sink(Protocol):
    location: str

    def publish(self, local: Path, key: str) -> None:
        """Make the finished local file visible at `key` (a path under the destination) and consume it."""
        ...


def is_url(destination: str) -> bool:
    return "://" in destination


class LocalSink:
    """A directory; the spool (segments, temp files) is the directory itself, so publishing is a rename."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def publish(self, local: Path, key: str) -> None:
        target = self.root / key
        os.replace(local, target)  # same directory: the segment was written beside its Parquet file
        fsync_dir(target.parent)


class ObjectSink:
    """An fsspec URL (s3://bucket/prefix); files are uploaded from the local spool with one put each."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        try:
            import fsspec
        except ImportError as e:  # the serving image without the [s3] extra
            raise SinkError(f"log destination {url}: URLs need fsspec (pip install 'mtl-ranker[s3]')") from e
        try:
            # A fresh filesystem: fsspec's instance cache would pin the first endpoint and credentials.
            self.fs, root = fsspec.core.url_to_fs(url, **{"skip_instance_cache": True, **(storage_options or {})})
        except (ImportError, ValueError) as e:
            raise SinkError(f"log destination {url}: cannot open it with fsspec: {e}") from e
        self.prefix = root.rstrip("/")
        self.location = url.rstrip("/")

    def publish(self, local: Path, key: str) -> None:
        try:
            self.fs.put_file(str(local), f"{self.prefix}/{key}")
        except Exception as e:  # each fsspec backend raises its own client errors (botocore, aiohttp, ...)
            raise SinkError(f"{self.location}/{key}: upload failed: {type(e).__name__}: {e}") from e
        local.unlink()
