"""Traffic splits: validated with the key named, stable per user, in the configured shares."""

import numpy as np
import pytest
from scipy.stats import binom

from service.contract.bundle import TaskInfo
from service.experiments import CONTROL_ARM, assign_arm, bucket
from service.profiles import WeightsError, compile_weights, parse_weights

TASKS = [TaskInfo(name=n, type="binary", group="engagement", output=n) for n in ("click", "like")]
SPLIT = """
profiles: {default: {click: 1}, treat_a: {like: 1}, treat_b: {click: 1, like: 1}}
experiments:
  name: exp-1
  arms: {treat_a: 0.2, treat_b: 0.1}
"""


def compiled(text: str = SPLIT):
    return compile_weights(parse_weights(text), TASKS)


@pytest.mark.parametrize(("section", "key"), [
    ("{name: e, arms: {treat_a: 1.2}}", "experiments.arms.treat_a: Input should be less than or equal to 1"),
    ("{name: e, arms: {treat_a: -0.1}}", "experiments.arms.treat_a: Input should be greater than or equal to 0"),
    ("{name: e, arms: {treat_a: .nan}}", "experiments.arms.treat_a"),
    ("{name: e, arms: {treat_a: 0.6, treat_b: 0.5}}", "experiments: arms: the shares add up to 1.1"),
    ("{name: e, arms: {nope: 0.1}}", "experiments: arms.nope: not one of the profiles"),
    ("{name: e, arms: {default: 0.1}}", "experiments: arms.default: the default profile"),
    ("{name: e, arms: {treat_a: yes}}", "experiments.arms: treat_a: the share must be a number"),
    ("{name: e, arms: {}}", "experiments.arms"),
    ("{arms: {treat_a: 0.1}}", "experiments.name"),
    ("{name: 'bad name', arms: {treat_a: 0.1}}", "experiments.name"),
    ("{name: e, arms: {treat_a: 0.1}, salt: x}", "experiments.salt"),
])
def test_bad_experiments_are_refused_naming_the_key(section, key):
    text = "profiles: {default: {click: 1}, treat_a: {like: 1}, treat_b: {click: 1}}\nexperiments: " + section
    with pytest.raises(WeightsError, match=key.replace("(", r"\(").replace(".", r"\.")):
        parse_weights(text)


def test_the_same_user_always_gets_the_same_arm_and_the_hash_is_pinned():
    w = compiled()
    arms = {u: w.choose(None, {"user_id": u})[1] for u in (f"u{i}" for i in range(200))}
    again = compiled()  # a reload of the same file
    assert all(again.choose(None, {"user_id": u})[1] == arm for u, arm in arms.items())
    # SHA-256 of "exp-1\x1fu42": the same in every process, platform and Python version.
    assert bucket("exp-1", "u42") == 0.9474753920458316
    assert bucket("exp-2", "u42") != bucket("exp-1", "u42")  # a new experiment name reshuffles


def test_arms_split_traffic_in_the_configured_shares_over_10000_users():
    w = compiled()
    arms = [w.choose(None, {"user_id": f"user-{i}"})[1] for i in range(10_000)]
    counts = {a: arms.count(a) for a in ("treat_a", "treat_b", CONTROL_ARM)}
    for arm, share in (("treat_a", 0.2), ("treat_b", 0.1), (CONTROL_ARM, 0.7)):
        lo, hi = binom.ppf([0.0005, 0.9995], 10_000, share)  # 99.9 % binomial interval
        assert lo <= counts[arm] <= hi, (arm, counts)
    assert sum(counts.values()) == 10_000


def test_arm_profiles_and_bypasses():
    w = compiled()
    users = [f"user-{i}" for i in range(300)]
    for u in users:
        profile, arm = w.choose(None, {"user_id": u})
        assert profile.name == ("default" if arm == CONTROL_ARM else arm)
    assert w.choose("treat_b", {"user_id": "user-1"}) == (w.profile("treat_b"), None)  # explicit profile
    assert w.choose(None, {}) == (w.profile("default"), None)  # no key: no stable arm
    assert w.choose(None, {"user_id": 7})[1] == assign_arm(w.weights.file.experiments, {"user_id": "7"})
    assert compiled("profiles: {default: {click: 1}}").choose(None, {"user_id": "u"}) == (
        compiled("profiles: {default: {click: 1}}").profile("default"), None)


def test_a_custom_key_is_read_from_the_user_object():
    w = compiled(SPLIT.replace("name: exp-1", "name: exp-1\n  key: account"))
    got = {w.choose(None, {"account": f"a{i}", "user_id": "same"})[1] for i in range(100)}
    assert len(got) == 3  # the arms follow `account`, not user_id


def test_shares_that_sum_to_one_leave_no_control():
    w = compiled(SPLIT.replace("{treat_a: 0.2, treat_b: 0.1}", "{treat_a: 0.5, treat_b: 0.5}"))
    arms = {w.choose(None, {"user_id": f"u{i}"})[1] for i in range(2000)}
    assert arms == {"treat_a", "treat_b"}
    assert np.isclose(sum(w.weights.file.experiments.arms.values()), 1.0)
