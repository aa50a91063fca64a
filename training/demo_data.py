"""Deterministic synthetic impression logs for demos, tests and benchmarks (no download).

Each request shows one user `candidates_per_request` items. Hidden per-item traits make the tasks
related but not identical:
  affinity  (user x item latent match) raises click, watch time, like and rating together;
  quality   raises satisfaction (like, rating) and watch time, barely click;
  clickbait raises click but lowers watch time, like and rating.
A noisy observable proxy of clickbait (`title_caps_ratio`) lets a model learn it for new items.

Labels: `click` (every row), `watch_time` seconds (0 without a click, heavy-tailed with one),
`like` and `rating` (1-5) observed only on a fraction of clicked rows, null otherwise.
Rows are written as one Parquet file per day under `date=YYYY-MM-DD/` (hive-style partitions).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DEVICES = np.array(["mobile", "desktop", "tv", "tablet"])
LATENT_DIM = 8


@dataclass(frozen=True)
class DemoConfig:
    rows: int = 20_000
    seed: int = 0
    candidates_per_request: int = 20
    days: int = 14
    start: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    n_users: int | None = None  # default scales with rows
    n_items: int | None = None
    n_categories: int = 24
    like_observed: float = 0.35  # fraction of clicked rows with a like label
    rating_observed: float = 0.25  # fraction of clicked rows with a rating
    drift: float = 0.0  # 0 = the world of day 1; >0 shifts tastes and the item catalogue

    def users(self) -> int:
        return self.n_users or int(np.clip(self.rows // 40, 200, 200_000))

    def items(self) -> int:
        return self.n_items or int(np.clip(self.rows // 100, 100, 50_000))


def _world(cfg: DemoConfig) -> dict[str, np.ndarray]:
    """Latent traits of users, items and categories; drift perturbs them deterministically."""
    rng = np.random.default_rng(cfg.seed)
    n_u, n_i, n_c = cfg.users(), cfg.items(), cfg.n_categories
    cat_vec = rng.normal(0, 1, (n_c, LATENT_DIM))
    item_cat = rng.integers(0, n_c, n_i)
    world = {
        "user_vec": rng.normal(0, 1, (n_u, LATENT_DIM)) / np.sqrt(LATENT_DIM),
        "user_activity": rng.gamma(2.0, 2.0, n_u),
        "item_cat": item_cat,
        "item_vec": 0.7 * cat_vec[item_cat] + 0.5 * rng.normal(0, 1, (n_i, LATENT_DIM)),
        "quality": rng.normal(0, 1, n_i),
        "clickbait": rng.gamma(1.0, 1.0, n_i) * (rng.random(n_i) < 0.3),
        "popularity": rng.pareto(1.5, n_i),
        "age_days": rng.exponential(120, n_i),
        "device_bias": rng.normal(0, 0.3, len(DEVICES)),
    }
    if cfg.drift:
        shift = np.random.default_rng(cfg.seed + 10_007)
        world["user_vec"] = world["user_vec"] + cfg.drift * shift.normal(0, 0.5, world["user_vec"].shape) / np.sqrt(LATENT_DIM)
        world["clickbait"] = world["clickbait"] * (1 + cfg.drift)
        world["popularity"] = world["popularity"] * np.exp(cfg.drift * shift.normal(0, 1, n_i))
    return world


def generate(cfg: DemoConfig) -> pa.Table:
    """Build the impression log as one Arrow table, sorted by timestamp."""
    w = _world(cfg)
    rng = np.random.default_rng([cfg.seed, 1])
    k = cfg.candidates_per_request
    n_req = max(1, cfg.rows // k)
    n = n_req * k

    req_user = rng.integers(0, cfg.users(), n_req)
    req_time = np.sort(rng.uniform(0, cfg.days * 86_400, n_req))
    req_device = rng.integers(0, len(DEVICES), n_req)
    # Popular items are shown more often.
    item_p = (w["popularity"] + 0.05) / (w["popularity"] + 0.05).sum()
    item = rng.choice(len(item_p), size=n, p=item_p)
    user = np.repeat(req_user, k)
    device = np.repeat(req_device, k)
    t = np.repeat(req_time, k)
    hour = ((t % 86_400) // 3600).astype(np.int64)

    affinity = np.einsum("nd,nd->n", w["user_vec"][user], w["item_vec"][item])
    quality, bait = w["quality"][item], w["clickbait"][item]
    evening = np.cos((hour - 20) / 24 * 2 * np.pi)
    click_logit = (-2.0 + 1.4 * affinity + 0.2 * quality + 0.9 * bait + w["device_bias"][device]
                   + 0.25 * evening + 0.15 * np.log1p(w["user_activity"][user]))
    click = rng.random(n) < _sigmoid(click_logit)

    watch_mu = 4.0 + 0.6 * affinity + 0.5 * quality - 0.6 * bait + 0.3 * (DEVICES[device] == "tv")
    watch_time = np.where(click, np.exp(watch_mu + rng.normal(0, 0.9, n)), 0.0)

    sat = 1.0 * affinity + 1.2 * quality - 1.3 * bait
    like = rng.random(n) < _sigmoid(-0.3 + 1.5 * sat)
    rating = np.clip(np.rint(3.2 + 0.9 * sat + rng.normal(0, 0.6, n)), 1, 5)
    like_seen = click & (rng.random(n) < cfg.like_observed)
    rating_seen = click & (rng.random(n) < cfg.rating_observed)

    caps = np.clip(0.1 + 0.15 * w["clickbait"] + rng.normal(0, 0.08, cfg.items()), 0, 1)
    ts = np.datetime64(cfg.start.replace(tzinfo=None), "ms") + (t * 1000).astype("timedelta64[ms]")
    return pa.table({
        "request_id": pa.array(np.repeat(np.arange(n_req, dtype=np.int64) + cfg.seed * 10**9, k)),
        "ts": pa.array(ts, type=pa.timestamp("ms", tz="UTC")),
        "user_id": pa.array(np.char.add("u", user.astype(str))),
        "item_id": pa.array(np.char.add("i", item.astype(str))),
        "item_category": pa.array(np.char.add("c", w["item_cat"][item].astype(str))),
        "device": pa.array(DEVICES[device]),
        "hour": pa.array(hour),
        "user_activity": pa.array(w["user_activity"][user]),
        "item_popularity": pa.array(w["popularity"][item]),
        "item_age_days": pa.array(w["age_days"][item]),
        "title_caps_ratio": pa.array(caps[item]),
        "click": pa.array(click.astype(np.int8)),
        "watch_time": pa.array(watch_time),
        "like": pa.array(like.astype(np.int8), mask=~like_seen),
        "rating": pa.array(rating, mask=~rating_seen),
    })


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def write_partitioned(table: pa.Table, out_dir: Path) -> list[Path]:
    """One Parquet file per UTC day: out_dir/date=YYYY-MM-DD/part-0.parquet. Returns the files."""
    out_dir = Path(out_dir)
    days = table.column("ts").cast(pa.timestamp("ms")).to_numpy().astype("datetime64[D]")
    files = []
    for day in np.unique(days):
        part = out_dir / f"date={day}" / "part-0.parquet"
        part.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.filter(pa.array(days == day)), part, row_group_size=256_000)
        files.append(part)
    return files


def write_demo(out_dir: Path, cfg: DemoConfig) -> list[Path]:
    return write_partitioned(generate(cfg), out_dir)


def day_after(cfg: DemoConfig) -> datetime:
    return cfg.start + timedelta(days=cfg.days)
