"""The default thread count is chosen each epoch by timing interleaved steps (training/fit/threads.py)."""

from __future__ import annotations

import pytest
import torch

from training.fit.threads import PROBE_PAIRS, ThreadChooser


@pytest.fixture(autouse=True)
def _one_thread_after():
    yield
    torch.set_num_threads(1)


CLOCK = [0.0]


def _chooser() -> ThreadChooser:
    return ThreadChooser(1, 2, clock=lambda: CLOCK[0])


def _epoch(chooser: ThreadChooser, seconds: dict[int, float], steps: int = 12) -> list[int]:
    """Run one epoch of fake steps whose duration (on the chooser's clock) depends on the thread count; the
    thread count of each step."""
    seen = []

    def step() -> None:
        seen.append(torch.get_num_threads())
        CLOCK[0] += seconds[torch.get_num_threads()]

    chooser.start_epoch()
    for i in range(steps):
        chooser.run(i, step)
    return seen


def test_a_quiet_machine_trains_on_every_core() -> None:
    chooser = _chooser()
    seen = _epoch(chooser, {1: 0.003, 2: 0.002})
    assert seen[:2 * PROBE_PAIRS] == [1, 2] * PROBE_PAIRS  # interleaved: both see the same neighbours
    assert chooser.chosen == 2 and set(seen[2 * PROBE_PAIRS:]) == {2}


def test_a_busy_machine_stops_probing_early_and_leaves_a_core_free() -> None:
    chooser = _chooser()
    seen = _epoch(chooser, {1: 0.002, 2: 0.02})  # every core: spinning against another process
    assert seen[:2] == [1, 2] and chooser.chosen == 1
    assert seen.count(2) == 1  # one slow step, then the probe gives up
    assert set(seen[2:]) == {1}


def test_each_epoch_measures_again() -> None:
    chooser = _chooser()
    _epoch(chooser, {1: 0.002, 2: 0.02})
    assert chooser.chosen == 1
    _epoch(chooser, {1: 0.003, 2: 0.002})  # the competitor has gone
    assert chooser.chosen == 2
