"""A stall point in the log writer (the failpoint pattern of service/registry/failpoints.py).

Inert unless a test arms it through the environment: with RANKER_LOG_PAUSE_AT=write, the writer
sleeps RANKER_LOG_PAUSE_SECONDS before each batch it writes, as a slow disk or store would make it,
so the tests can fill the queue of a real server.
"""

from __future__ import annotations

import os
import time

PAUSE_ENV = "RANKER_LOG_PAUSE_AT"
PAUSE_SECONDS_ENV = "RANKER_LOG_PAUSE_SECONDS"
POINTS = ("write",)  # before a batch is written to the open segment


def pause_point(name: str) -> None:
    if name not in POINTS:
        raise ValueError(f"unknown failpoint {name!r}; the points are {POINTS}")
    if os.environ.get(PAUSE_ENV) == name:
        time.sleep(float(os.environ.get(PAUSE_SECONDS_ENV, "5")))
