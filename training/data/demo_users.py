"""The demo world's users answering a served ranking: feedback events drawn from the generator's truth.

`ranker demo-data` draws labels for the rows an old ranker showed. `DemoUsers` answers any ranking
a server returns instead: for each shown (user, item, device, hour, position) it knows the true
probabilities the demo's labels come from (training/data/demo.py `_truth`), so a closed loop
(examples/closed_loop.py) can send real feedback events and still compare what it measures with the
truth. An item is examined with probability (1 + position)^-eta (position 0 = top), as in the demo's
position bias; only an examined item can be clicked; a click brings `watch_seconds`, and with the
demo's observation rates a `like` (1 or 0) and a `rating` (1-5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from training.data.demo import (
    DEVICES,
    RATING_SIGMA,
    WATCH_SIGMA,
    DemoConfig,
    _Impressions,
    _mean_rounded_rating,
    _truth,
    _world,
)


@dataclass(frozen=True)
class Shown:
    """The rows of served rankings, one entry per shown candidate (ids as the demo writes them)."""

    user_id: Sequence[str]  # 'u17'
    item_id: Sequence[str]  # 'i203'
    device: Sequence[str]
    hour: Sequence[int]
    position: np.ndarray  # 0 = top


class DemoUsers:
    """The users of the demo world `cfg` (same config as `ranker demo-data`, so the same ids and traits)."""

    def __init__(self, cfg: DemoConfig, position_bias: float = 0.0) -> None:
        self.cfg, self.eta = cfg, position_bias
        self.world = _world(cfg)
        self._device = {name: i for i, name in enumerate(DEVICES)}

    def truth(self, shown: Shown) -> dict[str, np.ndarray]:
        """True P(click) unbiased and at its position, E[watch seconds | click], P(like), E[stars]."""
        t = self._truth(shown)
        examined = (1.0 + np.asarray(shown.position, dtype=np.float64)) ** -self.eta
        return {"p_click": t["p_click"], "p_click_shown": t["p_click"] * examined,
                "watch_seconds": np.exp(t["watch_mu"] + WATCH_SIGMA**2 / 2), "p_like": t["p_like"],
                "rating": _mean_rounded_rating(t["rating_mu"])}

    def respond(self, shown: Shown, rng: np.random.Generator) -> list[tuple[int, str, float | None]]:
        """Events of the shown rows: (row, event, value) with the demo's event names (configs/demo.yaml)."""
        t = self._truth(shown)
        n = len(t["p_click"])
        examined = rng.random(n) < (1.0 + np.asarray(shown.position, dtype=np.float64)) ** -self.eta
        click = examined & (rng.random(n) < t["p_click"])
        watch = np.exp(t["watch_mu"] + rng.normal(0, WATCH_SIGMA, n))
        like = rng.random(n) < t["p_like"]
        like_seen = click & (rng.random(n) < self.cfg.like_observed)
        rating = np.clip(np.rint(t["rating_mu"] + rng.normal(0, RATING_SIGMA, n)), 1, 5)
        rating_seen = click & (rng.random(n) < self.cfg.rating_observed)
        events: list[tuple[int, str, float | None]] = []
        for row in np.flatnonzero(click).tolist():
            events += [(row, "click", None), (row, "watch_seconds", round(float(watch[row]), 3))]
            if like_seen[row]:
                events.append((row, "like", float(like[row])))
            if rating_seen[row]:
                events.append((row, "rating", float(rating[row])))
        return events

    def _truth(self, shown: Shown) -> dict[str, np.ndarray]:
        user = _indices(shown.user_id, "u", self.cfg.users())
        item = _indices(shown.item_id, "i", self.cfg.items())
        device = np.array([self._device[d] for d in shown.device], dtype=np.int64)
        hour = np.asarray(shown.hour, dtype=np.int64)
        return _truth(self.world, _Impressions(request=np.zeros(len(user), dtype=np.int64),
                                               t=np.zeros(len(user)), user=user, item=item, device=device, hour=hour))


def _indices(ids: Sequence[str], prefix: str, n: int) -> np.ndarray:
    """'u17' -> 17; an id outside the demo world is a ValueError naming it."""
    out = np.empty(len(ids), dtype=np.int64)
    for i, value in enumerate(ids):
        if not (isinstance(value, str) and value.startswith(prefix) and value[1:].isdigit() and int(value[1:]) < n):
            raise ValueError(f"{value!r} is not an id of this demo world ({prefix}0 .. {prefix}{n - 1})")
        out[i] = int(value[1:])
    return out
