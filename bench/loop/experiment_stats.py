"""Honest experiment statistics (issue 23 §5): does `ranker experiment report`'s interval cover a known
effect, and does an A/A split stay quiet? Simulated traffic, seeded runs, the product's own code.

Each run simulates one experiment: users split 50/50 between `control` and `treatment` by a coin,
each user with a base click rate drawn from Beta(0.5, 4.5) (mean 0.10; heavy and light clickers, so a
user's rows are correlated and clustering matters), 1 + Poisson(3) requests of 10 candidates, a click
per candidate with the user's rate (plus the effect in the treatment arm: +0.01 in absolute rate).
The rows go through the report's statistics (training/experiments/report.py `analyze`, bootstrap by
user) as a JoinedLog, exactly as `ranker experiment report` runs them on a joined log.

    covers      the 95 % interval of treatment - control contains the true difference (known effect)
    quiet       the interval contains 0 (A/A: no effect, the verdict is "no detectable difference")
    naive       the same with a row-level interval (every impression an independent draw: the binomial
                standard error of each arm's click rate), what a report that ignored users would say

    .venv/bin/python -m bench.loop.experiment_stats                 # 50 runs each; docs/BENCHMARKS.md "experiment-stats"
    .venv/bin/python -m bench.loop.experiment_stats --runs 3 --users 500 --no-write-doc   # smoke
    .venv/bin/python -m bench.loop.experiment_stats --replot        # the section again from the saved JSON
    .venv/bin/python -m bench.loop.experiment_stats --write-joined runs/joined-sim   # one run as a joined log
                                                               # (Parquet, date=.../), for the report's CLI
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import beta

from bench.doc_sections import write_section
from training.experiments.joined import JoinedLog
from training.experiments.report import analyze
from training.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results" / "experiment_stats.json"
SECTION = "experiment-stats"
COMMAND = ".venv/bin/python -m bench.loop.experiment_stats"
SPEC = REPO / "configs" / "demo.yaml"  # its click task (binary) and NDCG gain; the other labels stay null
RATE_A, RATE_B = 0.5, 4.5  # Beta(a, b) of the users' click rates: mean 0.1, sd 0.12
EFFECT = 0.01  # absolute click-rate lift of the treatment arm
CANDIDATES = 10
COVERAGE_FLOOR, QUIET_FLOOR = 0.90, 0.95
Z95 = 1.959964


def true_difference(effect: float) -> float:
    """E[min(p + effect, 1)] - E[p] for p ~ Beta(RATE_A, RATE_B): the population's difference of click rates
    (requests per user are independent of p, so the ratio of sums estimates the mean of p)."""
    if effect == 0:
        return 0.0
    return effect - float(beta(RATE_A, RATE_B).expect(lambda p: p + effect - 1.0, lb=1.0 - effect))


def simulate(seed: int, users: int, effect: float) -> JoinedLog:
    """One experiment's joined rows: a JoinedLog with arms ["control", "treatment"] and a click label."""
    rng = np.random.default_rng(seed)
    arm_of_user = rng.integers(0, 2, users)  # a fair coin per user, as the hash split
    rate = rng.beta(RATE_A, RATE_B, users) + effect * arm_of_user
    requests_of_user = 1 + rng.poisson(3, users)
    request_user = np.repeat(np.arange(users), requests_of_user)
    row_user = np.repeat(request_user, CANDIDATES)
    clicks = (rng.random(len(row_user)) < np.minimum(rate, 1.0)[row_user]).astype(np.float64)
    return JoinedLog(arm=arm_of_user[row_user], arms=["control", "treatment"],
                     request=np.repeat(np.arange(len(request_user)), CANDIDATES), cluster=row_user,
                     position=np.tile(np.arange(1, CANDIDATES + 1), len(request_user)).astype(np.float64),
                     labels={"click": clicks}, experiment="simulated", counts={})


