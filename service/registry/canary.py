"""The canary record: a version that serves a stable share of users beside CURRENT, or scores in the shadow.

    CANARY   {"version": 7, "share": 0.05, "mode": "canary", "salt": "canary:demo:v7", "started_at": ...}
             {"version": null, "ended": "aborted", "at": ...}     after an abort or a promotion

The record lives beside CURRENT and is replaced through the same store primitive (a rename locally,
one PUT on an object store), so every server reads a whole record or the previous one. A request's
user key (the field the impression log records as user_key) is hashed with the record's salt: SHA-256
like the weights experiments (service/experiments.py), but the salt holds a ':' that experiment names
cannot, so a user's weights arm and model arm are independent. The salt names the version and not
the share: widening the share of one version keeps every user who already had it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from service.experiments import bucket, key_text
from service.registry.store import RegistryError

CANARY_FILE = "CANARY"
CHECK_FILE = "CANARY_CHECK"  # the last `ranker experiment canary-check` of a canary, beside its record
FAILING = ("worse", "mismatch")  # check verdicts that mean the canary must not go on as it is
Mode = Literal["canary", "shadow"]
MODES: tuple[str, ...] = ("canary", "shadow")


@dataclass(frozen=True)
class CanaryRecord:
    """A running canary (mode canary) or shadow (mode shadow) of one version."""

    version: int
    share: float  # of users, in (0, 1]; a shadow scores every request whatever the share
    mode: Mode
    salt: str
    started_at: str

    def __post_init__(self) -> None:
        check_share(self.share)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, not {self.mode!r}")

    def takes(self, user: Any) -> bool:
        """True when a canary serves this user key's requests (a stable hash; no key: never)."""
        key = key_text(user)
        return key is not None and bucket(self.salt, key) < self.share

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self)) + "\n").encode()


def check_share(share: float) -> None:
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
        raise ValueError(f"share must be a number in (0, 1], not {share!r}")


def default_salt(model_name: str, version: int) -> str:
    return f"canary:{model_name}:v{version}"


def parse_record(raw: bytes | None, location: str) -> CanaryRecord | None:
    """The CANARY file's record; None when there is none or it ended. RegistryError when unreadable."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        if data.get("version") is None:
            return None
        return CanaryRecord(version=int(data["version"]), share=float(data["share"]), mode=data["mode"],
                            salt=str(data["salt"]), started_at=str(data["started_at"]))
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as e:
        raise RegistryError(f"{location}/{CANARY_FILE}: not a canary record ({e}): {raw[:120]!r}") from e


@dataclass(frozen=True)
class CanaryCheck:
    """What the last check of a canary found on the joined log (training/experiments/canary.py).

    verdict: ok (no task worse), worse (a guarded task worse than current beyond its interval),
    mismatch (users per role off the configured share: assignment or logging broken), too-early
    (fewer users than the check's minimum)."""

    version: int
    verdict: str
    worse: list[str]  # the guarded tasks the canary is worse on
    users: dict[str, int]  # per role
    at: str
    aborted: bool = False

    @property
    def failing(self) -> bool:
        return self.verdict in FAILING

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self)) + "\n").encode()


def parse_check(raw: bytes | None, location: str) -> CanaryCheck | None:
    """The CANARY_CHECK file's record, or None when there is none. RegistryError when unreadable."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return CanaryCheck(version=int(data["version"]), verdict=str(data["verdict"]),
                           worse=[str(t) for t in data["worse"]], users={str(k): int(v) for k, v in data["users"].items()},
                           at=str(data["at"]), aborted=bool(data.get("aborted", False)))
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as e:
        raise RegistryError(f"{location}/{CHECK_FILE}: not a canary check ({e}): {raw[:120]!r}") from e


def ended_record(how: str, at: str) -> bytes:
    return (json.dumps({"version": None, "ended": how, "at": at}) + "\n").encode()
