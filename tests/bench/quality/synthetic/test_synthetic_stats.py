"""Paired changes across p and the exact sign test behind every 'clearly rises' in the section."""

from __future__ import annotations

import numpy as np
import pytest

from bench.quality.synthetic.stats import counts, final_losses, paired_change, rises, sign_test


def test_sign_test_needs_a_clear_majority_of_paired_runs() -> None:
    # 9 of 10 runs rising is clear (p = 2 * 11/1024); 8 of 10 is not (p = 2 * 56/1024).
    assert sign_test(np.array([1.0] * 9 + [-1.0])) == pytest.approx(22 / 1024)
    assert rises(np.array([1.0] * 9 + [-1.0])) and not rises(np.array([1.0] * 8 + [-1.0] * 2))
    assert not rises(np.array([-1.0] * 10))  # clearly one-directional, but falling
    assert sign_test(np.zeros(5)) == 1.0  # ties carry no evidence either way
    assert counts(np.array([1.0] * 9 + [-1.0])) == "9/10, p = 0.021"


def test_final_losses_and_paired_change_read_the_last_eval_per_run() -> None:
    # Two runs, two evals, two tasks: the final test loss is the last eval, mean of the tasks.
    res = {"curves": {"mmoe": {"1.0": [[[9, 9], [1, 3]], [[9, 9], [2, 2]]],
                               "0.5": [[[9, 9], [3, 5]], [[9, 9], [1, 1]]]}},
           "train": {"mmoe": {"1.0": [[1, 1], [2, 2]], "0.5": [[2, 2], [2, 2]]}}}
    assert final_losses(res, "mmoe", "1.0").tolist() == [2.0, 2.0]
    assert final_losses(res, "mmoe", "1.0", task=1).tolist() == [3.0, 2.0]
    assert paired_change(res, "mmoe", "1.0", "0.5").tolist() == [2.0, -1.0]  # run by run, not of the means
    assert paired_change(res, "mmoe", "1.0", "0.5", key="train").tolist() == [1.0, 0.0]
