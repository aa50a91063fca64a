"""Does a profile rank alike across two retrains? Top-k overlap with and without calibrated heads.

Two nightly retrains on consecutive windows (days 0-13 and days 1-14 of the demo data) score the
same requests of day 15, which neither trained on. For every profile of configs/weights.yaml, the
per-request top-k overlap between the two models' orders is the stability. Each trained model is
exported three times, so calibration is the only difference between the rows of a seed:
uncalibrated (no Platt/isotonic, no smearing), Platt + smearing, isotonic + smearing.

    .venv/bin/python -m bench.ranking_stability            # 120k rows, seeds 0 and 1; writes its section
    .venv/bin/python -m bench.ranking_stability --smoke    # 12k rows, 1 seed, 2 epochs; temp dir, no docs
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from bench.doc_sections import write_section
from bench.quality.common import provenance
from service.contract.bundle import load_bundle
from training.data.demo import DemoConfig, generate, write_partitioned
from training.evaluation import ranking as R
from training.profiles.logs import LogColumns, load_weights, read_log, score_log
from training.profiles.stats import estimate
from training.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
SECTION = "ranking-stability"
SPEC, WEIGHTS = REPO / "configs" / "demo.yaml", REPO / "configs" / "weights.yaml"
RESULTS = REPO / "bench" / "results" / "ranking_stability.json"
DAYS, K = 16, 5
# label -> (calibration.binary, calibration.smearing)
SETTINGS = {"uncalibrated": ("none", False), "Platt + smearing": ("platt", True),
            "isotonic + smearing": ("isotonic", True)}
WINDOWS = {"A (days 0-13)": (0, 14), "B (days 1-14)": (1, 15)}


def day(cfg: DemoConfig, n: int) -> str:
    """The ISO date of day n of the demo data (a window bound)."""
    return (cfg.start + timedelta(days=n)).date().isoformat()


def export_all(work: Path, cfg: DemoConfig, seed: int, epochs: int | None) -> dict[str, dict[str, Path]]:
    """bundles[setting][window]: each window trained once, exported once per calibration setting."""
    from training.bundle.export import export_bundle
    from training.fit.train import train

    out: dict[str, dict[str, Path]] = {s: {} for s in SETTINGS}
    for window, (start, end) in WINDOWS.items():
        spec = load_spec(SPEC, data_path=str(work / "data"))
        spec.data.start, spec.data.end = day(cfg, start), day(cfg, end)
        spec.train.threads, spec.train.seed = 1, seed
        if epochs is not None:
            spec.train.epochs = epochs
        trained = train(spec, progress=False)
        for setting, (binary, smearing) in SETTINGS.items():
            trained.spec.calibration.binary, trained.spec.calibration.smearing = binary, smearing
            path = work / f"seed{seed}" / setting.split()[0] / window.split()[0]
            out[setting][window] = export_bundle(trained, path)
    return out


def overlaps(bundles: dict[str, Path], log: Path) -> dict[str, np.ndarray]:
    """profile -> (R,) top-K overlap between window A's and window B's order on the log's requests."""
    scores, req = {}, None
    for window, path in bundles.items():
        bundle = load_bundle(path)
        weights = load_weights(WEIGHTS, bundle)
        scored = score_log(bundle, read_log(str(log), bundle, LogColumns()), LogColumns())
        req = scored.requests
        scores[window] = {name: scored.scores(p) for name, p in weights.profiles.items()}
    a, b = (scores[w] for w in WINDOWS)
    return {name: R.overlap(req, a[name], b[name], K) for name in a}


def run(work: Path, rows: int, seeds: list[int], epochs: int | None) -> dict:
    cfg = DemoConfig(rows=rows, seed=0, days=DAYS)
    table = generate(cfg)
    write_partitioned(table, work / "data")
    last = sorted((work / "data").iterdir())[-1]
    log = work / "day15.parquet"
    pq.write_table(pq.read_table(next(last.glob("*.parquet"))), log)
    per: dict = {}
    for seed in seeds:
        bundles = export_all(work, cfg, seed, epochs)
        for setting, by_window in bundles.items():
            for profile, values in overlaps(by_window, log).items():
                per.setdefault(setting, {}).setdefault(profile, []).append(values)
    return {s: {p: np.concatenate(v) for p, v in by_profile.items()} for s, by_profile in per.items()}


def section(per: dict, made_by: str, seeds: list[int]) -> str:
    base = per["uncalibrated"]
    profiles = list(base)
    lines = ["## Ranking stability across two retrains, with and without calibration", "",
             f"{made_by} Two retrains of configs/demo.yaml on consecutive 14-day windows of the demo data "
             f"(days 0-13 and 1-14), seeds {seeds}, score the requests of day 15; per profile of "
             f"configs/weights.yaml, the mean top-{K} overlap between the two models' orders on the same "
             "requests (1 = identical top k), 95 % bootstrap intervals over requests (pooled over seeds). Each "
             "trained model is exported once per calibration setting, so calibration is the only difference "
             "within a column pair; Δ = calibrated minus uncalibrated, paired per request.", "",
             "| profile | " + " | ".join(SETTINGS) + " | " + " | ".join(f"Δ {s}" for s in list(SETTINGS)[1:]) + " |",
             "|---|" + "---|" * (2 * len(SETTINGS) - 1)]
    for p in profiles:
        cells = [estimate(per[s][p]).text(3) for s in SETTINGS]
        deltas = [estimate(per[s][p] - base[p]).text(3) for s in list(SETTINGS)[1:]]
        lines.append(f"| `{p}` | " + " | ".join(cells + deltas) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "ranking-stability")
    ns = ap.parse_args(argv)
    seeds = [0] if ns.smoke else [0, 1]
    made_by = provenance(".venv/bin/python -m bench.ranking_stability")
    work = Path(tempfile.mkdtemp(prefix="mtl-stab-")) if ns.smoke else ns.work
    per = run(work, 12_000 if ns.smoke else 120_000, seeds, 2 if ns.smoke else None)
    text = section(per, made_by, seeds)
    print(text)
    if not ns.smoke:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({s: {p: v.tolist() for p, v in d.items()} for s, d in per.items()}))
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
