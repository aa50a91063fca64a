"""`python -m bench.quality.synthetic`: the flags, the run, and the section from its saved runs."""

from __future__ import annotations

import argparse
from dataclasses import replace
from functools import partial

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
from bench.quality.synthetic.config import RESULTS, SECTION, SynthConfig, smoke_config
from bench.quality.synthetic.markdown import render
from bench.quality.synthetic.runs import run_all

MODULE = "bench.quality.synthetic"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = quality_args(synthetic.__doc__, "tiny run; writes to a temp dir unless --doc",
                      "re-render from the saved results")
    ap.add_argument("--runs", type=int, help="runs per (model, p); default 30")
    ap.add_argument("--scale", type=float, help="c, the scale of w_t")
    ap.add_argument("--train-samples", type=int, help="training-set size")
    return ap.parse_args(argv)


def main_mode(ns: argparse.Namespace, made_by: str, base: SynthConfig, command: str) -> dict:
    """Every model at every correlation, with full loss curves."""
    cfg = replace(base, runs=ns.runs or base.runs, c=ns.scale or base.c, n_train=ns.train_samples or base.n_train)
    res = run_all(cfg, ns.workers)
    res["command"], res["provenance"] = command, made_by
    if not ns.smoke:  # 6 decimals keep the committed file small and lose nothing that is reported
        res["curves"] = {n: {p: np.asarray(c).round(6).tolist() for p, c in d.items()} for n, d in res["curves"].items()}
    return res


def main(argv: list[str] | None = None) -> None:
    ns = parse_args(argv)
    base = smoke_config() if ns.smoke else SynthConfig()
    out = Output.for_run(ns.smoke, ns.doc)
    command = command_line(MODULE, argv)
    # A smoke run never reads the repository's saved results, so it cannot mix with real numbers.
    if ns.replot:
        res = load_results(RESULTS, REPLOT_NOTE)
    else:
        res = run_and_save(ns, RESULTS, command, partial(main_mode, base=base, command=command))
    use_agg()
    out.section(SECTION, render(res, out))
