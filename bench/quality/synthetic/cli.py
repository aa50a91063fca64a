"""`python -m bench.quality.synthetic`: the flags, the main and sensitivity modes, and the section from both."""

from __future__ import annotations

import argparse
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from bench.quality import synthetic
from bench.quality.common import (
    REPLOT_NOTE,
    Output,
    command_line,
    load_results,
    quality_args,
    run_and_save,
    use_agg,
)
from bench.quality.synthetic.config import (
    RESULTS,
    SECTION,
    SENS_CELLS,
    SENS_RESULTS,
    SENS_RUNS,
    SMOKE_SENS_CELLS,
    SynthConfig,
    smoke_config,
)
from bench.quality.synthetic.markdown import render
from bench.quality.synthetic.runs import run_all, run_sensitivity

MODULE = "bench.quality.synthetic"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = quality_args(synthetic.__doc__, "tiny run; writes to a temp dir unless --doc",
                      "re-render from the saved results of both modes")
    ap.add_argument("--sensitivity", action="store_true",
                    help="run the (c, n_train) cells of SENS_CELLS with the paper's three models")
    ap.add_argument("--runs", type=int, help=f"runs per (model, p); default 30, {SENS_RUNS} with --sensitivity")
    ap.add_argument("--scale", type=float, help="c, the scale of w_t (with --sensitivity: a single cell)")
    ap.add_argument("--train-samples", type=int, help="training-set size (with --sensitivity: a single cell)")
    return ap.parse_args(argv)


def sensitivity_mode(ns: argparse.Namespace, made_by: str, base: SynthConfig, command: str) -> dict:
    """The (c, n_train) cells: SENS_CELLS, or the one cell that --scale / --train-samples choose."""
    cells = SMOKE_SENS_CELLS if ns.smoke else SENS_CELLS
    if ns.scale or ns.train_samples:  # one chosen cell instead of the grid
        cells = ((ns.scale or base.c, ns.train_samples or base.n_train),)
    sens = run_sensitivity(replace(base, runs=ns.runs or (base.runs if ns.smoke else SENS_RUNS)), cells, ns.workers)
    sens["command"], sens["provenance"] = command, made_by
    return sens


def main_mode(ns: argparse.Namespace, made_by: str, base: SynthConfig, command: str) -> dict:
    """Every model at every correlation, with full loss curves."""
    cfg = replace(base, runs=ns.runs or base.runs, c=ns.scale or base.c, n_train=ns.train_samples or base.n_train)
    res = run_all(cfg, ns.workers)
    res["command"], res["provenance"] = command, made_by
    if not ns.smoke:  # 6 decimals keep the committed file small and lose nothing that is reported
        res["curves"] = {n: {p: np.asarray(c).round(6).tolist() for p, c in d.items()} for n, d in res["curves"].items()}
    return res


def _saved(path: Path, note: str) -> dict | None:
    """The saved runs of a mode, if it has been run."""
    return load_results(path, note) if path.exists() else None


def main(argv: list[str] | None = None) -> None:
    ns = parse_args(argv)
    base = smoke_config() if ns.smoke else SynthConfig()
    out = Output.for_run(ns.smoke, ns.doc)
    command = command_line(MODULE, argv)
    # A smoke run never reads the repository's saved results, so it cannot mix with real numbers.
    res = sens = None
    if ns.replot:
        res, sens = _saved(RESULTS, REPLOT_NOTE), _saved(SENS_RESULTS, REPLOT_NOTE)
    elif ns.sensitivity:
        sens = run_and_save(ns, SENS_RESULTS, command, partial(sensitivity_mode, base=base, command=command),
                            compact=True)
        if not ns.smoke:
            res = _saved(RESULTS, " Tables and figures re-rendered from the saved runs by the `--sensitivity` command.")
    else:
        res = run_and_save(ns, RESULTS, command, partial(main_mode, base=base, command=command), compact=True)
        sens = None if ns.smoke else _saved(SENS_RESULTS, " Table re-rendered from the saved runs by a later main run.")
    use_agg()
    out.section(SECTION, render(res, sens, out))
