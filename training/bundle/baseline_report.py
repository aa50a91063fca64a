"""The model beside its GBDT baseline (training/evaluation/baseline.py), for report.md, the training
summary and `ranker evaluate`: per task metric, both values and the model's lead."""

from __future__ import annotations

from training.spec import RankerSpec

KEYS = ("auc", "rmse", "rmse_log1p")


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def lead(key: str, model: float | None, baseline: float | None) -> float | None:
    """How far the model is ahead of the baseline: + = better (higher AUC, lower RMSE)."""
    if model is None or baseline is None:
        return None
    return baseline - model if key.startswith("rmse") else model - baseline


def comparison_rows(model: dict, baseline: dict, spec: RankerSpec) -> list[list[str]]:
    """[task, metric, model, GBDT, lead] per task metric of one split (prediction_metrics dicts)."""
    rows = []
    for t in spec.tasks:
        m, b = model["tasks"][t.name], baseline["tasks"][t.name]
        for key in KEYS:
            if key in m:
                d = lead(key, m[key], b.get(key))
                rows.append([t.name, key, _fmt(m[key]), _fmt(b.get(key)), "n/a" if d is None else f"{d:+.4f}"])
    k = f"ndcg@{spec.eval.ndcg_k}"
    if model.get(k) is not None or baseline.get(k) is not None:
        d = lead("ndcg", model.get(k), baseline.get(k))
        rows.append(["(ranking)", k, _fmt(model.get(k)), _fmt(baseline.get(k)), "n/a" if d is None else f"{d:+.4f}"])
    return rows


def behind(model: dict, baseline: dict, spec: RankerSpec) -> list[str]:
    """The task metrics where the GBDT is ahead of the model."""
    return [f"{r[0]} {r[1]}" for r in comparison_rows(model, baseline, spec) if r[4].startswith("-")]


def report_section(metrics: dict, baseline: dict, spec: RankerSpec) -> list[str]:
    """report.md lines: one table per evaluated split."""
    lines = ["## Baseline: the model vs gradient-boosted trees", "",
             f"One scikit-learn HistGradientBoosting model per task on the same encoded features and split "
             f"(`eval.baseline`), fitted in {baseline['seconds']:.1f} s. Lead: the model's metric minus the "
             "GBDT's (+ = the model is better; for RMSE the reduction).", ""]
    for split in [s for s in ("valid", "test") if s in metrics and s in baseline]:
        rows = comparison_rows(metrics[split], baseline[split], spec)
        lines += [f"{split} split:", "", "| task | metric | model | GBDT | lead |", "|---|---|---|---|---|",
                  *("| " + " | ".join(r) + " |" for r in rows), ""]
        if worse := behind(metrics[split], baseline[split], spec):
            lines += [f"The GBDT is ahead on {', '.join(worse)} ({split}).", ""]
    return lines


def text_table(model: dict, baseline: dict, spec: RankerSpec, width: int) -> str:
    """Fixed-width lines for a terminal: the model beside the GBDT on one split."""
    lines = [f"{'task':<{width}}{'metric':<12}{'model':>10}{'GBDT':>10}{'lead':>10}"]
    lines += [f"{r[0]:<{width}}{r[1]:<12}{r[2]:>10}{r[3]:>10}{r[4]:>10}" for r in comparison_rows(model, baseline, spec)]
    return "\n".join(lines)
