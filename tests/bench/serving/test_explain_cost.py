"""bench/serving/explain_cost.py measures the real ranking path, explain off and on (a few requests)."""

from bench.serving.explain_cost import measure, section


def test_explain_cost_measures_both_paths(bundle_dir):
    m = measure(bundle_dir, candidates=50, reps=5)
    assert m["bytes_on"] > m["bytes_off"] and m["off_us"] > 0 and m["on_us"] > 0 and m["terms"] == 4
    text = section(m, "Produced by a test.")
    assert "explain off" in text and "response bytes" in text
