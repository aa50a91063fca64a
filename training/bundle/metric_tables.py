"""One split's metrics as a table: the model's own heads, the heads as served, the constant baseline, the
skill over it, and the GBDT baseline with the model's lead. `ranker train`'s summary, `ranker evaluate`
and report.md all render these same rows (text or markdown), from `prediction_metrics` dicts.

    model      the graph's own head (what training, the baselines and the gates judge)
    served     the head as the server returns it, where calibration or smearing changes it
    constant   always predicting the training split's prevalence / mean (training/evaluation/constant.py)
    skill      1 - model / constant of a loss (log loss, RMSE): 0 = no better than the constant
    GBDT       the gradient-boosted trees baseline (training/evaluation/baseline.py); lead: + = the model is better

Under the table, one line compares the ranking with the LambdaMART baseline (training/evaluation/lambdamart.py):
its NDCG@k and the model's lead, and the served profiles' leads; `lambdamart_warnings` says where it is ahead.
"""

from __future__ import annotations

from training.evaluation.baseline import split_baseline
from training.evaluation.lambdamart import NAME as RANKER_NAME
from training.evaluation.lambdamart import WHAT as RANKER_WHAT
from training.evaluation.lambdamart import relevance_text
from training.spec import RankerSpec

KEYS = ("auc", "log_loss", "rmse", "rmse_log1p", "ndcg")
BASELINE_NAME = "GBDT"


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def lead(key: str, model: float | None, baseline: float | None) -> float | None:
    """How far the model is ahead of the baseline: + = better (higher AUC or NDCG, lower loss)."""
    if model is None or baseline is None:
        return None
    return baseline - model if key.startswith(("rmse", "log_loss")) else model - baseline


def _lead_text(key: str, model: float | None, baseline: float | None) -> str:
    d = lead(key, model, baseline)
    return "n/a" if d is None else f"{d:+.4f}"


def columns(metrics: dict, baseline: dict | None) -> list[str]:
    """The table's header: only the columns this split has values for."""
    tasks = metrics["tasks"].values()
    return ["task", "metric", "model", *(["served"] if any("served" in m for m in tasks) else []),
            *(["constant", "skill"] if any("constant" in m for m in tasks) else []),
            *([BASELINE_NAME, "lead"] if baseline else []), "observed"]


def split_rows(metrics: dict, spec: RankerSpec, baseline: dict | None = None) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per task metric of one split, then the ranking row."""
    header = columns(metrics, baseline)
    rows = []
    for t in spec.tasks:
        if t.listwise or t.name not in metrics["tasks"]:
            continue
        m, b = metrics["tasks"][t.name], (baseline or {}).get("tasks", {}).get(t.name, {})
        for i, key in enumerate(k for k in KEYS if k in m):
            cell = {"task": t.name, "metric": f"ndcg@{spec.eval.ndcg_k}" if key == "ndcg" else key, "model": _fmt(m[key]),
                    "served": _fmt(m["served"][key]) if "served" in m else "=",
                    "constant": _fmt(m["constant"][key]) if "constant" in m else "n/a",
                    "skill": f"{m['skill'][key]:+.4f}" if key in m.get("skill", {}) else "",
                    BASELINE_NAME: _fmt(b.get(key)), "lead": _lead_text(key, m[key], b.get(key)),
                    "observed": f"{m['observed']:,}" if i == 0 else ""}
            rows.append([cell[c] for c in header])
    k = f"ndcg@{spec.eval.ndcg_k}"
    if metrics.get(k) is not None or (baseline or {}).get(k) is not None:
        b = (baseline or {}).get(k)
        cell = {"task": "(ranking)", "metric": k, "model": _fmt(metrics.get(k)), BASELINE_NAME: _fmt(b),
                "lead": _lead_text(k, metrics.get(k), b), "observed": f"{metrics['rows']:,}"}
        rows.append([cell.get(c, "") for c in header])
    return header, rows


def behind(metrics: dict, baseline: dict, spec: RankerSpec) -> list[str]:
    """The task metrics where the GBDT is ahead of the model ("click auc", ...)."""
    header, rows = split_rows(metrics, spec, baseline)
    at = header.index("lead")
    return [f"{r[0]} {r[1]}" for r in rows if r[at].startswith("-")]


def ranker_of(baseline: dict | None) -> dict | None:
    """The LambdaMART part of one split's baselines (split_baseline), or None."""
    return (baseline or {}).get("lambdamart")


