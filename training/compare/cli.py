"""`ranker compare SPEC`: the spec's model against single-task models (and pairs), seed by seed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from training.cli_options import USER_ERRORS, fail
from training.spec import load_spec

SPLITS = ("valid", "test")


def compare_command(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="ranker spec YAML")],
    seeds: Annotated[int, typer.Option(min=1, help="seeds per model (0..N-1); the verdicts need at least 2")] = 3,
    pairs: Annotated[bool, typer.Option("--pairs", help="also train a model on every pair of tasks")] = False,
    out: Annotated[Path, typer.Option(help="directory for compare.md, compare.json and compare.png (as `ranker "
                                      "train` writes under runs/)")] = Path("runs/compare"),
    budget: Annotated[float | None, typer.Option(
        min=0, help="wall-time budget in seconds: a run starts only while the time so far plus the longest run "
                    "so far fits; the rest are skipped and listed")] = None,
    jobs: Annotated[int, typer.Option(min=1, help="runs in parallel processes (one torch thread each when > 1)")] = 2,
    split: Annotated[str, typer.Option(help="the split every model is measured on: valid, or test")] = "valid",
    data: Annotated[str | None, typer.Option(help="override data.path of the spec")] = None,
) -> None:
    """Does multi-task help? Train the spec's model, one single-task model per task (and with --pairs every
    pair) for each seed, and tell per task whether sharing helps, hurts or is within seed noise."""
    from training.compare import render
    from training.compare.matrix import Row, help_hurt
    from training.compare.runs import run_all, schedule
    from training.compare.variants import metric_of, single_task_targets, spec_for, variants

    if split not in SPLITS:
        fail(f"--split: {split!r} is not one of {', '.join(SPLITS)}")
    try:
        spec = load_spec(spec_path, data_path=data)
        if split == "test" and spec.data.without_test:
            fail("--split test: the spec has no test split (test_fraction 0, or no data.test file)")
        targets = single_task_targets(spec)
        if len(targets) < 2:
            fail(f"{spec_path}: compare needs at least two binary or regression tasks, the spec has {targets}")
        chosen = variants(spec, pairs)
        for variant in chosen:  # each model's spec is valid before any run starts
            spec_for(spec, variant)
        runs = schedule(chosen, list(range(seeds)))
        typer.echo(f"{len(runs)} runs ({len(chosen)} models x {seeds} seeds), {jobs} at a time, {split} split")
        outcome = run_all(spec, runs, split, jobs, budget, _progress)
    except USER_ERRORS as e:
        fail(str(e))
    tasks = {t.name: t for t in spec.tasks}
    rows = [Row(t, *metric_of(tasks[t])) for t in targets]
    report = render.Report(spec.name, str(spec_path), split, list(range(seeds)), jobs, budget, chosen,
                           help_hurt(outcome.records, rows, chosen), outcome)
    typer.echo(render.matrix_table(report.matrix))
    typer.echo(render.skipped_text(report))
    written = render.write(report, out)
    typer.echo("written: " + ", ".join(map(str, written)))


def _progress(record: dict, done: int, planned: int) -> None:
    typer.echo(f"[{done}/{planned}] {record['variant']}, seed {record['seed']}: {record['seconds']:.1f} s "
               f"({record['epochs']} epochs)")
