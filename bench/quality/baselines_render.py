"""Quality 7's section: per dataset the models' test metrics, the goal (at least the best peer library,
and half the way to the GBDT where it leads), and what each candidate change did, paired by seed."""

from __future__ import annotations

import numpy as np

from bench.quality.common import REPLOT_NOTE, fmt_ms, md_table, mean_std
from bench.quality.records import direction, group_by, metric_name, task_metric, task_names

PEERS = ("DeepCTR-Torch MMOE", "torch-rechub MMOE")
GBDT = "GBDT"


def _values(recs: list[dict], task: str) -> list[float]:
    return [task_metric(r, task) for r in recs]


def _ndcg(rec: dict, group_column: str | None) -> float | None:
    return rec.get(f"ndcg@10_per_{group_column}") if group_column else rec["metrics"]["test"].get("ndcg@10")


def results_table(groups: dict[str, list[dict]], group_column: str | None, ndcg_label: str) -> str:
    first = next(iter(groups.values()))[0]
    tasks = task_names(first)
    header = ["model", *[f"{t} {metric_name(first, t)}" for t in tasks], ndcg_label, "epochs", "s / epoch"]
    rows = []
    for label, recs in groups.items():
        epoch_s = [np.mean(r["epoch_seconds"]) for r in recs if r["epoch_seconds"]]
        ndcg = [_ndcg(r, group_column) for r in recs]
        rows.append([label, *[fmt_ms(_values(recs, t)) for t in tasks],
                     "n/a" if all(v is None for v in ndcg) else fmt_ms(ndcg),
                     f"{np.mean([r['epochs'] for r in recs]):.1f}" if epoch_s else "-",
                     f"{np.mean(epoch_s):.1f}" if epoch_s else f"{np.mean([r['train_seconds'] for r in recs]):.0f} s fit"])
    return md_table(header, rows)


def goal_rows(groups: dict[str, list[dict]], ours: str) -> list[dict]:
    """Per task: the best peer, ours, the GBDT (means, in the metric's direction) and whether the goal holds."""
    out = []
    for task in task_names(groups[ours][0]):
        sign = direction(groups[ours][0], task)
        mean = {label: mean_std(_values(recs, task))[0] for label, recs in groups.items()}
        peer = max((p for p in PEERS if p in groups), key=lambda p: sign * mean[p])
        gap = sign * (mean[GBDT] - mean[peer])  # > 0: the GBDT leads the best peer
        closed = sign * (mean[ours] - mean[peer]) / gap if gap > 0 else None
        met = sign * (mean[ours] - mean[peer]) >= 0 and (closed is None or closed >= 0.5)
        out.append({"task": task, "metric": metric_name(groups[ours][0], task), "peer": peer, "peer_value": mean[peer],
                    "ours": mean[ours], "gbdt": mean[GBDT], "closed": closed, "met": met})
    return out


def goal_table(rows: list[dict]) -> str:
    body = [[f"{r['task']} ({r['metric']})", f"{r['peer']} {r['peer_value']:.4f}", f"{r['ours']:.4f}", f"{r['gbdt']:.4f}",
             "n/a (GBDT behind)" if r["closed"] is None else f"{100 * r['closed']:.0f} %",
             "**met**" if r["met"] else "not met"] for r in rows]
    return md_table(["task", "best peer", "our MMoE", "GBDT", "peer → GBDT gap closed", "goal"], body)


def goal_matrix(groups: dict[str, list[dict]], ours: str, candidates: list[str]) -> str:
    """The goal per task for our MMoE and for each candidate change in its place: met, or how much of
    the peer -> GBDT gap it closed (or how far behind the best peer it is)."""
    labels = [ours, *(f"{ours} + {c}" for c in candidates if f"{ours} + {c}" in groups)]
    first = groups[ours][0]
    rows = []
    for label in labels:
        cells = []
        for r in goal_rows(groups, label):
            behind = direction(first, r["task"]) * (r["ours"] - r["peer_value"])
            detail = (f"{100 * r['closed']:.0f} % closed" if r["closed"] is not None and behind >= 0
                      else f"{behind:+.4f} vs peer")
            cells.append(f"{'**met**' if r['met'] else 'not met'} ({detail})")
        rows.append([label, *cells])
    return md_table(["configuration", *[f"{t} ({metric_name(first, t)})" for t in task_names(first)]], rows)


