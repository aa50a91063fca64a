import pytest

from service.contract.bundle import TaskInfo
from service.live.state import ModelRefused, ServingState
from service.live.weights_store import WeightsStore
from service.metrics import RankerMetrics


class FakeModel:
    """Only what ServingState looks at: a version and task names."""

    def __init__(self, version: int, names: list[str]) -> None:
        self.version = version
        self.tasks = [TaskInfo(name=n, type="binary", group="engagement", output=n) for n in names]


def store(tmp_path, text: str) -> tuple[WeightsStore, ServingState, RankerMetrics]:
    path = tmp_path / "weights.yaml"
    path.write_text(text)
    state, metrics = ServingState(), RankerMetrics()
    return WeightsStore(path, state, metrics), state, metrics


def count(metrics: RankerMetrics, result: str) -> float:
    return metrics.weights_reloads.labels(result=result)._value.get()


def test_good_edit_then_bad_edit_keeps_the_last_good(tmp_path):
    ws, state, metrics = store(tmp_path, "profiles: {default: {a: 1}}")
    state.set_model(FakeModel(1, ["a", "b"]))
    assert ws.check().result == "success" and state.serving.weights.generation == 1
    assert ws.check().result == "unchanged"
    ws.path.write_text("profiles: {default: {b: 1}}")
    assert ws.check().result == "success" and state.serving.weights.generation == 2
    ws.path.write_text("profiles: {default: {c: 1}}")  # c is not a task of the model
    check = ws.check()
    assert check.result == "failed" and "profiles.default.c" in check.error
    assert state.serving.weights.generation == 2 and set(state.weights.file.profiles["default"].root) == {"b"}
    ws.check()  # the same bad content is reported once, not on every poll
    assert (count(metrics, "success"), count(metrics, "failed")) == (2, 1)


def test_missing_file_keeps_the_last_good(tmp_path):
    ws, state, metrics = store(tmp_path, "profiles: {default: {a: 1}}")
    ws.check()
    ws.path.unlink()
    assert ws.check().result == "failed" and state.weights.generation == 1


def test_model_that_does_not_fit_the_weights_is_refused(tmp_path):
    ws, state, _ = store(tmp_path, "profiles: {default: {a: 1}}")
    ws.check()
    state.set_model(FakeModel(1, ["a"]))
    with pytest.raises(ModelRefused, match=r"profiles\.default\.a"):
        state.set_model(FakeModel(2, ["b"]))
    assert state.serving.model.version == 1


def test_experiments_are_hot_reloaded_and_a_bad_section_keeps_the_last_good(tmp_path):
    ws, state, metrics = store(tmp_path, "profiles: {default: {a: 1}, t: {b: 1}}")
    state.set_model(FakeModel(1, ["a", "b"]))
    ws.check()
    assert state.serving.weights.weights.file.experiments is None
    ws.path.write_text("profiles: {default: {a: 1}, t: {b: 1}}\nexperiments: {name: x, arms: {t: 0.3}}")
    assert ws.check().result == "success"
    assert state.serving.weights.weights.file.experiments.arms == {"t": 0.3}
    ws.path.write_text("profiles: {default: {a: 1}, t: {b: 1}}\nexperiments: {name: x, arms: {t: 0.7, u: 0.5}}")
    check = ws.check()
    assert check.result == "failed" and "experiments" in check.error
    assert state.serving.weights.weights.file.experiments.arms == {"t": 0.3}
    assert count(metrics, "failed") == 1


def gauge(g) -> float:
    return g._value.get()


def test_refused_gauge_follows_the_file_on_disk_and_clears_when_it_is_reverted(tmp_path):
    ws, state, metrics = store(tmp_path, "profiles: {default: {a: 1}}")
    state.set_model(FakeModel(1, ["a"]))
    ws.check()
    assert (gauge(metrics.weights_refused), gauge(metrics.weights_generation), gauge(metrics.ready)) == (0, 1, 1)
    good = ws.path.read_text()
    ws.path.write_text("profiles: {default: {c: 1}}")
    assert ws.check().result == "failed"
    assert gauge(metrics.weights_refused) == 1 and gauge(metrics.weights_generation) == 1
    ws.path.write_text(good)  # the fix an operator makes most: the previous file back
    assert ws.check().result == "unchanged" and ws.last_error is None
    assert gauge(metrics.weights_refused) == 0
    ws.path.write_text("profiles: {default: {c: 1}}")  # the same bad content again is refused again
    assert ws.check().result == "failed" and gauge(metrics.weights_refused) == 1
    ws.path.unlink()  # a missing file is refused too
    assert ws.check().result == "failed" and gauge(metrics.weights_refused) == 1
    ws.path.write_text("profiles: {default: {a: 2}}")
    assert ws.check().result == "success"
    assert (gauge(metrics.weights_refused), gauge(metrics.weights_generation)) == (0, 2)


def test_ready_gauge_is_zero_until_a_model_and_weights_serve(tmp_path):
    ws, state, metrics = store(tmp_path, "profiles: {default: {a: 1}}")
    ws.check()  # weights without a model: not ready
    assert gauge(metrics.ready) == 0
