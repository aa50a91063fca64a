"""Tuner evidence on demo data: its front against the shipped profiles on held-out requests.

The demo generator knows every row's true click and like probabilities, so the held-out half is
measured twice: by the logged labels (what an operator has) and by the truth (no label noise).

    .venv/bin/python -m bench.profiles.weights_tuning             # 200k rows, 300 trials; writes its BENCHMARKS section
    .venv/bin/python -m bench.profiles.weights_tuning --smoke     # 20k rows, 2 epochs, 30 trials, temp dir, no docs

Steps: demo data with truth columns (training/data/demo.py `generate_with_truth`) -> `ranker train`
with configs/demo.yaml -> the test split (newest 10 %, never trained on) is the replay log -> `tune`
(training/profiles/tune.py: search on one half of its requests, re-measure on the other) with
objectives ndcg@10:click and ndcg@10:like and configs/weights.yaml as the current profiles.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq

from bench.doc_sections import write_section
from bench.quality.common import provenance
from service.contract.bundle import load_bundle
from training.data.demo import DemoConfig, generate_with_truth, write_partitioned
from training.data.splits import split_table
from training.profiles.front_plot import plot_front
from training.profiles.logs import LogColumns, load_weights, read_log, score_log
from training.profiles.replay import Metric
from training.profiles.tune import measure_holdout, split_requests, tune
from training.profiles.tune_report import render_markdown
from training.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
SECTION = "weights-tuning"
SPEC, WEIGHTS = REPO / "configs" / "demo.yaml", REPO / "configs" / "weights.yaml"
PNG = REPO / "docs" / "img" / "weights_front_demo.png"
# Engagement against satisfaction, two ways: `like` is logged only on clicked items (null = 0 as a
# gain), so ndcg@10:like also rewards clicks; seen_ndcg@10:like ranks likes among clicked items only.
OBJECTIVE_PAIRS = [["ndcg@10:click", "seen_ndcg@10:like"], ["ndcg@10:click", "ndcg@10:like"]]
TRUTH = LogColumns(labels={"click": "true_click", "like": "true_like", "watch_time": "true_watch_time",
                           "rating": "true_rating"})


def build(work: Path, rows: int, epochs: int | None) -> tuple[Path, Path]:
    """Demo data (with truth) -> trained, exported bundle; the test split as the replay log."""
    from training.bundle.export import export_bundle
    from training.fit.train import train

    table = generate_with_truth(DemoConfig(rows=rows, seed=0))
    write_partitioned(table, work / "data")
    spec = load_spec(SPEC, data_path=str(work / "data"))
    spec.train.threads = 1
    if epochs is not None:
        spec.train.epochs = epochs
    bundle = export_bundle(train(spec, progress=False, eval_test=True), work / "bundle")
    log = work / "heldout.parquet"
    pq.write_table(split_table(table, spec.data).test, log)
    return bundle, log


def run(bundle_dir: Path, log_path: Path, trials: int, pair: list[str], seed: int = 0) -> dict:
    bundle = load_bundle(bundle_dir)
    current = load_weights(WEIGHTS, bundle)
    objectives = [Metric.parse(o) for o in pair]
    labelled = score_log(bundle, read_log(str(log_path), bundle, LogColumns()), LogColumns())
    result = tune(labelled, current, bundle.manifest.tasks, objectives, trials, seed)
    truth_log = score_log(bundle, read_log(str(log_path), bundle, TRUTH), TRUTH)
    _, truth_holdout = split_requests(truth_log, seed)  # the same halves: same requests, same seed
    truth = {"current": [replace(p, holdout=[], deltas=[]) for p in result.current],
             "chosen": [replace(p, holdout=[], deltas=[]) for p in result.chosen],
             "front": [replace(p, holdout=[], deltas=[]) for p in result.front]}
    measure_holdout(truth_holdout, bundle.manifest.tasks, truth["front"] + truth["current"] + truth["chosen"],
                    current, objectives)
    return {"labels": result, "truth": truth, "objectives": objectives}


def verdict(deltas: list, names: list[str]) -> str:
    """'dominates' (a significant gain, no significant loss), 'matches' (neither) or 'trades' (a loss)."""
    lost = [n for d, n in zip(deltas, names, strict=True) if d.hi is not None and d.hi < 0]
    won = [n for d, n in zip(deltas, names, strict=True) if d.lo is not None and d.lo > 0]
    if lost:
        return f"trades (loses {', '.join(lost)})"
    return f"dominates (gains {', '.join(won)})" if won else "matches"


def verdicts(out: dict) -> list[str]:
    """One line per chosen profile: its verdict against its base by labels and by truth (held-out)."""
    names = [o.name for o in out["objectives"]]
    truth = {p.name: p for p in out["truth"]["chosen"]}
    lines = ["| chosen | vs | by logged labels | by truth |", "|---|---|---|---|"]
    for p in out["labels"].chosen:
        lines.append(f"| `{p.name}` | `{p.based_on}` | {verdict(p.deltas, names)} | "
                     f"{verdict(truth[p.name].deltas, names)} |")
    return lines


def adopted(outs: list[dict]) -> str:
    """Whether configs/weights.yaml should change: only for a point that beats `default` by truth too."""
    for out in outs:
        names = [o.name for o in out["objectives"]]
        truth = {p.name: p for p in out["truth"]["chosen"]}
        for p in out["labels"].chosen:
            if p.based_on == "default" and verdict(truth[p.name].deltas, names).startswith("dominates") \
                    and verdict(p.deltas, names).startswith("dominates"):
                return f"`{p.name}` beats `default` by labels and by truth: adopt it ({p.profile})."
    return ("No chosen point beats `default` on held-out requests by both the labels and the truth, so "
            "configs/weights.yaml is unchanged: the shipped profiles are on, or within noise of, the front.")


def label_vs_truth(outs: list[dict]) -> str:
    """How often a point the labels call a win (or a match) is a trade by the truth."""
    good = bad = 0
    for out in outs:
        names = [o.name for o in out["objectives"]]
        truth = {p.name: p for p in out["truth"]["chosen"]}
        for p in out["labels"].chosen:
            if not verdict(p.deltas, names).startswith("trades"):
                good += 1
                bad += verdict(truth[p.name].deltas, names).startswith("trades")
    return (f"Of the {good} chosen points that match or beat their base profile by the logged labels, {bad} "
            "trade satisfaction for clicks by the truth.")


def pair_section(out: dict) -> list[str]:
    labels, truth, objectives = out["labels"], out["truth"], out["objectives"]
    truth_view = replace(labels, current=truth["current"], chosen=truth["chosen"], front=truth["front"])
    return [f"### Objectives {' and '.join(f'`{o.name}`' for o in objectives)}", "",
            "**By the logged labels** (what an operator has):", "", render_markdown(labels),
            "**By the generator's truth** (gains = each shown item's true click and like probabilities, no "
            "label noise and no missing likes), same held-out requests and profiles:", "", render_markdown(truth_view),
            "**Verdict** (paired 95 % intervals on held-out requests):", "", *verdicts(out), ""]


def calibration_lines(bundle_dir: Path) -> list[str]:
    """The bundle's calibration evidence (report.md's table, from the manifest): ECE and smeared means."""
    from training.bundle.calibration import render_section

    summary = load_bundle(bundle_dir).manifest.metrics.get("calibration", {})
    return ["### Calibration of the demo model's heads", "",
            "configs/demo.yaml asks for Platt scaling of the binary heads and smearing of watch time, fitted on the "
            "validation split (the bundle's report.md has the same table and a reliability plot):", "",
            *render_section(summary)[4:-2], ""]


def section(outs: list[dict], made_by: str, bundle_dir: Path | None = None) -> str:
    lines = ["## Weights: the tuner's front vs the shipped profiles (demo data)", "",
             f"{made_by} The demo model (configs/demo.yaml, 200k rows) scores the test split (the newest 10 % "
             "of rows, never trained on); `ranker tune` searches weights and transforms (NSGA-II) on one half "
             "of those requests, and every number below is re-measured on the other half, with "
             "`configs/weights.yaml` as the current profiles. `like` is logged only for clicked items, so "
             "`ndcg@10:like` (null likes = gain 0) also rewards clicks, while `seen_ndcg@10:like` ranks likes "
             "among the clicked items only.", "", f"![front](img/{PNG.name})", ""]
    for out in outs:
        lines += pair_section(out)
    if bundle_dir is not None:
        lines += calibration_lines(bundle_dir)
    lines += ["### Reading", "", adopted(outs), "", label_vs_truth(outs), "",
              "By the logged labels, `ndcg@10:like` counts an unclicked item's like as 0, so a profile that "
              "pushes clicks also gains 'likes'; `seen_ndcg@10:like` removes that bias, but logged likes remain "
              "sparse (observed on a share of clicked items only) and noisy, and the truth is the judge here.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="20k rows, 2 epochs, 30 trials; temp dir; no docs")
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "weights-tuning")
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--reuse", action="store_true", help="reuse the bundle and log already in --work")
    ns = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mtl-tune-")) if ns.smoke else ns.work
    command = ".venv/bin/python -m bench.profiles.weights_tuning" + ("" if ns.trials == 300 else f" --trials {ns.trials}")
    made_by = provenance(command)
    if ns.reuse:
        bundle, log = work / "bundle", work / "heldout.parquet"
    else:
        bundle, log = build(work, 20_000 if ns.smoke else 200_000, 2 if ns.smoke else None)
    outs = [run(bundle, log, 30 if ns.smoke else ns.trials, pair) for pair in OBJECTIVE_PAIRS]
    labels = outs[0]["labels"]
    png = plot_front(work / PNG.name if ns.smoke else PNG, outs[0]["objectives"], labels.front, labels.current,
                     labels.chosen, title="demo: tuner's front vs shipped profiles (held-out requests, labels)")
    text = section(outs, made_by, bundle)
    print(text)
    if not ns.smoke:
        write_section(SECTION, text)
    print(f"plot: {png}")


if __name__ == "__main__":
    main()
