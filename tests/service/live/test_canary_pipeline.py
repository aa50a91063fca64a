"""The request path with a canary in the serving reference: who is routed where, what the response and the
impression log are told, and the state's canary changes (one consistent reference each time)."""

from __future__ import annotations

import orjson
import pytest

from service.contract.bundle import SessionConfig
from service.examples import example_request
from service.live.model import load_model
from service.live.pipeline import rank, shadow_rank
from service.live.state import ModelRefused, ServingState
from service.metrics import RankerMetrics
from service.profiles import parse_weights
from service.registry.canary import CanaryRecord


def record(share: float, mode: str = "canary") -> CanaryRecord:
    return CanaryRecord(version=2, share=share, mode=mode, salt="canary:demo:v2", started_at="t")


class Offers:
    """Stands in for ImpressionLog.offer: what would be queued."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def offer(self, request_id, model, weights, profile, arm, request, scores, heads, order, role="current") -> None:
        self.calls.append((request_id, model.version, role, order.tolist()))


@pytest.fixture(scope="module")
def models(bundle_dir):
    return [load_model(bundle_dir, version=v, session_config=SessionConfig(), max_candidates=100) for v in (1, 2)]


@pytest.fixture
def state(models) -> ServingState:
    s = ServingState()
    s.set_weights(parse_weights("profiles: {default: {click: 1.0}}", generation=1))
    s.set_model(models[0])
    return s


def body(manifest, user: str | None) -> bytes:
    b = example_request(manifest, 12, seed=3, request_id="r1")
    if user is None:
        b["user"].pop("user_id", None)
    else:
        b["user"]["user_id"] = user
    return orjson.dumps(b)


def test_users_the_record_takes_get_the_canary_and_the_response_says_so(state, models, manifest) -> None:
    state.set_canary(models[1], record(0.5))
    users = [f"u{i}" for i in range(40)]
    metrics, offers = RankerMetrics(), Offers()
    for user in users:
        ranked = rank(state.serving, body(manifest, user), metrics, impressions=offers)
        out = orjson.loads(ranked.body)
        want = (2, "canary") if record(0.5).takes(user) else (1, "current")
        assert (out["model_version"], out["model_role"]) == (ranked.model_version, ranked.model_role) == want
        assert offers.calls[-1][1:3] == want
    assert orjson.loads(rank(state.serving, body(manifest, None)).body)["model_role"] == "current"
    canaried = sum(record(0.5).takes(u) for u in users)
    assert metrics.model_requests.labels(role="canary")._value.get() == canaried


def test_a_shadow_is_not_served_and_logs_its_own_positions(state, models, manifest) -> None:
    state.set_canary(models[1], record(0.05, "shadow"))
    offers = Offers()
    ranked = rank(state.serving, body(manifest, "u1"), impressions=offers)
    assert (ranked.model_version, ranked.model_role) == (1, "current") and ranked.shadow is state.serving.canary
    shadow_rank(ranked.shadow, body(manifest, "u1"), ranked.request_id, impressions=offers)
    served, shadowed = offers.calls
    assert (served[1:3], shadowed[1:3]) == ((1, "current"), (2, "shadow"))
    assert shadowed[0] == served[0] == "r1" and sorted(shadowed[3]) == sorted(served[3])


def test_the_state_swaps_the_canary_as_one_reference(state, models) -> None:
    before = state.serving
    state.set_canary(models[1], record(0.1))
    assert before.canary is None and state.serving.canary.record.share == 0.1
    state.set_canary_record(record(0.4))
    assert state.serving.canary.record.share == 0.4 and state.serving.canary.model is models[1]
    state.set_weights(parse_weights("profiles: {default: {like: 1.0}}", generation=2))
    assert state.serving.canary.weights.generation == 2  # recompiled for the canary too
    state.clear_canary()
    assert state.serving.canary is None and state.serving.model is models[0]


def test_a_canary_without_weights_is_refused(models) -> None:
    s = ServingState()
    with pytest.raises(ModelRefused, match="canary version 2: no weights loaded yet"):
        s.set_canary(models[1], record(0.1))
