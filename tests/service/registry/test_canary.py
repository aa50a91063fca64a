"""The canary record on both kinds of storage (a directory and memory://): start, change, abort, promote,
refusals, history, retention, and the stable user split."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from service.experiments import bucket
from service.registry import CANARY_FILE, Registry, RegistryError
from service.registry.canary import CanaryRecord, parse_record

MODEL = "demo"


@pytest.fixture(params=["local", "memory"])
def reg(request: pytest.FixtureRequest, tmp_path: Path, bundle_dir: Path) -> Registry:
    root = str(tmp_path / "registry") if request.param == "local" else f"memory://canary-{uuid.uuid4().hex}"
    r = Registry(root, MODEL, cache_dir=tmp_path / "cache")
    r.publish(bundle_dir)  # v1 CURRENT
    r.publish(bundle_dir, make_current=False)  # v2
    return r


def test_start_writes_the_record_beside_current_and_history(reg: Registry) -> None:
    assert reg.canary() is None
    record = reg.start_canary(2, 0.05)
    assert reg.canary() == record
    assert (record.version, record.share, record.mode, record.salt) == (2, 0.05, "canary", "canary:demo:v2")
    assert reg.current() == 1
    started = reg.events()[-1]
    assert (started["event"], started["canary"], started["current"], started["share"]) == ("canary_started", 2, 1, 0.05)
    assert [h["version"] for h in reg.history()] == [1]  # history() stays the changes of CURRENT


def test_restarting_the_running_version_changes_share_and_mode_with_the_same_salt(reg: Registry) -> None:
    first = reg.start_canary(2, 0.05)
    wider = reg.start_canary(2, 0.2, "shadow")
    assert (wider.share, wider.mode, wider.salt) == (0.2, "shadow", first.salt)


def test_abort_ends_it_and_current_stays(reg: Registry) -> None:
    reg.start_canary(2, 0.3)
    ended = reg.abort_canary()
    assert ended.version == 2 and reg.canary() is None and reg.current() == 1
    assert reg.events()[-1]["event"] == "canary_aborted"
    with pytest.raises(RegistryError, match="no canary"):
        reg.abort_canary()


def test_promoting_the_canary_version_ends_the_canary(reg: Registry) -> None:
    reg.start_canary(2, 0.3)
    reg.promote(2)
    assert reg.current() == 2 and reg.canary() is None
    assert [e.get("event") for e in reg.events()[-2:]] == [None, "canary_promoted"]
    assert reg.rollback() == 1  # a canary never counts as having served: v1 is the rollback target


def test_promoting_another_version_keeps_the_canary(reg: Registry, bundle_dir: Path) -> None:
    reg.publish(bundle_dir, make_current=False)  # v3
    reg.start_canary(2, 0.3)
    reg.promote(3)
    assert reg.canary().version == 2


@pytest.mark.parametrize(("version", "share", "message"), [
    (9, 0.1, "version 9 of 'demo' does not exist"),
    (1, 0.1, "version 1 is CURRENT already"),
    (2, 0.0, r"share must be a number in \(0, 1\]"),
    (2, 1.5, r"share must be a number in \(0, 1\]"),
])
def test_bad_starts_are_refused_and_change_nothing(reg: Registry, version: int, share: float, message: str) -> None:
    before = reg.events()
    with pytest.raises((RegistryError, ValueError), match=message):
        reg.start_canary(version, share)
    assert reg.canary() is None and reg.events() == before


def test_a_rejected_version_needs_force_and_another_canary_must_end_first(tmp_path: Path, bundle_dir: Path) -> None:
    reg = Registry(tmp_path / "registry", MODEL)
    reg.publish(bundle_dir)
    rejected = json.dumps({"decision": "rejected", "failed": ["auc:click"]}).encode()
    reg.publish(bundle_dir, make_current=False, extra_files=lambda v: {"gate_report.json": rejected})
    reg.publish(bundle_dir, make_current=False)
    with pytest.raises(RegistryError, match=r"rejected by the gates \(\['auc:click'\]\); pass --force"):
        reg.start_canary(2, 0.1)
    reg.start_canary(2, 0.1, force=True)
    with pytest.raises(RegistryError, match="a canary of version 2 is running; promote or abort it"):
        reg.start_canary(3, 0.1)
    assert reg.canary().version == 2


def test_retention_keeps_the_canary_version(tmp_path: Path, bundle_dir: Path) -> None:
    reg = Registry(tmp_path / "registry", MODEL, keep=2)
    reg.publish(bundle_dir)
    reg.publish(bundle_dir, make_current=False)  # v2: the canary
    reg.start_canary(2, 0.1)
    for _ in range(3):
        reg.publish(bundle_dir)
    assert 2 in reg.versions()


def test_an_unreadable_record_is_an_error_naming_the_file(tmp_path: Path, bundle_dir: Path) -> None:
    reg = Registry(tmp_path / "registry", MODEL)
    reg.publish(bundle_dir)
    (tmp_path / "registry" / MODEL / CANARY_FILE).write_text("{not json")
    with pytest.raises(RegistryError, match="CANARY: not a canary record"):
        reg.canary()


def test_the_split_is_stable_near_the_share_and_independent_of_the_experiment_hash() -> None:
    record = CanaryRecord(version=2, share=0.3, mode="canary", salt="canary:demo:v2", started_at="t")
    users = [f"u{i}" for i in range(4000)]
    taken = [record.takes(u) for u in users]
    assert taken == [record.takes(u) for u in users]
    assert 0.27 < sum(taken) / len(users) < 0.33
    assert not record.takes(None) and not record.takes(True)
    assert record.takes(7) == record.takes("7")  # integers hash as written, as the experiments' keys do
    arm = [bucket("exp", u) < 0.3 for u in users]  # a weights experiment of the same share
    both = sum(a and t for a, t in zip(arm, taken, strict=True)) / len(users)
    assert abs(both - 0.09) < 0.02  # independent: 0.3 x 0.3
    assert parse_record(b'{"version": null, "ended": "aborted"}', "x") is None