def profile_leads(metrics: dict, baseline: dict | None, spec: RankerSpec) -> dict[str, float | None]:
    """profile -> how far its served NDCG@k is ahead of LambdaMART's (+ = the profile ranks better)."""
    if (ranker := ranker_of(baseline)) is None:
        return {}
    k = f"ndcg@{spec.eval.ndcg_k}"
    return {p: lead(k, v, ranker.get(k)) for p, v in (metrics.get("profiles") or {}).items()}


def ranker_line(metrics: dict, baseline: dict | None, spec: RankerSpec) -> str | None:
    """The line under a split's table: LambdaMART's NDCG@k and the model's lead over it (None without it)."""
    if (ranker := ranker_of(baseline)) is None:
        return None
    k = f"ndcg@{spec.eval.ndcg_k}"
    levels = relevance_text(ranker.get("relevance") or {})
    return (f"{RANKER_NAME} ({RANKER_WHAT}, same features, split and gain{f'; {levels}' if levels else ''}; "
            f"{ranker.get('iterations')} trees): {k} {_fmt(ranker.get(k))}, the model's lead "
            f"{_lead_text(k, metrics.get(k), ranker.get(k))}")


def _ahead_by(d: float | None) -> float | None:
    """How far LambdaMART is ahead, when it is by at least the 4th decimal shown (else None)."""
    return -d if d is not None and round(d, 4) < 0 else None


def lambdamart_warnings(metrics: dict, baseline: dict | None, spec: RankerSpec, where: str) -> list[str]:
    """Where LambdaMART ranks better than the model on one split (`where`, e.g. "valid"): the model's own
    NDCG@k, and the served profiles (metrics["profiles"]) that trail it."""
    if (ranker := ranker_of(baseline)) is None:
        return []
    k = f"ndcg@{spec.eval.ndcg_k}"
    out = []
    if (by := _ahead_by(lead(k, metrics.get(k), ranker.get(k)))) is not None:
        out.append(f"the {RANKER_NAME} baseline ({RANKER_WHAT}) is ahead on {k} by {by:.4f} ({where})")
    trailing = {p: by for p, d in profile_leads(metrics, baseline, spec).items() if (by := _ahead_by(d)) is not None}
    if trailing:
        out.append(f"served profiles behind the {RANKER_NAME} baseline ({RANKER_WHAT}) on {k} ({where}): "
                   + ", ".join(f"{p} by {by:.4f}" for p, by in trailing.items()))
    return out


def run_lambdamart_warnings(m: dict, spec: RankerSpec) -> list[str]:
    """lambdamart_warnings of every measured split of a run's metrics (the manifest's, or the torch model's)."""
    return [w for split in ("valid", "test") if split in m
            for w in lambdamart_warnings(m[split], split_baseline(m.get("baseline"), split), spec, split)]


def text_table(header: list[str], rows: list[list[str]], width: int) -> str:
    """Fixed-width lines for a terminal (the task column `width` wide)."""
    def line(cells: list[str]) -> str:
        return f"{cells[0]:<{width}}{cells[1]:<12}" + "".join(f"{c:>11}" for c in cells[2:])
    return "\n".join([line(header), *(line(r) for r in rows)])


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def legend(metrics: dict, baseline: dict | None) -> str:
    """What the columns shown mean, in one sentence."""
    header = columns(metrics, baseline)
    parts = ["model: the graph's own heads"]
    if "served" in header:
        parts.append("served: as the server returns them (calibrated; = where unchanged)")
    if "constant" in header:
        parts.append("constant: always predicting the training prevalence or mean; skill: 1 - model / constant")
    if baseline:
        parts.append(f"{BASELINE_NAME}: gradient-boosted trees on the same features and split (eval.baseline); "
                     "lead: + = the model is better")
    return "; ".join(parts) + "."
