"""Smoke run of bench/serving/encode_missing.py: all three encodings agree and are timed."""

from __future__ import annotations

import numpy as np

from bench.serving.encode_missing import best_seconds, contenders, section


def test_the_three_encodings_give_the_same_inputs_and_are_timed(bundle_dir) -> None:
    fns = contenders(bundle_dir, 20)
    outs = {name: fn() for name, fn in fns.items()}
    plain = outs["plain"]
    for name in ("counted", "separate"):
        for key in plain:
            np.testing.assert_array_equal(outs[name][key], plain[key])
    best = best_seconds(fns, rounds=1, number=2)
    assert set(best) == {"plain", "counted", "separate"} and all(0 < s < 1 for s in best.values())
    assert "| counted |" in section(best, bundle_dir, 20, 1)
