"""The ranking head against LambdaMART (issue 22): test NDCG@10 on two datasets, several seeds, and what the
head costs an epoch, side by side in one run.

Each (dataset, seed) trains twice through the normal path (`training.fit.train.train`, eval.baseline on):
the spec as a user gets it (with its default ranking head) and the same spec without it
(`RankerSpec.without_ranking`). From the first run: the ranking head's NDCG (the default score), the
pointwise heads' NDCG (the spec's pointwise score), and the baselines the run fits beside it (LightGBM
LambdaMART on the gain, the pointwise GBDT). From the second: the pointwise model as it was before the
head, its per-task metrics and its epoch time.

    demo        configs/demo.yaml on the demo generator's rows (requests as generated; gain click + like)
    movielens   bench/quality/specs/movielens.yaml with per-user requests (data.request_id: user_id; the
                later 10 % of time held out), gain like (unwatched rows 0), as the issue measured

    .venv/bin/python -m bench.quality.ranking                        # full: 3 seeds; writes docs/BENCHMARKS.md "ranking"
    .venv/bin/python -m bench.quality.ranking --smoke --no-write-doc # tiny data, 1 seed, 1 epoch
    .venv/bin/python -m bench.quality.ranking --replot               # the section again from bench/results/ranking.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import tempfile
from pathlib import Path

import numpy as np

from bench.doc_sections import write_section
from bench.quality.common import provenance

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results" / "ranking.json"
SECTION = "ranking"
COMMAND = ".venv/bin/python -m bench.quality.ranking"
SCORERS = ("ranking head", "pointwise heads", "LambdaMART", "pointwise GBDT", "pointwise model (no head)")


def dataset(name: str, smoke: bool, work: Path) -> tuple[Path, str, dict]:
    """(spec path, data path, spec overrides) of one dataset."""
    if name == "demo":
        from bench.training.train_scale import CACHE, demo_data

        return REPO / "configs" / "demo.yaml", str(demo_data(5_000 if smoke else 200_000, CACHE)), {}
    from bench.quality.movielens import SPEC, data_path

    # Per-user requests and the default score (the ranking head): the spec's own score is the pointwise one.
    return SPEC, data_path(smoke), {"request_id": "user_id", "score_weights": None}


def job(args: tuple[str, str, dict, int, bool, bool]) -> dict:
    """One training run (a spawned worker, one torch thread): its NDCGs, task metrics and epoch times."""
    import torch

    from training.evaluation import inference
    from training.evaluation.metrics import ndcg_at_k
    from training.evaluation.served import gains
    from training.fit.train import train
    from training.spec import load_spec

    torch.set_num_threads(1)
    spec_path, data, overrides, seed, with_head, smoke = args
    spec = load_spec(spec_path, data_path=data)
    spec.data.request_id = overrides.get("request_id", spec.data.request_id)
    if "score_weights" in overrides:
        spec.eval.score_weights = overrides["score_weights"]
    spec = spec.model_validate(spec.model_dump())  # the default ranking head, now that the requests are known
    if not with_head:
        spec = spec.without_ranking()
    spec.train.seed, spec.train.threads, spec.eval.baseline = seed, 1, "gbdt" if with_head else "none"
    if smoke:
        spec.train.epochs = 1
    trained = train(spec, progress=False, eval_test=True)
    test, k = trained.prepared.test, f"ndcg@{spec.eval.ndcg_k}"
    preds = inference.predict(inference.export_heads(trained.model, spec, trained.prepared.scalers), test)
    names = spec.task_names()

    def ndcg(weights: dict[str, float]) -> float:
        score = sum(w * preds[:, names.index(t)] for t, w in weights.items())
        return ndcg_at_k(test.request, np.asarray(score, np.float64), gains(spec, test.raw_labels), spec.eval.ndcg_k)

    out = {"seed": seed, "head": with_head, "epochs": len(trained.history),
           "epoch_seconds": statistics.median(e["seconds"] for e in trained.history),
           "tasks": {t: {m: v for m, v in trained.metrics["test"]["tasks"][t].items() if m in ("auc", "rmse")}
                     for t in (t.name for t in spec.label_tasks())}}
    if with_head:
        out["ranking head"] = ndcg(spec.score_weights())
        out["pointwise heads"] = ndcg(spec.pointwise_score_weights())
        out["LambdaMART"] = trained.baseline["lambdamart"]["test"][k]
        out["pointwise GBDT"] = trained.baseline["test"][k]
    else:
        out["pointwise model (no head)"] = ndcg(spec.score_weights())
    return out


def measure(ns: argparse.Namespace) -> dict:
    seeds = list(range(1 if ns.smoke else ns.seeds))
    results: dict = {"provenance": provenance(COMMAND + (" --smoke" if ns.smoke else "")), "datasets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        sets = {name: dataset(name, ns.smoke, Path(tmp)) for name in ns.datasets}
        jobs = [(str(spec), data, over, seed, head, ns.smoke) for name, (spec, data, over) in sets.items()
                for seed in seeds for head in (True, False)]  # with and without the head interleaved
        with mp.get_context("spawn").Pool(ns.workers) as pool:
            records = pool.map(job, jobs, chunksize=1)
    for (spec, _, _, _, _, _), record in zip(jobs, records, strict=True):
        name = next(n for n, (s, _, _) in sets.items() if str(s) == spec)
        results["datasets"].setdefault(name, []).append(record)
    return results


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def _verdict(lead: list[float]) -> str:
    """'ahead' / 'behind' when the paired mean is more than two standard errors from 0, else 'within noise'."""
    if len(lead) < 2:
        return "one seed: no verdict"
    se = statistics.stdev(lead) / len(lead) ** 0.5
    mean = statistics.mean(lead)
    return "ahead" if mean > 2 * se else "behind" if mean < -2 * se else "within noise"


def render(results: dict) -> str:
    lines = ["## Ranking: the ranking head against LambdaMART", "", results["provenance"], "",
             "Test NDCG@10, mean ± sd over seeds (each value: one seed's run). The ranking head is the default "
             "score of a spec with requests; LambdaMART and the pointwise GBDT are the baselines the same run "
             "fits (eval.baseline) on the same encoded features, split and gain. The lambdarank loss is "
             "pairwise, O(L²) per list: the demo's requests hold about 10 rows, MovieLens's per-user lists up to "
             "a batch (1,024 rows, the pieces a long request is cut into), which is where its epoch cost comes "
             "from.", ""]
    for name, records in results["datasets"].items():
        head = [r for r in records if r["head"]]
        plain = [r for r in records if not r["head"]]
        by = {s: [r[s] for r in records if s in r] for s in SCORERS}
        lines += [f"**{name}** ({len(head)} seeds)", "", "| scorer | test NDCG@10 | per seed |", "|---|---|---|"]
        lines += [f"| {s} | {_mean_sd(v)} | {', '.join(f'{x:.4f}' for x in v)} |" for s, v in by.items() if v]
        lead = [a["ranking head"] - a["LambdaMART"] for a in head]
        ratio = statistics.median(a["epoch_seconds"] / b["epoch_seconds"] for a, b in zip(head, plain, strict=True))
        lines += ["", f"Ranking head − LambdaMART, paired by seed: {_mean_sd(lead)} ({_verdict(lead)}). "
                  f"Epoch time with the head / without (median over seeds, runs interleaved): {ratio:.2f}x.", ""]
        tasks = head[0]["tasks"]
        lines += ["| task metric (test) | with the ranking head | without |", "|---|---|---|"]
        for t, metrics in tasks.items():
            for m in metrics:
                lines.append(f"| {t} {m} | {_mean_sd([r['tasks'][t][m] for r in head])} | "
                             f"{_mean_sd([r['tasks'][t][m] for r in plain])} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["demo", "movielens"], choices=["demo", "movielens"])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--write-doc", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--replot", action="store_true")
    ns = p.parse_args(argv)
    results = json.loads(RESULTS.read_text()) if ns.replot else measure(ns)
    text = render(results)
    print(text)
    if ns.write_doc:
        if not ns.replot:
            RESULTS.write_text(json.dumps(results, indent=1))
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
