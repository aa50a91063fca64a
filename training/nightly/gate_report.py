"""The report of one retrain run: JSON for machines (`ranker registry list`), Markdown for people.

Both are stored inside the published version (gate_report.json, gate_report.md) and in the job's
work directory, so a rejected or unpublished run is explained too.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.registry import REPORT_JSON, REPORT_MD
from training.fit.train import Trained
from training.nightly.gates import GateResult
from training.spec import RankerSpec


def decision_of(results: list[GateResult], not_published: str | None, canary: dict | None = None) -> str:
    if not_published:
        return "not published"
    if not all(r.passed for r in results):
        return "rejected"
    return "canary" if canary is not None else "promoted"


def build_report(*, results: list[GateResult], trained: Trained, version: int | None, started_at: datetime,
                 spec: RankerSpec, opts: Any, current: Any, warm_start: dict | None,
                 weights: dict | None = None, not_published: str | None = None,
                 holdout_overlap: str | None = None, test_metrics: dict | None = None,
                 canary: dict | None = None) -> dict:
    """A JSON-ready account of the run (see docs/OPERATIONS.md for the fields)."""
    finished = datetime.now(UTC)
    splits = trained.prepared.splits
    holdout = splits.holdout_name()
    ts = spec.data.timestamp
    holdout_range = splits.time_range(holdout, ts) if ts else None
    measured = test_metrics if test_metrics is not None else trained.metrics.get("test", {})  # the bundle's, else torch's
    test_metrics = {k: v for k, v in measured.items() if k not in ("gates", "gates_by_level")}
    return {
        "format": 1,
        "model_name": spec.name,
        "decision": decision_of(results, not_published, canary),
        "canary": canary,  # {share, mode}: a passing candidate started a canary beside CURRENT instead of promoting
        "version": version,
        "current_before": current.version,
        "compared_with": current.version if current.bundle is not None else None,
        "notes": [n for n in (current.note, not_published) if n],
        "started_at": started_at.isoformat(),
        "finished_at": finished.isoformat(),
        "seconds": round((finished - started_at).total_seconds(), 1),
        "window": {"start": spec.data.start, "end": spec.data.end, "partitions": list(opts.partitions),
                   "data": spec.data.path},
        "rows": {s: splits.rows(s) for s in ("train", "valid", "test")},
        "holdout": {"rows": splits.rows(holdout), "split": holdout, "method": splits.method,
                    "start": holdout_range[0].isoformat() if holdout_range else None,
                    "end": holdout_range[1].isoformat() if holdout_range else None,
                    "overlap": holdout_overlap},
        "warm_start": warm_start,
        "weights": weights,  # the weights file the profile gates ranked by: source, sha256, profiles
        "gates": [r.to_dict() for r in results],
        "failed": [f"{r.gate}:{r.subject}" for r in results if not r.passed],
        "candidate_test_metrics": test_metrics,
    }


def _num(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:,.0f}"


def _signed(x: float | None) -> str:
    return "n/a" if x is None else ("+" if x >= 0 else "") + f"{x:.4g}"


def failure_summary(report: dict, limit: int | None = None) -> str:
    """One line: which gates failed and by how much (`ranker registry list` shows the first few)."""
    failed = [g for g in report["gates"] if not g["passed"]]
    if not failed:
        return f"all {len(report['gates'])} gates passed"
    parts = [f"{g['gate']}:{g['subject']} {_num(g['value'])} {g['op']} {_num(g['threshold'])} "
             f"(by {_signed(g['margin'])})" if g["value"] is not None else f"{g['gate']}:{g['subject']} n/a"
             for g in failed]
    more = f"; +{len(parts) - limit} more" if limit is not None and len(parts) > limit else ""
    return f"{len(failed)} of {len(report['gates'])} gates failed: " + "; ".join(parts[:limit]) + more


def holdout_text(holdout: dict) -> str:
    """Where the holdout rows came from: their time range, or (no timestamp) how the split chose them."""
    split = holdout.get("split", "test")
    if holdout.get("start") is not None:
        return f"{split} split, {holdout['start']} .. {holdout['end']}"
    method = holdout.get("method", "")
    if method.startswith("from files"):
        return f"no timestamp: the spec's {split} file"
    if method.startswith("at random"):
        return f"no timestamp: {split} split drawn {method} (data.seed)"
    return f"no timestamp: {split} split {method}".rstrip()


def render_gate_report(report: dict) -> str:
    version = f"v{report['version']}" if report["version"] is not None else "(not published)"
    base = report["compared_with"]
    lines = [
        f"# Retrain report: {report['model_name']} {version} — {report['decision'].upper()}",
        "",
        f"- Decision: **{report['decision']}** — {failure_summary(report)}",
        f"- Compared with: {f'CURRENT v{base}' if base is not None else 'nothing (absolute floors)'}, "
        f"on the same {report['holdout']['rows']:,} holdout rows ({holdout_text(report['holdout'])})",
        f"- Window: start {report['window']['start'] or '-'}, end {report['window']['end'] or '-'}"
        + (f", partitions {report['window']['partitions']}" if report["window"]["partitions"] else "")
        + f"; rows train/valid/test {report['rows']['train']:,}/{report['rows']['valid']:,}/{report['rows']['test']:,}",
        f"- Run: {report['started_at']} .. {report['finished_at']} ({report['seconds']} s)",
    ]
    if report["warm_start"]:
        w = report["warm_start"]
        lines.append(f"- Warm start from v{w['from_version']}: {w['copied_tensors']} tensors copied, "
                     f"embedding rows carried over {w['embedding_rows_mapped']}, skipped {w['skipped_tensors'] or 'none'}")
    if report.get("weights"):
        w = report["weights"]
        lines.append(f"- Profiles ranked by: {', '.join(w['profiles'])} from `{w['source']}` (sha256 {w['sha256'][:12]})")
    if report.get("canary") and report["decision"] == "canary":
        c, v = report["canary"], report["version"]
        who = ("scores every request in the shadow" if c["mode"] == "shadow"
               else f"serves {c['share']:.4g} of users")
        lines.append(f"- Canary: v{v} {who} beside CURRENT v{report['current_before']} (not promoted); "
                     f"`ranker registry promote {v}` or `ranker registry abort`")
    lines += [f"- Note: {n}" for n in report["notes"]]
    if report["holdout"].get("overlap"):
        lines.append(f"- **WARNING: {report['holdout']['overlap']}** (run with --allow-holdout-overlap: the metric "
                     "gates compare CURRENT on rows it may have trained on)")
    lines += ["", "| gate | head | value | threshold | result | margin | detail |", "|---|---|---|---|---|---|---|"]
    for g in report["gates"]:
        lines.append(f"| {g['gate']} | {g['subject']} | {_num(g['value'])} | {g['op']} {_num(g['threshold'])} | "
                     f"{'pass' if g['passed'] else '**FAIL**'} | {_signed(g['margin'])} | {g['detail']} |")
    return "\n".join(lines) + "\n"


def write_gate_report(work_dir: Path, report: dict) -> None:
    work_dir = Path(work_dir)
    (work_dir / REPORT_JSON).write_text(json.dumps(report, indent=2))
    (work_dir / REPORT_MD).write_text(render_gate_report(report))