def paired_gains(base: list[dict], other: list[dict], task: str) -> list[float]:
    """other minus base per seed, in the metric's direction (+ = other is better)."""
    by_seed = {r["overrides"]["train.seed"]: r for r in base}
    sign = direction(base[0], task)
    return [sign * (task_metric(r, task) - task_metric(by_seed[r["overrides"]["train.seed"]], task)) for r in other
            if r["overrides"]["train.seed"] in by_seed]


def candidate_cells(groups: dict[str, list[dict]], ours: str, label: str) -> tuple[list[str], int, int]:
    """Per task 'gain ± std (wins/seeds)' ('identical' when every seed gives the same metric); and how many
    tasks it wins / loses in every seed (a tie is neither)."""
    cells, wins, losses = [], 0, 0
    for task in task_names(groups[ours][0]):
        g = paired_gains(groups[ours], groups[label], task)
        m, s = mean_std(g)
        up = sum(x > 0 for x in g)
        wins += bool(g) and up == len(g)
        losses += bool(g) and all(x < 0 for x in g)
        cells.append("identical in every seed" if g and not any(g) else f"{m:+.4f} ± {s:.4f} ({up}/{len(g)})")
    return cells, wins, losses


def candidates_table(groups: dict[str, list[dict]], ours: str, candidates: list[str]) -> tuple[str, dict]:
    first = groups[ours][0]
    header = ["change", *[f"{t} ({metric_name(first, t)})" for t in task_names(first)]]
    rows, tally = [], {}
    for name in candidates:
        label = f"{ours} + {name}"
        if label not in groups:
            continue
        cells, wins, losses = candidate_cells(groups, ours, label)
        rows.append([name, *cells])
        tally[name] = (wins, losses)
    return md_table(header, rows), tally


def provenance_text(run: dict, n_records: int) -> str:
    """Which command trained the dataset's runs, then any later partial runs (the other models' runs reused)."""
    later = run.get("later", [])
    first_jobs = run.get("jobs", n_records - sum(r["jobs"] for r in later))
    text = (f"{run['provenance']} Seeds {run['seeds']}; {run['wall_seconds'] / 60:.0f} min wall for {first_jobs} runs\n"
            f"({run['workers']} worker processes, 1 torch thread each, on a 2-core machine shared with other work).")
    for r in later:
        text += (f"\n\nThen: {r['provenance']} It trained {', '.join(r['models'])} ({r['jobs']} runs, seeds "
                 f"{r['seeds']}, {r['wall_seconds'] / 60:.0f} min wall); the other models' runs above are reused.")
    return text


