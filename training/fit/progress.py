"""Progress of one epoch: a tqdm bar on a terminal, periodic plain lines anywhere else.

A bar redraws itself with carriage returns, which in a CI log or a `| tee` file becomes one
endless line. When stderr is not a terminal, the epoch prints a line every LOG_EVERY_SECONDS
instead (and none at all for epochs shorter than that), with the same postfix the bar shows.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

LOG_EVERY_SECONDS = 30.0


class LineProgress:
    """The part of tqdm's interface the training loop uses, printing a line every `every` seconds."""

    def __init__(self, total: int, desc: str, every: float = LOG_EVERY_SECONDS, file: TextIO | None = None) -> None:
        self.total, self.desc, self.every = total, desc, every
        self.file = file if file is not None else sys.stderr
        self.n = 0
        self.postfix: dict[str, Any] = {}
        self._start = self._last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            rate = self.n / max(now - self._start, 1e-9)
            extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
            print(f"{self.desc}: {self.n}/{self.total} batches ({self.n / max(self.total, 1):.0%}), "
                  f"{rate:,.1f} batches/s{extra}", file=self.file, flush=True)

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kwargs: Any) -> None:
        self.postfix = {**(ordered_dict or {}), **kwargs}

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


EpochBar = tqdm | LineProgress


def epoch_progress(total: int, desc: str, enabled: bool, file: TextIO | None = None) -> EpochBar:
    """A tqdm bar when enabled and `file` (default stderr) is a terminal, else periodic lines (or none)."""
    out = file if file is not None else sys.stderr
    if enabled and out.isatty():
        return tqdm(total=total, desc=desc, leave=False, mininterval=0.5, unit="batch", file=out)
    return LineProgress(total, desc, every=LOG_EVERY_SECONDS if enabled else float("inf"), file=out)


def write(message: str, file: TextIO | None = None) -> None:
    """A whole line (default stdout) that does not break a bar on a terminal (tqdm.write), plain print elsewhere."""
    out = file if file is not None else sys.stdout
    if out.isatty():
        tqdm.write(message, file=out)
    else:
        print(message, file=out, flush=True)
