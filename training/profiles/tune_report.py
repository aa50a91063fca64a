"""The tuner's report: held-out tables in Markdown, and the weights.yaml it writes."""

from __future__ import annotations

from pathlib import Path

import yaml

from training.profiles.tune import TuneResult


def render_markdown(result: TuneResult) -> str:
    names = [o.name for o in result.objectives]
    s, h = result.requests
    lines = [f"{result.trials} trials on {s:,} search requests; every number below is on the other "
             f"{h:,} (held-out) requests, mean [95 % bootstrap interval].", "",
             "| profile | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for p in result.current:
        lines.append(f"| `{p.name}` (current) | " + " | ".join(e.text() for e in p.holdout) + " |")
    for p in result.chosen:
        lines.append(f"| `{p.name}` (chosen) | " + " | ".join(e.text() for e in p.holdout) + " |")
    if result.chosen:
        lines += ["", "Chosen profiles against the current profile they must not fall below (paired, held-out):", "",
                  "| chosen | vs | " + " | ".join(f"Δ {n}" for n in names) + " | definition |",
                  "|---|---|" + "---|" * len(names) + "---|"]
        for p in result.chosen:
            lines.append(f"| `{p.name}` | `{p.based_on}` | " + " | ".join(_signed(d) for d in p.deltas)
                         + f" | {_definition(p.profile)} |")
    else:
        lines += ["", "No front point beats a current profile on one objective without losing on another "
                      "(search half): the current profiles are on the front."]
    lines += ["", f"Front: {len(result.front)} non-dominated profiles (search half)."]
    return "\n".join(lines) + "\n"


def _signed(e) -> str:
    if e.mean is None:
        return "n/a"
    ci = f" [{e.lo:+.4f}, {e.hi:+.4f}]" if e.lo is not None else ""
    return f"{e.mean:+.4f}{ci}"


def _definition(profile: dict[str, dict]) -> str:
    return ", ".join(f"{t} {v['weight']:g}·{v['transform']}" for t, v in profile.items())


def write_weights(path: Path, data: dict, header: str) -> Path:
    """weights.yaml with a comment header (how it was made); the caller checks it like a server."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    path.write_text("".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + body)
    return path