def dataset_section(name: str, desc: dict, recs: list[dict], run: dict, ours: str, candidates: list[str]) -> tuple[str, dict]:
    groups = group_by(recs, lambda r: r["label"])
    order = [ours, *(f"{ours} + {c}" for c in candidates)]  # ours and its candidates first, then the peers
    groups = dict(sorted(groups.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
    table, tally = candidates_table(groups, ours, candidates)
    text = f"""### {desc['name']} ({desc['rows']:,} rows)

{provenance_text(run, len(recs))}

{results_table(groups, desc['group_column'], desc['ndcg_label'])}

**Goal** (means over seeds): our MMoE at least the best peer library on every task, and where the GBDT leads that
peer, at least half of the distance closed:

{goal_table(goal_rows(groups, ours))}

The same goal with each candidate change in place of our MMoE (a candidate must also win on every dataset to become
the default):

{goal_matrix(groups, ours, candidates)}

**Each candidate change vs our MMoE**, paired by seed (+ = better; in brackets the seeds where it is better):

{table}
"""
    return text, tally


def render(saved: dict, ours: str, candidates: list[str], replot: bool = False) -> str:
    parts, tallies = [], {}
    for name, desc in saved["datasets"].items():
        recs = [r for r in saved["records"] if r["dataset"] == name]
        run = dict(saved["runs"][name])
        if replot:
            run["provenance"] += REPLOT_NOTE
        text, tallies[name] = dataset_section(name, desc, recs, run, ours, candidates)
        parts.append(text)
    verdict = []
    for c in candidates:
        per = [f"{n}: better in every seed on {t[c][0]} task(s), worse in every seed on {t[c][1]}"
               for n, t in tallies.items() if c in t]
        verdict.append(f"- `{c}`: " + "; ".join(per) + ".")
    return "## Quality 7. Against gradient-boosted trees and the peer libraries\n\n" + HEADER + "\n\n" + "\n".join(
        parts) + "\n**Tally of the candidates**\n\n" + "\n".join(verdict) + "\n\n" + CHOICE


HEADER = """Every report shows a GBDT baseline beside the model (`eval.baseline`, training/evaluation/baseline.py): one
scikit-learn `HistGradientBoostingClassifier`/`Regressor` per task (up to 500 trees, learning rate 0.1, early
stopping on the validation split) on the model's own encoded features. This section measures it, DeepCTR-Torch
0.3.0's and torch-rechub 0.9.0's MMOE and our MMoE on the same encoded arrays and splits. **Our MMoE is today's
default**, which this section chose: the weights validated, kept and exported are a moving average over about 2
epochs of steps (`train.ema_epochs: 2`, training/fit/averaging.py), and `model.numeric_embedding: ple_auto` bins
the numeric columns that need it: piecewise-linear encoding over 16 quantile bins of the training split, then a
per-feature Linear + ReLU to the embedding width (Gorishniy et al., NeurIPS 2022), for a column where one value
holds >= 50 % of the rows or whose excess kurtosis is >= 20 (never one of <= 2 values). On census it bins
capital_gain and capital_loss (92 % and 95 % zeros) and leaves age, fnlwgt, education_num and hours_per_week (its
mode, 40, holds 47 %) as numbers; on demo, MovieLens and the synthetic table it bins nothing (the largest kurtosis
among their columns of more than two values is 5.0, MovieLens release_year; the 19 genre columns are 0/1 flags; the
synthetic inputs are Gaussian). The fourth dataset is Ma et al.'s synthetic generator ("Quality 1") at task
correlation 0.5 as a table (bench/quality/synthetic_table.py, bench/quality/specs/synthetic.yaml): 15,000 rows of
100 Gaussian inputs and two regression labels, with the synthetic benchmark's MMoE shape. Each candidate
changes one thing: **ple** bins every numeric column; **periodic**, sin/cos of 16 learned frequencies per feature,
then the same Linear + ReLU ("PLR"), for every numeric column; **warmup_cosine**, a linear warmup over the first
epoch, then cosine decay to 0 at the last allowed epoch; **cross**, 2 DCN-v2 cross layers at the bottom of every
expert (Wang et al., WWW 2021); **ema_short**, the average over 0.5 epochs; and two ablations of the default,
**no_ema** (the raw weights) and **no_ple_auto** (every numeric column as a number; with no_ema, the default
before this section). The peers are trained as in "Quality 2" (bench/quality/deepctr_mmoe.py,
bench/quality/rechub_mmoe.py): their own training step and defaults, our early stopping on the validation loss."""

CHOICE = """**How the default was chosen.** A first round compared the old default (raw weights, numbers as numbers) with
ple, ple_auto, periodic, warmup_cosine and cross: none was better in every seed on some task without being worse
in every seed on another, and the goal was missed on MovieLens watch (0.8254 against torch-rechub's 0.8255) and
census income (0.9085 against 0.9087, none of the gap to the GBDT closed). The moving average then passed that rule
on every dataset (MovieLens watch +0.0027 and rating −0.0035 RMSE in every seed, census income +0.0018 (3/3),
demo like +0.0010 (3/3), worse in every seed nowhere) and became the default; its horizon (0.5 or 2 epochs)
decides little, because the warmup term of the decay governs the first 18 epochs (docs/ARCHITECTURE.md). Every
"our MMoE" run above was then trained again with the final default, so each row is one change against it; the
runs of the peers and the GBDT, which do not depend on our defaults, are the earlier ones (`--reuse`). The
synthetic table came last, every model trained with the final default in one run.

**ple_auto is the default although it breaks that rule once:** on census it costs never_married 0.0004 AUC in
every seed (the no_ple_auto row: +0.0004, 3/3) for +0.0130 on income in every seed, and with it both census tasks
meet the goal, income by 82 % of the torch-rechub → GBDT gap (0.9232; 9 % without it) and never_married still above
every peer. On demo and MovieLens it bins nothing, and its runs equal the no_ple_auto runs metric for metric and
epoch for epoch in every seed ("identical in every seed" above; likewise on the synthetic table). A streamed run fits its bins on a uniform sample
of up to 200,000 training rows, and `ranker retrain --warm-start` keeps CURRENT's choice of binned columns, so the
default works on every path.

What did not help, with the final default in place:

- `ple` (every column binned): census +0.0007 / +0.0001 (not in every seed), nothing on demo, MovieLens watch
  −0.0027 and like −0.0033 AUC in every seed, synthetic worse in every seed on both tasks, at 1.8-2.3× the time
  per epoch.
- `periodic`: census income −0.0104 in every seed (it replaces the bins of the money columns), demo like +0.0010
  (3/3), MovieLens like −0.0021 and both synthetic tasks worse in every seed, at 2-3× the time per epoch.
- `warmup_cosine`: synthetic task_b −0.0245 RMSE in every seed, but worse in every seed on census income
  (−0.0012) and demo click (−0.0054) and rating (+0.0110 RMSE); early stopping ends most runs long before the
  cosine decays.
- `cross`: census income +0.0007 and demo like +0.0039 in every seed, but MovieLens watch −0.0008, rating +0.0042
  RMSE and both synthetic tasks (+0.18 to +0.20 RMSE) worse in every seed, at 1.6-3× the time per epoch; it
  would also stop the first layer from splitting by input source (docs/ARCHITECTURE.md).
- `ema_short`: identical on MovieLens (the warmup term governs both horizons there), demo like −0.0006 and
  synthetic task_b +0.0117 RMSE in every seed, nothing on census.
- `no_ema` (the ablation): worse in every seed on census income (−0.0046), demo like (−0.0010), MovieLens watch
  (−0.0027) and rating (+0.0035 RMSE) and both synthetic tasks (+0.014 and +0.035 RMSE). Early stopping waits
  longer on the smoother average: census runs take 27 epochs instead of 17.

**The goal.** Met by the default on every task of every dataset: demo (the GBDT trails every neural model there),
the synthetic table (task_a 0.137 RMSE against torch-rechub's 0.290, task_b 0.148 against DeepCTR-Torch's 0.152,
a margin inside the seed spread of 0.017-0.026; the GBDT, at 1.2, cannot fit the sines of projections),
MovieLens (watch 0.8280 against torch-rechub's 0.8255, like 0.7118 against 0.7103, rating 1.0387 against 1.0442;
the GBDT trails everywhere) and census (income 0.9232 against 0.9087, 82 % of the 0.018 AUC gap to the GBDT closed;
never_married 0.9670 against 0.9668, 64 % of its 0.0003 gap). The GBDT still leads census income by 0.0033 AUC;
every report shows that line, so such a gap stays visible on a user's own data."""
