"""Helpers shared by the quality benchmarks: doc sections, summary statistics, tables, provenance."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from bench.doc_sections import DOC, write_section

REPO = Path(__file__).resolve().parents[2]
IMG = REPO / "docs" / "img"
CACHE = Path(os.environ.get("MTL_BENCH_CACHE", Path.home() / ".cache" / "mtl-ranker-bench"))

def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def provenance(command: str) -> str:
    """One line: the command, the date, the commit and the machine; call it when a run *starts*.

    The working tree is shared with other work in progress, so uncommitted changes to the code a
    benchmark runs (training/, service/, bench/quality/) are said, not hidden.
    """
    import torch

    rev = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--", "training", "service", "bench/quality")
    tree = " + uncommitted changes under training/, service/ or bench/quality/" if dirty else ""
    return (f"Produced by `{command}` on {time.strftime('%Y-%m-%d')} at commit `{rev}`{tree} "
            f"(torch {torch.__version__}, Python {platform.python_version()}, {os.cpu_count()} cores).")


def load_results(path: Path) -> dict:
    """Saved runs of a benchmark: {"provenance", "command", ...} as written by save_results."""
    return json.loads(Path(path).read_text())


def save_results(path: Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


REPLOT_NOTE = " Tables and figures re-rendered from the saved runs with `--replot`."


def command_line(module: str, argv: Sequence[str] | None = None) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join([".venv/bin/python -m", module, *args])


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def fmt_ms(values: Iterable[float], digits: int = 4) -> str:
    """'mean ± std' of a list of numbers."""
    m, s = mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def md_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


class Output:
    """Where a benchmark writes: its doc section and its figures (tmp for --smoke, docs/ otherwise)."""

    def __init__(self, doc: Path = DOC, img_dir: Path = IMG) -> None:
        self.doc, self.img_dir = Path(doc), Path(img_dir)

    @classmethod
    def for_run(cls, smoke: bool, doc: str | None) -> Output:
        if doc is not None:
            return cls(Path(doc), Path(doc).parent / "img")
        if smoke:
            tmp = Path(tempfile.mkdtemp(prefix="mtl-bench-smoke-"))
            return cls(tmp / "BENCHMARKS.md", tmp / "img")
        return cls()

    def figure(self, fig, name: str) -> str:  # noqa: ANN001 (matplotlib Figure)
        """Write <img_dir>/<name>.png at a small size; returns the path relative to the doc."""
        import matplotlib.pyplot as plt

        self.img_dir.mkdir(parents=True, exist_ok=True)
        path = self.img_dir / f"{name}.png"
        fig.savefig(path, dpi=80, bbox_inches="tight")
        plt.close(fig)
        return os.path.relpath(path, self.doc.parent)

    def section(self, name: str, body: str) -> None:
        write_section(name, body, self.doc)
        print(f"wrote section {name!r} to {self.doc}")


def use_agg() -> None:
    """Headless plotting; called before pyplot is imported."""
    import matplotlib

    matplotlib.use("Agg")


def ablation_args(description: str, seeds: int, results: Path, argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line shared by the ablation benchmarks (expert dropout, loss balancing)."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny data, 1 epoch, 2 seeds; writes to a temp dir")
    ap.add_argument("--seeds", type=int, default=seeds)
    ap.add_argument("--demo-rows", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--doc", help="markdown file to write the section to")
    ap.add_argument("--replot", action="store_true", help=f"re-render from {results.relative_to(REPO)}")
    return ap.parse_args(argv)


def saved_or_run(ns: argparse.Namespace, results: Path, module: str, argv: Sequence[str] | None,
                 run: Callable[[argparse.Namespace, str], dict]) -> dict:
    """--replot: the saved results (provenance says so); otherwise a fresh run, stamped at its start."""
    if ns.replot:
        saved = load_results(results)
        saved["provenance"] += REPLOT_NOTE
        return saved
    return run(ns, provenance(command_line(module, argv)))
