"""The one scoring path: offline scores of logged rows are the server's scores for the same rows."""

from pathlib import Path

import numpy as np
import orjson
import pytest

from service.contract.bundle import SessionConfig
from service.live.model import load_model
from service.live.pipeline import rank
from service.live.state import Serving
from training.profiles.logs import load_weights

DEMO_WEIGHTS = Path(__file__).resolve().parents[3] / "configs" / "weights.yaml"
USER, CONTEXT = ("user_id", "user_segment", "user_activity"), ("device", "hour")
# The demo profiles plus a product of probability heads: P(click) * P(like | click) through `log`.
PRODUCT = "  click_and_like: {click: {weight: 1, transform: log}, like: {weight: 0.5, transform: log}}\n"


def request_bodies(table, scored, count: int):
    """(rows, body) of the first `count` logged requests, each item once (the demo log repeats items
    within a request, which the server refuses; every row is scored on its own, so a subset is fair)."""
    rows = table.to_pylist()
    for r in range(count):
        idx = np.flatnonzero(scored.requests.group == r)
        _, first = np.unique(scored.item_ids[idx], return_index=True)
        idx = idx[np.sort(first)]
        items = [rows[i] for i in idx]
        yield idx, {"user": {k: items[0][k] for k in USER}, "context": {k: items[0][k] for k in CONTEXT},
                    "candidates": [{k: v for k, v in x.items() if k not in USER + CONTEXT} for x in items]}


@pytest.mark.parametrize("profile", ["default", "satisfaction_first", "click_only", "click_and_like"])
def test_offline_scores_equal_the_servers(bundle_dir, loaded_bundle, log_table, scored, profile, tmp_path):
    path = tmp_path / "weights.yaml"
    path.write_text(DEMO_WEIGHTS.read_text().replace("profiles:\n", "profiles:\n" + PRODUCT, 1))
    weights = load_weights(path, loaded_bundle)
    offline = scored.scores(weights.profiles[profile])  # what replay, diff, tune and the gates rank by
    model = load_model(bundle_dir, version=1, session_config=SessionConfig(), max_candidates=1000)
    serving = Serving(model, weights)
    compared = 0
    for rows, body in request_bodies(log_table, scored, 20):
        out = orjson.loads(rank(serving, orjson.dumps({**body, "profile": profile})).body)
        served = {item["item_id"]: item["score"] for item in out["items"]}
        expected = dict(zip(scored.item_ids[rows].tolist(), offline[rows].tolist(), strict=True))
        assert served.keys() == expected.keys()
        np.testing.assert_allclose([served[k] for k in expected], list(expected.values()), rtol=0, atol=0)
        assert [i["item_id"] for i in out["items"]] == sorted(expected, key=lambda k: -expected[k])
        compared += len(rows)
    assert compared >= 150
