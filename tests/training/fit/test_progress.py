"""Progress lines instead of carriage-return bars when the output is not a terminal (issue 9, item 8)."""

from __future__ import annotations

import io

from tqdm import tqdm

from training.fit.progress import LineProgress, epoch_progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_not_a_terminal_gets_whole_lines_and_no_carriage_returns() -> None:
    out = io.StringIO()
    bar = epoch_progress(10, "epoch 1/3", enabled=True, file=out)
    assert isinstance(bar, LineProgress)
    bar.every = 0.0  # a line on every update, instead of every 30 s
    with bar:
        for _ in range(3):
            bar.set_postfix(loss="0.1234", refresh=False)
            bar.update(1)
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 3 and lines[-1].startswith("epoch 1/3: 3/10 batches (30%)") and "loss 0.1234" in lines[-1]


def test_disabled_progress_prints_nothing_and_a_terminal_gets_a_bar() -> None:
    quiet = io.StringIO()
    with epoch_progress(5, "epoch 1/1", enabled=False, file=quiet) as bar:
        bar.update(5)
    assert quiet.getvalue() == ""
    bar = epoch_progress(5, "epoch 1/1", enabled=True, file=FakeTerminal())
    assert isinstance(bar, tqdm)
    bar.close()