def joined_table(log: JoinedLog, day: str = "2026-12-01"):
    """A simulated run as the joined log `ranker logs join` writes (the columns the report reads, and a few more)."""
    import pyarrow as pa

    n = len(log.arm)
    ts = np.datetime64(day, "ms").astype(np.int64) + log.request * 1000
    null = np.full(n, np.nan)
    return pa.table({
        "request_id": pa.array(np.char.add("r", log.request.astype(str))),
        "item_id": pa.array(np.char.add("i", ((log.request * 7 + log.position.astype(np.int64)) % 500).astype(str))),
        "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")), "position": pa.array(log.position.astype(np.int32)),
        "user_key": pa.array(np.char.add("u", log.cluster.astype(str))), "model_name": pa.array(["demo"] * n),
        "model_version": pa.array(np.full(n, 1, np.int64)), "model_role": pa.array(["current"] * n),
        "weights_generation": pa.array(np.full(n, 1, np.int64)),
        "profile": pa.array(np.array(["default", "tuned"])[log.arm]),
        "experiment": pa.array([log.experiment] * n), "arm": pa.array(np.asarray(log.arms)[log.arm]),
        "click": log.labels["click"], "watch_time": null, "like": null, "rating": null})


def write_joined(out: Path, users: int, seed: int = 0) -> Path:
    """One simulated run (the known effect) as a joined log under out/date=2026-12-01/."""
    import pyarrow.parquet as pq

    log = simulate(seed, users, EFFECT)
    log.arms = ["control", "tuned"]
    part = Path(out) / "date=2026-12-01"
    part.mkdir(parents=True, exist_ok=True)
    pq.write_table(joined_table(log), part / "part-0.parquet")
    return part / "part-0.parquet"


def naive_interval(log: JoinedLog) -> tuple[float, float]:
    """Treatment - control click rate with a row-level (binomial, unclustered) 95 % interval."""
    means, variances = [], []
    for a in (0, 1):
        y = log.labels["click"][log.arm == a]
        means.append(y.mean())
        variances.append(y.var() / len(y))
    diff, se = means[1] - means[0], float(np.sqrt(sum(variances)))
    return diff - Z95 * se, diff + Z95 * se


def one_run(spec, seed: int, users: int, effect: float, resamples: int) -> dict:
    log = simulate(seed, users, effect)
    report = analyze(log, spec, control="control", expected={"control": 0.5, "treatment": 0.5},
                     resamples=resamples, seed=seed)
    d = report["comparisons"]["treatment"]["click"]["difference"]
    lo, hi = naive_interval(log)
    truth = true_difference(effect)
    return {"seed": seed, "rows": int(len(log.arm)), "difference": d["value"], "lo": d["lo"], "hi": d["hi"],
            "naive_lo": float(lo), "naive_hi": float(hi), "covers": bool(d["lo"] <= truth <= d["hi"]), "naive_covers": bool(lo <= truth <= hi),
            "flags": bool(not d["lo"] <= 0 <= d["hi"]), "naive_flags": bool(not lo <= 0 <= hi),
            "verdict": report["comparisons"]["treatment"]["click"]["verdict"], "srm_p": report["srm"]["p_value"]}


def measure(runs: int, users: int, resamples: int) -> dict:
    from bench.quality.common import provenance

    spec = load_spec(SPEC)
    out = {"provenance": provenance(f"{COMMAND} --runs {runs} --users {users} --resamples {resamples}"),
           "users": users, "resamples": resamples, "effect": EFFECT, "true_difference": true_difference(EFFECT),
           "scenarios": {}}
    for name, effect, first in (("effect", EFFECT, 0), ("aa", 0.0, 10_000)):
        start = time.perf_counter()
        out["scenarios"][name] = [one_run(spec, first + s, users, effect, resamples) for s in range(runs)]
        out[f"{name}_seconds"] = time.perf_counter() - start
    return out


