"""The drift report: a Markdown table (stdout, drift.md) and the same verdicts as JSON (drift.json)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from service.contract.files import atomic_write_bytes
from training.monitor.drift import ALERT, UNJUDGED, Drift, Thresholds

MARKDOWN_FILE, JSON_FILE = "drift.md", "drift.json"


def report_dict(title: dict, verdicts: list[Drift], th: Thresholds) -> dict:
    return {**title, "thresholds": asdict(th), "alerts": names(verdicts, ALERT),
            "unjudged": names(verdicts, UNJUDGED), "verdicts": [v.as_dict() for v in verdicts]}


def names(verdicts: list[Drift], status: str) -> list[str]:
    return [_label(v) for v in verdicts if v.status == status]


def markdown(report: dict) -> str:
    th = report["thresholds"]
    lines = [f"# Drift of {report['model_name']} (version {report['model_version']})", "",
             f"{report['rows']:,} rows of `{report['data']}`{report['filter']}; PSI warn at {th['psi_warn']}, "
             f"alert at {th['psi_alert']}; a rate alerts {th['rate_alert']:.0%} above its training share.", "",
             "| status | name | kind | rows | PSI | defaulted | OOV | clipped | note |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for v in report["verdicts"]:
        cells = [v["status"], v["name"], v["kind"], f"{v['rows']:,}", _num(v["psi"], "{:.3f}"),
                 _num(v["defaulted"], "{:.1%}"), _num(v["oov"], "{:.1%}"), _num(v["clipped"], "{:.1%}"), v["note"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(out: Path, report: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / MARKDOWN_FILE, markdown(report).encode())
    atomic_write_bytes(out / JSON_FILE, json.dumps(report, indent=2).encode())


def _label(v: Drift) -> str:
    return f"head {v.name}" if v.kind == "head" else v.name


def _num(value: float | None, fmt: str) -> str:
    return "" if value is None else fmt.format(value)
