"""The experiment report's forms: Markdown (stdout and report.md), JSON (report.json) and a PNG of the
differences to control with their intervals (report.png)."""

from __future__ import annotations

import json
from pathlib import Path

REPORT_MD, REPORT_JSON, REPORT_PNG = "report.md", "report.json", "report.png"
VERDICT_COLORS = {"better": "tab:green", "worse": "tab:red", "no detectable difference": "tab:grey"}


def _interval(entry: dict, digits: int = 4, signed: bool = False) -> str:
    if entry["value"] is None:
        return "n/a"
    fmt = f"{'+' if signed else ''}.{digits}f"
    if entry["lo"] is None:
        return format(entry["value"], fmt)
    return f"{entry['value']:{fmt}} [{entry['lo']:{fmt}}, {entry['hi']:{fmt}}]"


def _lift(entry: dict) -> str:
    if entry["value"] is None:
        return "n/a"
    if entry["lo"] is None:
        return f"{entry['value']:+.1%}"
    return f"{entry['value']:+.1%} [{entry['lo']:+.1%}, {entry['hi']:+.1%}]"


def _srm_lines(report: dict) -> list[str]:
    srm = report["srm"]
    if srm is None:
        return ["Sample ratio: not checked (no configured shares: pass --weights FILE or --expected ARM=SHARE,...).", ""]
    shares = ", ".join(f"{a} {srm['observed'][a]:,} users / {s:g}" for a, s in srm["expected_share"].items())
    head = "**WARNING: SAMPLE RATIO MISMATCH.** " if srm["mismatch"] else ""
    return [f"{head}Sample ratio (users per arm vs configured share): {shares}; chi-square {srm['chi2']:.2f}, "
            f"p = {srm['p_value']:.3g} ({'below' if srm['mismatch'] else 'not below'} {srm['alpha']}).", ""]


def markdown(report: dict) -> str:
    """The report as Markdown: counts, the sample-ratio check, one table per task and one for NDCG."""
    what = {"arm": f"weights experiment `{report['experiment']}`", "model_version": "model versions",
            "model_role": "model roles"}[report["by"]]
    c = report["counts"]
    lines = [f"# Experiment report: {what}", "",
             f"Control: `{report['control']}`. Intervals: {report['confidence']:.0%}, bootstrap by user "
             f"({report['resamples']} resamples, seed {report['seed']}); a difference is a verdict only when its "
             "interval excludes 0.", ""]
    left = [f"{c['rows_read']:,} rows read", f"{c['shadow_rows']:,} shadow rows left out (not shown)"]
    if "excluded_rows_no_arm" in c:
        left.append(f"{c['excluded_requests_no_arm']:,} requests ({c['excluded_rows_no_arm']:,} rows) outside the "
                    "experiment (a named profile or no user key)")
    if c.get("other_experiment_rows"):
        left.append(f"{c['other_experiment_rows']:,} rows of other experiments")
    if c.get("rows_without_user_key"):
        left.append(f"{c['rows_without_user_key']:,} rows without a user key (each such request counted as a user)")
    window = report.get("window")
    span = f" from {window['start']} to {window['end']}" if window else ""
    lines += ["; ".join(left) + f"; {c['rows']:,} rows compared{span}.", ""]
    lines += [f"**warning:** {w}" if not w.startswith("SAMPLE") else f"**{w}**" for w in report["warnings"]]
    if report["warnings"]:
        lines.append("")
    lines += _srm_lines(report)
    arms = report["arms"]
    lines += ["| arm | users | requests | rows |", "|---|---:|---:|---:|"]
    lines += [f"| {a} | {e['users']:,} | {e['requests']:,} | {e['rows']:,} |" for a, e in arms.items()]
    lines.append("")
    tasks = next(iter(arms.values()))["tasks"] if arms else {}
    empty = [t for t in tasks if all(e["tasks"][t]["observed"] == 0 for e in arms.values())]
    if empty:
        lines += [f"No observed label in any arm: {', '.join(empty)}.", ""]
    for task in [*(t for t in tasks if t not in empty), "ndcg"]:
        if task == "ndcg":
            title, pick = f"NDCG@{report['ndcg_k']} of the served lists (by the logged labels, mean over users)", None
        else:
            kind = tasks[task]["kind"]
            better = "lower" if task in report["lower_better"] else "higher"
            title, pick = f"{task}: {kind} over observed rows ({better} is better)", task
        lines += [f"## {title}", "", "| arm | estimate [95 % CI] | observed | difference to control | lift | verdict |",
                  "|---|---|---:|---|---|---|"]
        for arm, e in arms.items():
            est = e["ndcg"] if pick is None else e["tasks"][pick]
            observed = f"{est['users']:,} users" if pick is None else f"{est['observed']:,}"
            if arm == report["control"]:
                lines.append(f"| {arm if arm == 'control' else f'{arm} (control)'} | {_interval(est)} | {observed} | | | |")
                continue
            cmp = report["comparisons"][arm][task]
            lines.append(f"| {arm} | {_interval(est)} | {observed} | {_interval(cmp['difference'], signed=True)} | "
                         f"{_lift(cmp['lift'])} | **{cmp['verdict']}** |")
        lines.append("")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    """One panel per task (and NDCG): each arm's difference to control with its 95 % interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    others = list(report["comparisons"])
    stats = list(next(iter(report["comparisons"].values()))) if others else []
    fig, axes = plt.subplots(1, max(1, len(stats)), figsize=(3.2 * max(1, len(stats)), 0.6 * len(others) + 1.6),
                             squeeze=False)
    for ax, stat in zip(axes[0], stats, strict=False):
        for y, arm in enumerate(others):
            cmp = report["comparisons"][arm][stat]
            d = cmp["difference"]
            if d["value"] is None:
                ax.text(0, y, "nothing observed", ha="center", va="center", fontsize=8, color="grey")
                continue
            lo, hi = d["lo"] if d["lo"] is not None else d["value"], d["hi"] if d["hi"] is not None else d["value"]
            ax.errorbar(d["value"], y, xerr=[[d["value"] - lo], [hi - d["value"]]], fmt="o", capsize=4,
                        color=VERDICT_COLORS.get(cmp["verdict"], "grey"))
        ax.set_ylim(-0.6, len(others) - 0.4)
        ax.axvline(0, color="grey", lw=1)
        ax.set_yticks(range(len(others)), others)
        ax.set_title(f"NDCG@{report['ndcg_k']}" if stat == "ndcg" else stat, fontsize=10)
        ax.set_xlabel(f"difference to {report['control']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(report: dict, out: Path) -> dict[str, Path]:
    """report.md, report.json and report.png in `out` (created)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / REPORT_MD, "json": out / REPORT_JSON, "plot": out / REPORT_PNG}
    paths["markdown"].write_text(markdown(report) + "\n")
    paths["json"].write_text(json.dumps(report, indent=1) + "\n")
    plot(report, paths["plot"])
    return paths
