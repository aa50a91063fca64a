"""`ranker replay`: what each profile does on logged requests, in the numbers operators speak in.

Per profile and per task with a label in the log:
    ndcg@k:<task>    NDCG@k with the task's label as the gain
    yield@k:<task>   the mean label among the top k (clicks, seconds watched, likes, stars per slot)
    seen_ndcg@k:<task>  (on request, e.g. as a tune objective) NDCG@k among the rows whose label was
                     observed: likes among clicked items, free of the click that revealed them
each a mean over requests with a bootstrap 95 % interval. Two bounds sit beside them: `random`
(the expected value of a uniformly random order, exact) and `oracle` (each metric's best order:
by that task's own label).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from service.profiles import CompiledWeights
from training.evaluation import ranking as R
from training.profiles.logs import ScoredLog
from training.profiles.stats import RESAMPLES, Estimate, estimate

METRIC_KINDS = ("ndcg", "yield")
_METRIC = re.compile(r"^(ndcg|seen_ndcg|yield)@(\d+):([A-Za-z0-9_.-]+)$")


@dataclass(frozen=True)
class Metric:
    """A replay metric, written `ndcg@10:click` or `yield@10:watch_time`."""

    kind: str
    k: int
    task: str

    @property
    def name(self) -> str:
        return f"{self.kind}@{self.k}:{self.task}"

    @classmethod
    def parse(cls, text: str) -> Metric:
        m = _METRIC.match(text.strip())
        if m is None or int(m.group(2)) < 1:
            raise ValueError(f"{text!r} is not a metric; write ndcg@K:TASK, seen_ndcg@K:TASK or yield@K:TASK, "
                             "e.g. ndcg@10:click")
        return cls(m.group(1), int(m.group(2)), m.group(3))

    def per_request(self, log: ScoredLog, scores: np.ndarray) -> np.ndarray:
        """(R,) the metric of the order by `scores` on each request."""
        labels = log.labels[self.task]
        if self.kind == "ndcg":
            return R.ndcg(log.requests, scores, labels, self.k)
        if self.kind == "seen_ndcg":
            return R.seen_ndcg(log.requests, scores, labels, self.k)
        return R.topk_yield(log.requests, scores, labels, self.k)

    def random(self, log: ScoredLog) -> np.ndarray:
        labels = log.labels[self.task]
        if self.kind == "ndcg":
            return R.random_ndcg(log.requests, labels, self.k)
        if self.kind == "seen_ndcg":
            sub, seen = R.observed_only(log.requests, labels)
            return R.random_ndcg(sub, labels[seen], self.k)
        return R.random_yield(log.requests, labels)

    def oracle(self, log: ScoredLog) -> np.ndarray:
        return self.per_request(log, R.gains_of(log.labels[self.task]))


def default_metrics(log: ScoredLog, k: int) -> list[Metric]:
    """NDCG@k and yield@k for every task with labels in the log."""
    return [Metric(kind, k, task) for kind in METRIC_KINDS for task in log.labels]


def check_metrics(metrics: list[Metric], log: ScoredLog) -> None:
    """ValueError naming a metric whose task has no label column in the log."""
    for m in metrics:
        if m.task not in log.labels:
            raise ValueError(f"{m.name}: the log has no label for task {m.task!r} (labels: {sorted(log.labels)})")


@dataclass
class ReplayResult:
    """Estimates per row (a profile name, or 'random' / 'oracle') and metric name."""

    metrics: list[Metric]
    rows: dict[str, dict[str, Estimate]]
    requests: int
    impressions: int
    bounds: tuple[str, ...] = ("random", "oracle")

    def to_dict(self) -> dict:
        return {"requests": self.requests, "impressions": self.impressions,
                "metrics": [m.name for m in self.metrics],
                "profiles": {p: {m: e.to_dict() for m, e in row.items()} for p, row in self.rows.items()
                             if p not in self.bounds},
                "bounds": {p: {m: e.to_dict() for m, e in row.items()} for p, row in self.rows.items()
                           if p in self.bounds}}


def replay(log: ScoredLog, weights: CompiledWeights, profiles: list[str], metrics: list[Metric],
           resamples: int = RESAMPLES, seed: int = 0) -> ReplayResult:
    """Every profile's metrics on the log, plus the random and oracle bounds."""
    check_metrics(metrics, log)
    rows: dict[str, dict[str, Estimate]] = {}
    for name in profiles:
        scores = log.scores(weights.profiles[name])
        rows[name] = {m.name: estimate(m.per_request(log, scores), resamples, seed) for m in metrics}
    for bound, per_request in (("random", Metric.random), ("oracle", Metric.oracle)):
        rows[bound] = {m.name: estimate(per_request(m, log), resamples, seed) for m in metrics}
    return ReplayResult(metrics, rows, requests=len(log.requests), impressions=len(log))


def render_markdown(result: ReplayResult, title: str = "") -> str:
    """The replay table as Markdown: one row per profile and bound, `mean [lo, hi]` per metric."""
    head = [title, ""] if title else []
    names = [m.name for m in result.metrics]
    lines = ["| profile | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for row, values in result.rows.items():
        label = f"*{row}*" if row in result.bounds else f"`{row}`"
        lines.append(f"| {label} | " + " | ".join(values[n].text() for n in names) + " |")
    foot = ["", f"{result.requests:,} requests, {result.impressions:,} impressions; 95 % bootstrap intervals "
            "over requests; *random* = expected value of a random order, *oracle* = ordered by that metric's "
            "own label."]
    return "\n".join(head + lines + foot) + "\n"


def render_rich(result: ReplayResult, title: str, echo: Callable[[object], None]) -> None:
    """The replay table for a terminal (rich)."""
    from rich.table import Table

    table = Table(title=title, caption=f"{result.requests:,} requests; 95 % bootstrap CI over requests; "
                                       "random/oracle = bounds")
    table.add_column("profile", style="bold")
    for m in result.metrics:
        table.add_column(m.name, justify="right")
    for row, values in result.rows.items():
        style = "dim" if row in result.bounds else None
        table.add_row(row, *(_cell(values[m.name]) for m in result.metrics), style=style)
    echo(table)


def _cell(e: Estimate) -> str:
    if e.mean is None:
        return "n/a"
    digits = 4 if abs(e.mean) < 10 else 1
    if e.lo is None:
        return f"{e.mean:.{digits}f}"
    return f"{e.mean:.{digits}f}\n[{e.lo:.{digits}f}, {e.hi:.{digits}f}]"
