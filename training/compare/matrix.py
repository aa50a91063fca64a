"""The help/hurt matrix: rows are the single-task targets' metrics, columns the multi-task variants (the
spec's model, each pair); a cell is the variant's paired gain over that task's single-task model."""

from __future__ import annotations

from dataclasses import dataclass

from training.compare.stats import Verdict, mean_std, paired_gains, verdict
from training.compare.variants import Variant, single


@dataclass(frozen=True)
class Row:
    """One task's metric: its key (auc, rmse, rmse_log1p) and direction."""

    task: str
    metric: str
    lower_is_better: bool

    def label(self) -> str:
        return f"{self.task} {self.metric.upper().replace('_LOG1P', ' (log1p)')} {'↓' if self.lower_is_better else '↑'}"


@dataclass
class Matrix:
    """The help/hurt matrix: a verdict per (task, multi-task variant) that trains the task."""

    rows: list[Row]
    columns: list[str]  # multi-task variant names
    cells: dict[tuple[str, str], Verdict]  # (task, column) -> verdict; absent where the column lacks the task

    def words(self) -> dict[str, dict[str, str]]:
        """column -> task -> verdict word, for the cells that exist."""
        return {c: {r.task: self.cells[r.task, c].word for r in self.rows if (r.task, c) in self.cells}
                for c in self.columns}


def by_seed(records: list[dict], variant: str, task: str) -> dict[int, float | None]:
    """seed -> the task's metric in the runs of one variant."""
    return {r["seed"]: r["metrics"].get(task) for r in records if r["variant"] == variant}


def help_hurt(records: list[dict], rows: list[Row], variants: list[Variant]) -> Matrix:
    """Each multi-task variant (not the single-task ones) against each of its tasks' single-task model, paired
    by seed; a cell exists where the variant trains the task (every task for the spec's model)."""
    columns = [v.name for v in variants if v.kind != "single"]
    cells = {}
    for v in variants:
        if v.kind == "single":
            continue
        for row in rows:
            if v.tasks is not None and row.task not in v.tasks:
                continue
            base = by_seed(records, single(row.task).name, row.task)
            cells[row.task, v.name] = verdict(paired_gains(by_seed(records, v.name, row.task), base,
                                                           row.lower_is_better))
    return Matrix(rows, columns, cells)


def absolute(records: list[dict], variant: str, task: str) -> tuple[float, float, int]:
    """Mean, seed std and number of runs of one variant's metric on one task."""
    values = [v for v in by_seed(records, variant, task).values() if v is not None]
    return (*mean_std(values), len(values))
