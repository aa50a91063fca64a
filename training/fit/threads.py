"""The default intra-op thread count, chosen each epoch by timing (train.threads unset, one process).

On a quiet machine every core trains fastest; when another busy process holds a core, torch's OpenMP
threads spin at barriers waiting for the one that lost its core, and every core runs many times slower
than one fewer (bench/training/train_contention.py). Neither fixed choice is right on both machines, and load
changes during a run, so each epoch starts by timing a few interleaved steps at each choice and trains the
rest of the epoch at the faster one. A probe that is already far slower stops early, so a busy machine
pays a few slow steps per epoch, not a slow epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

PROBE_PAIRS = 3  # steps timed at each choice, interleaved
GIVE_UP = 2.0  # a probe step this many times slower than the best of the other choice ends the probe


class ThreadChooser:
    """Picks between `fewer` and `more` threads at the start of every epoch.

    `run(step, fn)` runs one training step: during the probe (the epoch's first 2 * PROBE_PAIRS steps) it
    alternates the thread counts and times each step; after it, `chosen` runs the rest.
    """

    def __init__(self, fewer: int, more: int, clock: Callable[[], float] = time.perf_counter) -> None:
        self.choices, self.clock = (fewer, more), clock
        self.chosen = fewer
        self._times: dict[int, list[float]] = {}
        self._probing = False

    def start_epoch(self) -> None:
        self._times = {n: [] for n in self.choices}
        self._probing = True

    def run(self, step: int, fn: Callable[[], object]) -> object:
        if not self._probing:
            return fn()
        threads = self.choices[step % 2]
        torch.set_num_threads(threads)
        t0 = self.clock()
        out = fn()
        self._times[threads].append(self.clock() - t0)
        self._decide(step)
        return out

    def _decide(self, step: int) -> None:
        fewer, more = (self._times[n] for n in self.choices)
        slow = bool(fewer and more) and max(min(more) / min(fewer), min(fewer) / min(more)) > GIVE_UP
        if step + 1 >= 2 * PROBE_PAIRS or slow:
            self._probing = False
            self.chosen = self.choices[1] if more and fewer and min(more) < min(fewer) else self.choices[0]
            torch.set_num_threads(self.chosen)
