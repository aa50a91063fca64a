"""Crash-injection points in the registry's write paths (the failpoint pattern of etcd's gofail).

Each point is a name in the publish, promote or retention sequence. They are inert unless the
crash-safety tests arm one through the environment: the writer then touches a marker file and
sleeps at that point, and the test SIGKILLs it there and checks what a reader sees.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_ENV = "RANKER_REGISTRY_PAUSE_AT"
PAUSE_FILE_ENV = "RANKER_REGISTRY_PAUSE_FILE"
PAUSE_SECONDS = 120.0

# Every point, in the order a publish passes them (local store; the object store has "uploading").
POINTS = (
    "locked",               # the publish lock is held
    "staged",               # the bundle is copied into staging
    "uploading",            # object store: the first file is uploaded, COMPLETE is not
    "committed",            # the version exists; CURRENT still names the old one
    "current_tmp_written",  # local store: the new CURRENT is written beside the old one
    "current_replaced",     # CURRENT is replaced; history.jsonl is not yet appended
    "retention_renamed",    # an old version is renamed out of versions/, not yet deleted
    "canary_tmp_written",   # local store: a new CANARY record is written beside the old one
    "canary_check_tmp_written",  # local store: a new CANARY_CHECK is written beside the old one
)


def pause_point(name: str) -> None:
    """If RANKER_REGISTRY_PAUSE_AT names this point: touch RANKER_REGISTRY_PAUSE_FILE and sleep.

    Only the crash-safety tests set these variables; they kill the process while it sleeps.
    """
    if name not in POINTS:
        raise ValueError(f"unknown failpoint {name!r}; the points are {POINTS}")
    if os.environ.get(PAUSE_ENV) != name:
        return
    marker = os.environ.get(PAUSE_FILE_ENV)
    if marker:
        Path(marker).write_text(name)
    time.sleep(PAUSE_SECONDS)
