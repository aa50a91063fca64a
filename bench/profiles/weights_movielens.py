"""The tuner on MovieLens-100k: a front of NDCG@10 by watch against NDCG@10 by like, per user.

Data and models as in Quality 2 (bench/quality/movielens.py, bench/quality/specs/movielens.yaml):
our MMoE and our single-task models, trained through the normal path. The replay log is the test
split (newest 10 %), grouped per user as that benchmark's NDCG is. `ranker tune` searches weights
and transforms of the MMoE's heads on half of the users and re-measures on the other half, where
reference orders are marked too: popularity (watches per movie in the training split) and each
single-task model's head alone.

    .venv/bin/python -m bench.profiles.weights_movielens            # full; writes its BENCHMARKS section and PNG
    .venv/bin/python -m bench.profiles.weights_movielens --smoke    # 60 users, 1 epoch, 20 trials; temp dir, no docs
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.doc_sections import write_section
from bench.quality.common import provenance
from bench.quality.movielens import SPEC, smoke_data
from bench.quality.movielens_data import write_dataset
from service.contract.bundle import load_bundle
from training.data.splits import load_splits
from training.profiles.front_plot import plot_front
from training.profiles.logs import LogColumns, load_weights, read_log, score_log
from training.profiles.replay import Metric
from training.profiles.stats import estimate
from training.profiles.tune import split_requests, tune
from training.profiles.tune_report import render_markdown
from training.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
SECTION = "weights-movielens"
PNG = REPO / "docs" / "img" / "weights_front_movielens.png"
OBJECTIVES = ["ndcg@10:watch", "ndcg@10:like"]
COLUMNS = LogColumns(request_id="user_id", item_id="movie_id")
CURRENT = """# MovieLens profiles to tune from: the benchmark's score and each head alone
default_profile: default
profiles:
  default: {watch: 1.0, like: 1.0}   # Quality 2's ranking score
  watch_only: {watch: 1.0}
  like_only: {like: 1.0}
"""


def train_bundles(work: Path, data: Path, epochs: int | None) -> dict[str, Path]:
    from training.bundle.export import export_bundle
    from training.fit.train import train

    out = {}
    for arch in ("mmoe", "single_task"):
        spec = load_spec(SPEC, data_path=str(data))
        spec.model.arch = arch
        if epochs is not None:
            spec.train.epochs = epochs
        out[arch] = export_bundle(train(spec, progress=False), work / arch)
    return out


def references(work: Path, data: Path, bundles: dict[str, Path], log: Path, seed: int) -> list[tuple[str, list]]:
    """(name, held-out estimates per objective) of the popularity order and the single-task heads."""
    spec = load_spec(SPEC, data_path=str(data))
    splits = load_splits(spec)
    watched = splits.train.filter(pc.equal(splits.train.column("watch"), 1)).column("movie_id").to_numpy()
    bundle = load_bundle(bundles["single_task"])
    scored = score_log(bundle, read_log(str(log), bundle, COLUMNS), COLUMNS)
    _, holdout = split_requests(scored, seed)
    counts = np.bincount(watched, minlength=int(max(watched.max(), holdout.item_ids.max())) + 1)
    objectives = [Metric.parse(o) for o in OBJECTIVES]
    orders = {"popularity": counts[holdout.item_ids].astype(float),
              "single-task watch": holdout.heads["watch"], "single-task like": holdout.heads["like"]}
    return [(name, [estimate(o.per_request(holdout, s)) for o in objectives]) for name, s in orders.items()]


def section(result, refs, made_by: str) -> str:
    names = [o.name for o in result.objectives]
    ref_rows = [f"| {name} (reference) | " + " | ".join(e.text() for e in est) + " |" for name, est in refs]
    return "\n".join([
        "## Weights: the tuner's front on MovieLens-100k", "",
        f"{made_by} Our MMoE (bench/quality/specs/movielens.yaml, as in Quality 2) scores the test split; "
        "requests are users (NDCG@10 per user, as in Quality 2); `ranker tune` searches the MMoE's weights and "
        "transforms on half of the users and everything is re-measured on the other half. Reference orders on "
        "the same held-out users: popularity (watches per movie in the training split) and our single-task "
        "models' heads (`arch: single_task`, same spec).", "",
        render_markdown(result).rstrip(), "",
        "| reference order | " + " | ".join(names) + " |", "|---|" + "---|" * len(names), *ref_rows, "",
        f"![front](img/{PNG.name})", ""])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "weights-movielens")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse", action="store_true", help="reuse the bundles already trained in --work")
    ns = ap.parse_args(argv)
    made_by = provenance(".venv/bin/python -m bench.profiles.weights_movielens")
    work = Path(tempfile.mkdtemp(prefix="mtl-ml-front-")) if ns.smoke else ns.work
    work.mkdir(parents=True, exist_ok=True)
    data = smoke_data() if ns.smoke else write_dataset(0)
    if ns.reuse:
        bundles = {arch: work / arch for arch in ("mmoe", "single_task")}
    else:
        bundles = train_bundles(work, data, 1 if ns.smoke else None)
    spec = load_spec(SPEC, data_path=str(data))
    log = work / "test_split.parquet"
    pq.write_table(load_splits(spec).test, log)
    (work / "weights.yaml").write_text(CURRENT)
    bundle = load_bundle(bundles["mmoe"])
    scored = score_log(bundle, read_log(str(log), bundle, COLUMNS), COLUMNS)
    result = tune(scored, load_weights(work / "weights.yaml", bundle), bundle.manifest.tasks,
                  [Metric.parse(o) for o in OBJECTIVES], 20 if ns.smoke else ns.trials, ns.seed)
    refs = references(work, data, bundles, log, ns.seed)
    png = plot_front(work / PNG.name if ns.smoke else PNG, result.objectives, result.front, result.current,
                     result.chosen, refs, title="MovieLens-100k: front of the MMoE's profiles (held-out users)")
    text = section(result, refs, made_by)
    print(text)
    if not ns.smoke:
        write_section(SECTION, text)
    print(f"plot: {png}")


if __name__ == "__main__":
    main()
