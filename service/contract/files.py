"""File primitives the bundle and the registry share: sha256, fsync, atomic replace.

Files written here get the mode a plain `open()` would give them (0666 minus the process umask,
so 0644 under the usual 022). `tempfile.mkstemp` alone creates 0600 files, which another user,
such as the non-root user of the serving image, cannot read.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

_CHUNK = 1 << 20
_DEFAULT_UMASK = 0o022


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def process_umask() -> int:
    """The process umask, read without changing it (os.umask can only set it, racing other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return _DEFAULT_UMASK


def default_file_mode() -> int:
    """The mode open(path, "w") would create a file with."""
    return 0o666 & ~process_umask()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """fsync every file and directory under path (before a rename publishes it)."""
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            with open(Path(dirpath) / name, "rb") as f:
                os.fsync(f.fileno())
        fsync_dir(Path(dirpath))


def atomic_write_bytes(path: Path, data: bytes, before_rename: Callable[[], None] | None = None) -> None:
    """Replace `path` with `data` so that readers see the old or the new content, never a mix.

    A temp file in the same directory is written, fsynced and given the usual file mode, renamed
    over `path`, and the directory is fsynced so the rename survives a power cut.

    Args:
        before_rename: called between the fsync and the rename (crash tests stop the writer there).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), default_file_mode())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
