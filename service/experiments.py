"""Traffic splits for weight experiments: which profile a request gets when it names none.

    experiments:
      name: tuned-2026-11          # part of the hash: a new name reshuffles who is in which arm
      key: user_id                 # a field of the request's `user` object (default user_id)
      arms:                        # profile -> share of the traffic, in [0, 1], summing to <= 1
        tuned_engagement: 0.10
        satisfaction_first: 0.05

A request without an explicit `profile` is hashed on `name` and its key's value into [0, 1); the
arms take consecutive slices of that interval in the order written, and the rest of the traffic
(the "control" arm) gets the default profile. The hash is SHA-256, not Python's `hash()` (salted
per process), so every replica and every restart assigns the same user to the same arm for as
long as the file's experiment is unchanged. A request that names a profile bypasses the split
(arm null), and so does one without the key (arm null, default profile): it cannot be assigned
stably.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CONTROL_ARM = "control"
_SCALE = float(2**64)


class Experiments(BaseModel):
    """The `experiments` section of weights.yaml (validated against the file's profiles there)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    key: Annotated[str, Field(min_length=1, max_length=64)] = "user_id"
    arms: dict[str, Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]] = Field(min_length=1)

    @field_validator("arms", mode="before")
    @classmethod
    def _no_booleans(cls, arms: object) -> object:
        if isinstance(arms, Mapping):
            for profile, share in arms.items():
                if isinstance(share, bool):
                    raise ValueError(f"{profile}: the share must be a number in [0, 1], not a boolean")
        return arms

    @model_validator(mode="after")
    def _total(self) -> Experiments:
        total = sum(self.arms.values())
        if total > 1 + 1e-9:
            raise ValueError(f"arms: the shares add up to {total:g}; at most 1 (the rest is the control arm)")
        if CONTROL_ARM in self.arms:
            raise ValueError(f"arms.{CONTROL_ARM}: 'control' is the default profile's arm, not a profile to name")
        return self

    def check_profiles(self, profiles: Mapping[str, Any], default_profile: str) -> None:
        """Raise ValueError naming `arms.<profile>` when an arm is not a profile, or is the default one."""
        for profile in self.arms:
            if profile not in profiles:
                raise ValueError(f"arms.{profile}: not one of the profiles {sorted(profiles)}")
            if profile == default_profile:
                raise ValueError(f"arms.{profile}: the default profile already gets the control arm's traffic")


def bucket(experiment: str, key: str) -> float:
    """A stable point in [0, 1) for (experiment name, key value): SHA-256, the same in every process."""
    digest = hashlib.sha256(f"{experiment}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def key_text(value: object) -> str | None:
    """The key's value as hashed: strings and integers as written; anything else has no stable form."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int):
        return str(value)
    return None


def assign_arm(experiments: Experiments, user: Mapping[str, Any]) -> str | None:
    """The arm of a request's user: a profile name, CONTROL_ARM, or None when the key is missing."""
    key = key_text(user.get(experiments.key))
    if key is None:
        return None
    point, edge = bucket(experiments.name, key), 0.0
    for profile, share in experiments.arms.items():
        edge += share
        if point < edge:
            return profile
    return CONTROL_ARM
