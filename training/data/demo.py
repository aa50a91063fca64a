"""Deterministic synthetic impression logs for demos, tests and benchmarks (no download).

Each request shows one user `candidates_per_request` items. Hidden traits make the tasks related
but not identical:
  affinity  (user taste x item style, mostly through segments and categories) raises click,
            watch time, like and rating together;
  quality   raises satisfaction (like, rating) and watch time, barely click;
  clickbait raises click but lowers watch time, like and rating.
Noisy observable proxies (`title_caps_ratio` for clickbait, `user_segment` for taste) let a model
generalize beyond the ids it has seen.

Position bias (`position_bias` = eta > 0): an old ranker orders each request's candidates mostly by
popularity (log popularity plus noise), `position` is the rank it showed an item at (0 = top), and
an item is examined with probability (1 + position)^-eta; only an examined item can be clicked. So
clicks overstate what the old ranker put on top. `true_click_prob` keeps the click probability
without the bias (the relevance to evaluate a served ranking against). With eta = 0 (the default)
every item is examined and the labels are exactly those of the unbiased world.

Labels: `click` (every row); `watch_time` seconds, heavy-tailed (log-normal), observed only on
clicked rows; `like` and `rating` (1-5) observed only on a fraction of clicked rows. Unobserved
labels are null. `ceiling()` gives the metrics of the true probabilities / expectations, the best
any model can reach on the same rows.
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
WATCH_SIGMA = 0.8  # log-normal noise of watch time given the features
RATING_SIGMA = 0.6


@dataclass(frozen=True)
class DemoConfig:
    rows: int = 20_000
    seed: int = 0
    candidates_per_request: int = 20
    days: int = 14
    start: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    n_users: int | None = None  # default scales with rows (about 200 impressions per user)
    n_items: int | None = None  # default scales with rows (about 300 impressions per item)
    n_categories: int = 24
    n_segments: int = 12
    like_observed: float = 0.5  # fraction of clicked rows with a like label
    rating_observed: float = 0.4  # fraction of clicked rows with a rating
    drift: float = 0.0  # 0 = the world of day 1; >0 shifts tastes and the item catalogue
    position_bias: float = 0.0  # eta: P(examined | position p) = (1 + p)^-eta; 0 = no position bias

    def users(self) -> int:
        return self.n_users or int(np.clip(self.rows // 200, 100, 100_000))

    def items(self) -> int:
        return self.n_items or int(np.clip(self.rows // 300, 100, 50_000))


def _world(cfg: DemoConfig) -> dict[str, np.ndarray]:
    """Latent traits of users, items and categories; drift perturbs them deterministically."""
    rng = np.random.default_rng(cfg.seed)
    n_u, n_i, n_c = cfg.users(), cfg.items(), cfg.n_categories
    unit = 1 / np.sqrt(LATENT_DIM)
    cat_vec = rng.normal(0, unit, (n_c, LATENT_DIM))
    seg_vec = rng.normal(0, unit, (cfg.n_segments, LATENT_DIM))
    item_cat = rng.integers(0, n_c, n_i)
    user_seg = rng.integers(0, cfg.n_segments, n_u)
    world = {
        "user_seg": user_seg,
        "user_vec": 0.9 * seg_vec[user_seg] + 0.45 * rng.normal(0, unit, (n_u, LATENT_DIM)),
        "user_activity": rng.gamma(2.0, 2.0, n_u),
        "item_cat": item_cat,
        "item_vec": 0.9 * cat_vec[item_cat] + 0.45 * rng.normal(0, unit, (n_i, LATENT_DIM)),
        "quality": rng.normal(0, 1, n_i),
        "clickbait": rng.gamma(2.0, 0.5, n_i) * (rng.random(n_i) < 0.25),
        "popularity": rng.pareto(1.5, n_i),
        "age_days": rng.exponential(120, n_i),
        "device_bias": rng.normal(0, 0.3, len(DEVICES)),
    }
    if cfg.drift:
        shift = np.random.default_rng(cfg.seed + 10_007)
        world["user_vec"] = world["user_vec"] + cfg.drift * shift.normal(0, 0.5 * unit, world["user_vec"].shape)
        world["clickbait"] = world["clickbait"] * (1 + cfg.drift)
        world["popularity"] = world["popularity"] * np.exp(cfg.drift * shift.normal(0, 1, n_i))
    return world


@dataclass(frozen=True)
class _Impressions:
    """Who saw what, when: one entry per row, rows of a request contiguous and sorted by time."""

    request: np.ndarray
    t: np.ndarray  # seconds since cfg.start
    user: np.ndarray
    item: np.ndarray
    device: np.ndarray
    hour: np.ndarray


def _impressions(cfg: DemoConfig, w: dict[str, np.ndarray], rng: np.random.Generator,
                 part: tuple[int, int, float, float] | None = None) -> _Impressions:
    """Requests and their candidates. `part` = (first request, requests, t0, t1) draws one shard's
    requests in [t0, t1) seconds; None draws all of cfg's requests over cfg.days."""
    k = cfg.candidates_per_request
    first, n_req, t0, t1 = part or (0, max(1, cfg.rows // k), 0.0, cfg.days * 86_400.0)
    # Active users come back more often.
    user_p = w["user_activity"] / w["user_activity"].sum()
    req_user = rng.choice(len(user_p), size=n_req, p=user_p)
    req_time = np.sort(rng.uniform(t0, t1, n_req))
    req_device = rng.integers(0, len(DEVICES), n_req)
    # Popular items are shown more often.
    item_p = (w["popularity"] + 0.05) / (w["popularity"] + 0.05).sum()
    t = np.repeat(req_time, k)
    return _Impressions(
        request=np.repeat(np.arange(first, first + n_req, dtype=np.int64) + cfg.seed * 10**9, k), t=t,
        user=np.repeat(req_user, k), item=rng.choice(len(item_p), size=n_req * k, p=item_p),
        device=np.repeat(req_device, k), hour=((t % 86_400) // 3600).astype(np.int64),
    )


def _truth(w: dict[str, np.ndarray], imp: _Impressions) -> dict[str, np.ndarray]:
    """The true per-row parameters every label is drawn from."""
    affinity = 2.0 * np.einsum("nd,nd->n", w["user_vec"][imp.user], w["item_vec"][imp.item])
    quality, bait = w["quality"][imp.item], w["clickbait"][imp.item]
    evening = np.cos((imp.hour - 20) / 24 * 2 * np.pi)
    click_logit = (-1.9 + 1.5 * affinity + 0.2 * quality + 1.1 * bait + w["device_bias"][imp.device]
                   + 0.3 * evening + 0.2 * np.log1p(w["user_activity"][imp.user]))
    sat = 1.0 * affinity + 1.0 * quality - 1.2 * bait
    return {
        "p_click": _sigmoid(click_logit),
        "watch_mu": 4.0 + 0.5 * affinity + 0.4 * quality - 0.6 * bait + 0.4 * (DEVICES[imp.device] == "tv"),
        "p_like": _sigmoid(-0.2 + 1.6 * sat),
        "rating_mu": 3.2 + 0.9 * sat,
    }


def _positions(cfg: DemoConfig, w: dict[str, np.ndarray], imp: _Impressions,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(position shown, probability of being examined) per row, from a popularity-driven old ranker.

    `rng` is its own random stream, so the other labels of a seed do not change with the bias strength.
    """
    pop = np.log1p(w["popularity"][imp.item])
    old_score = (pop - pop.mean()) / pop.std() + rng.normal(0, 1, len(pop))
    k = cfg.candidates_per_request
    ranks = np.argsort(np.argsort(-old_score.reshape(-1, k), axis=1), axis=1).reshape(-1)  # 0 = top
    return ranks, (1.0 + ranks) ** -cfg.position_bias


def _simulate(cfg: DemoConfig) -> tuple[pa.Table, dict[str, np.ndarray]]:
    w = _world(cfg)
    rng = np.random.default_rng([cfg.seed, 1])
    imp = _impressions(cfg, w, rng)
    return _simulate_rows(cfg, w, imp, rng, np.random.default_rng([cfg.seed, 2]), np.random.default_rng([cfg.seed, 3]))


def _simulate_rows(cfg: DemoConfig, w: dict[str, np.ndarray], imp: _Impressions, rng: np.random.Generator,
                   position_rng: np.random.Generator, examine_rng: np.random.Generator,
                   caps: np.ndarray | None = None) -> tuple[pa.Table, dict[str, np.ndarray]]:
    """Labels and the table of the impressions `imp`; `caps` (per item) is drawn from `rng` when None."""
    truth = _truth(w, imp)
    n = len(imp.t)
    position, examined_p = _positions(cfg, w, imp, position_rng)
    examined = examine_rng.random(n) < examined_p
    click = (rng.random(n) < truth["p_click"]) & examined
    truth["p_click_logged"] = truth["p_click"] * examined_p
    watch_time = np.exp(truth["watch_mu"] + rng.normal(0, WATCH_SIGMA, n))
    like = rng.random(n) < truth["p_like"]
    rating = np.clip(np.rint(truth["rating_mu"] + rng.normal(0, RATING_SIGMA, n)), 1, 5)
    like_seen = click & (rng.random(n) < cfg.like_observed)
    rating_seen = click & (rng.random(n) < cfg.rating_observed)

    if caps is None:
        caps = _title_caps(cfg, w, rng)
    ts = np.datetime64(cfg.start.replace(tzinfo=None), "ms") + (imp.t * 1000).astype("timedelta64[ms]")
    table = pa.table({
        "request_id": pa.array(imp.request),
        "ts": pa.array(ts, type=pa.timestamp("ms", tz="UTC")),
        "user_id": _labels("u", imp.user, cfg.users()),
        "user_segment": _labels("s", w["user_seg"][imp.user], cfg.n_segments),
        "item_id": _labels("i", imp.item, cfg.items()),
        "item_category": _labels("c", w["item_cat"][imp.item], cfg.n_categories),
        "device": pa.DictionaryArray.from_arrays(imp.device.astype(np.int32), pa.array(DEVICES)).cast(pa.string()),
        "hour": pa.array(imp.hour),
        "user_activity": pa.array(w["user_activity"][imp.user]),
        "item_popularity": pa.array(w["popularity"][imp.item]),
        "item_age_days": pa.array(w["age_days"][imp.item]),
        "title_caps_ratio": pa.array(caps[imp.item]),
        "position": pa.array(position.astype(np.int64)),
        "true_click_prob": pa.array(truth["p_click"]),
        "click": pa.array(click.astype(np.int8)),
        "watch_time": pa.array(watch_time, mask=~click),
        "like": pa.array(like.astype(np.int8), mask=~like_seen),
        "rating": pa.array(rating, mask=~rating_seen),
    })
    return table, {**truth, "click": click}


def _title_caps(cfg: DemoConfig, w: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """(items,) the observable clickbait proxy."""
    return np.clip(0.1 + 0.2 * w["clickbait"] + rng.normal(0, 0.08, cfg.items()), 0, 1)


def _labels(prefix: str, codes: np.ndarray, n: int) -> pa.Array:
    """'u17'-style strings without a Python loop per row: a dictionary of n names, then decode."""
    names = pa.array(np.char.add(prefix, np.arange(n).astype(str)))
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), names).cast(pa.string())


def generate(cfg: DemoConfig) -> pa.Table:
    """Build the impression log as one Arrow table, sorted by timestamp."""
    return _simulate(cfg)[0]


TRUTH_COLUMNS = ("true_click", "true_watch_time", "true_like", "true_rating")


def generate_with_truth(cfg: DemoConfig) -> pa.Table:
    """The impression log plus what the generator knows about every row, for noise-free replay gains:
    true_click = P(click), true_watch_time = E[seconds watched | click], true_like = P(like),
    true_rating = E[stars]. (`ranker replay --label click=true_click ...`; the trainer ignores them.)"""
    table, truth = _simulate(cfg)
    values = (truth["p_click"], np.exp(truth["watch_mu"] + WATCH_SIGMA**2 / 2), truth["p_like"],
              _mean_rounded_rating(truth["rating_mu"]))
    for name, column in zip(TRUTH_COLUMNS, values, strict=True):
        table = table.append_column(name, pa.array(column))
    return table


def ceiling(cfg: DemoConfig, test_fraction: float = 0.1) -> dict[str, dict[str, float | None]]:
    """Metrics of the true probabilities / expected labels on the newest `test_fraction` of rows.

    No model can beat these on average (they are the Bayes-optimal predictions); `mean_rmse` is the
    RMSE of predicting the older rows' label mean, the trivial baseline for regression tasks.
    """
    from training.evaluation.metrics import auc, rmse

    table, truth = _simulate(cfg)
    n = table.num_rows
    cut = n - int(round(n * test_fraction / cfg.candidates_per_request)) * cfg.candidates_per_request
    test, old = slice(cut, n), slice(0, cut)
    label = {name: table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False)
             for name in ("click", "watch_time", "like", "rating")}
    mu, log_wt = truth["watch_mu"], np.log1p(label["watch_time"])
    out: dict[str, dict[str, float | None]] = {
        "click": {"auc": auc(label["click"][test], truth["p_click_logged"][test])},
        "like": {"auc": auc(label["like"][test], truth["p_like"][test])},
        "watch_time": {
            "rmse": rmse(label["watch_time"][test], np.exp(mu[test] + WATCH_SIGMA**2 / 2)),
            "mean_rmse": rmse(label["watch_time"][test], np.full(n - cut, np.nanmean(label["watch_time"][old]))),
            "rmse_log1p": rmse(log_wt[test], _mean_log1p_lognormal(mu[test], WATCH_SIGMA)),
            "mean_rmse_log1p": rmse(log_wt[test], np.full(n - cut, np.nanmean(log_wt[old]))),
        },
        "rating": {
            "rmse": rmse(label["rating"][test], _mean_rounded_rating(truth["rating_mu"][test])),
            "mean_rmse": rmse(label["rating"][test], np.full(n - cut, np.nanmean(label["rating"][old]))),
        },
    }
    return out


def _mean_log1p_lognormal(mu: np.ndarray, sigma: float, nodes: int = 32) -> np.ndarray:
    """E[log1p(exp(mu + sigma Z))], Z ~ N(0, 1), by Gauss-Hermite quadrature."""
    x, wts = np.polynomial.hermite_e.hermegauss(nodes)
    return np.log1p(np.exp(mu[:, None] + sigma * x[None, :])) @ (wts / wts.sum())


def _mean_rounded_rating(mu: np.ndarray) -> np.ndarray:
    """E[clip(round(mu + noise), 1, 5)] with noise ~ N(0, RATING_SIGMA^2)."""
    from scipy.special import ndtr

    edges = np.array([-np.inf, 1.5, 2.5, 3.5, 4.5, np.inf])
    cdf = ndtr((edges[None, :] - mu[:, None]) / RATING_SIGMA)  # (N, 6)
    return np.diff(cdf, axis=1) @ np.arange(1.0, 6.0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def write_partitioned(table: pa.Table, out_dir: Path, name: str = "part-0.parquet") -> list[Path]:
    """One Parquet file per UTC day: out_dir/date=YYYY-MM-DD/<name>. Returns the files."""
    out_dir = Path(out_dir)
    days = table.column("ts").cast(pa.timestamp("ms")).to_numpy().astype("datetime64[D]")
    files = []
    for day in np.unique(days):
        part = out_dir / f"date={day}" / name
        part.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.filter(pa.array(days == day)), part, row_group_size=256_000)
        files.append(part)
    return files


def write_demo(out_dir: Path, cfg: DemoConfig) -> list[Path]:
    return write_partitioned(generate(cfg), out_dir)


ITEM_FEATURES = ("item_category", "item_popularity", "item_age_days", "title_caps_ratio")
USER_FEATURES = ("user_segment", "user_activity")


def feature_snapshots(logs: pa.Table) -> dict[str, pa.Table]:
    """The catalogue behind the logs, one row per id: {"item": item_id + ITEM_FEATURES, "user": ...}.

    Each id's newest value in the logs (the demo's features do not change over time, except with drift).
    """
    out = {}
    for entity, key, names in (("item", "item_id", ITEM_FEATURES), ("user", "user_id", USER_FEATURES)):
        agg = logs.select([key, *names]).group_by(key, use_threads=False).aggregate([(n, "last") for n in names])
        out[entity] = agg.rename_columns([n.removesuffix("_last") for n in agg.column_names]).sort_by(key)
    return out


def write_feature_snapshots(logs: pa.Table, out_dir: Path) -> dict[str, Path]:
    """items.parquet and users.parquet under out_dir (for `ranker features publish`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for entity, table in feature_snapshots(logs).items():
        paths[entity] = out_dir / f"{entity}s.parquet"
        pq.write_table(table, paths[entity])
    return paths


def day_after(cfg: DemoConfig) -> datetime:
    return cfg.start + timedelta(days=cfg.days)
