"""One split's metrics as a table: the model's own heads, the heads as served, the constant baseline, the
skill over it, and the GBDT baseline with the model's lead. `ranker train`'s summary, `ranker evaluate`
and report.md all render these same rows (text or markdown), from `prediction_metrics` dicts.

    model      the graph's own head (what training, the baselines and the gates judge)
    served     the head as the server returns it, where calibration or smearing changes it
    constant   always predicting the training split's prevalence / mean (training/evaluation/constant.py)
    skill      1 - model / constant of a loss (log loss, RMSE): 0 = no better than the constant
    GBDT       the gradient-boosted trees baseline (training/evaluation/baseline.py); lead: + = the model is better
"""

from __future__ import annotations

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