def summary(results: dict) -> dict:
    eff, aa = results["scenarios"]["effect"], results["scenarios"]["aa"]
    share = lambda runs, key: sum(r[key] for r in runs) / len(runs)  # noqa: E731
    width = lambda runs, lo, hi: float(np.median([r[hi] - r[lo] for r in runs]))  # noqa: E731
    return {"coverage": share(eff, "covers"), "naive_coverage": share(eff, "naive_covers"),
            "aa_quiet": 1 - share(aa, "flags"), "naive_aa_quiet": 1 - share(aa, "naive_flags"),
            "power": share(eff, "flags"), "width": width(eff, "lo", "hi"), "naive_width": width(eff, "naive_lo", "naive_hi"),
            "srm_alarms": sum(r["srm_p"] < 0.001 for r in [*eff, *aa]), "runs": len(eff),
            "sd_observed": float(np.std([r["difference"] - np.mean([x["difference"] for x in runs])
                                         for runs in (eff, aa) for r in runs], ddof=2)),
            "sd_implied": float(np.median([(r["hi"] - r["lo"]) / (2 * Z95) for r in [*eff, *aa]])),
            "rows": float(np.median([r["rows"] for r in eff]))}


def render(results: dict) -> str:
    s = summary(results)
    ok = lambda v, floor: "passes" if v >= floor else "FAILS"  # noqa: E731
    n = s["runs"]
    return "\n".join([
        "## Experiment statistics: intervals by user on simulated traffic", "", results["provenance"], "",
        f"{n} seeded runs per scenario; each run {results['users']:,} users split 50/50 by a coin, click rates "
        f"Beta({RATE_A}, {RATE_B}) per user (mean 0.10), 1 + Poisson(3) requests of {CANDIDATES} candidates "
        f"(median {s['rows']:,.0f} rows per run), {results['resamples']} bootstrap resamples. The known effect: "
        f"+{results['effect']} absolute click rate in the treatment arm (true difference "
        f"{results['true_difference']:.6f}). The report's interval is `ranker experiment report`'s (bootstrap by "
        "user, training/experiments/report.py); the naive one treats every impression as independent "
        "(row-level binomial standard error).", "",
        "| | bootstrap by user (the report) | naive row-level |", "|---|---|---|",
        f"| known effect: interval covers the true difference | **{s['coverage']:.0%}** of {n} "
        f"(floor {COVERAGE_FLOOR:.0%}: {ok(s['coverage'], COVERAGE_FLOOR)}) | {s['naive_coverage']:.0%} |",
        f"| A/A: no difference flagged | **{s['aa_quiet']:.0%}** of {n} (floor {QUIET_FLOOR:.0%}: "
        f"{ok(s['aa_quiet'], QUIET_FLOOR)}) | {s['naive_aa_quiet']:.0%} |",
        f"| median interval width (known effect) | {s['width']:.4f} | {s['naive_width']:.4f} |",
        f"| known effect detected (power) | {s['power']:.0%} | |", "",
        f"The intervals are as wide as the runs vary: the standard deviation of the estimated difference over the "
        f"{2 * n} runs (each scenario about its own mean) is {s['sd_observed']:.5f}; the median interval's "
        f"half-width / 1.96 is {s['sd_implied']:.5f}. The naive interval is {s['width'] / s['naive_width']:.1f}x "
        "too narrow: a user's impressions are not independent draws.", "",
        "A correct 95 % interval flags an A/A split in 5 % of runs by design, so the A/A floor equals the nominal "
        f"rate: over {n} runs the share of quiet runs has a binomial sd of about "
        f"{np.sqrt(0.05 * 0.95 / n):.0%}. The sample-ratio check (chi-square of users per arm against 50/50) "
        f"warned in {s['srm_alarms']} of {2 * n} fair splits (p < 0.001). Time: "
        f"{results['effect_seconds'] + results['aa_seconds']:.0f} s for both scenarios.", ""])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--resamples", type=int, default=2000)
    p.add_argument("--write-doc", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--replot", action="store_true")
    p.add_argument("--write-joined", type=Path, help="write one simulated run (--users users, seed 0, the known "
                   "effect on arm 'tuned') as a joined log into this directory, and stop")
    ns = p.parse_args(argv)
    if ns.write_joined:
        print(f"wrote {write_joined(ns.write_joined, ns.users)}")
        return
    results = json.loads(RESULTS.read_text()) if ns.replot else measure(ns.runs, ns.users, ns.resamples)
    text = render(results)
    print(text)
    if ns.write_doc:
        if not ns.replot:
            RESULTS.write_text(json.dumps(results, separators=(",", ":")))
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
