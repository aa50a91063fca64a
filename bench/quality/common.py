"""What every quality benchmark shares: paths, its command line, saved runs and their provenance, the
--replot-or-run step, mean ± std and markdown tables, and where its section and figures go."""

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

from bench.doc_sections import DOC, write_section
from training.compare import stats  # the one copy of the statistics (the product's)
from training.compare.stats import mean_std

REPO = Path(__file__).resolve().parents[2]
IMG = REPO / "docs" / "img"
RESULTS_DIR = REPO / "bench" / "quality" / "results"  # saved runs, committed: --replot renders from them
CACHE = Path(os.environ.get("MTL_BENCH_CACHE", Path.home() / ".cache" / "mtl-ranker-bench"))
REPLOT_NOTE = " Tables and figures re-rendered from the saved runs with `--replot`."


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


def load_results(path: Path, note: str = "") -> dict:
    """Saved runs of a benchmark ({"provenance", ...}), with `note` (e.g. REPLOT_NOTE) added to the provenance."""
    data = json.loads(Path(path).read_text())
    data["provenance"] += note
    return data


def save_results(path: Path, data: dict) -> None:
    """Write saved runs as JSON, compact (no white space): the committed files are read by --replot, not by eye."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")))


def command_line(module: str, argv: Sequence[str] | None = None) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join([".venv/bin/python -m", module, *args])


def verdict(gains: list[float]) -> str:
    """training/compare/stats.py's verdict on paired gains, in the benchmarks' words ("neutral" = within noise)."""
    v = stats.verdict(gains)
    word = f"**{v.word}**" if v.word in (stats.HELPS, stats.HURTS) else "neutral"
    return f"{word} ({v.mean:+.4f} ± {v.std:.4f})"


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


def quality_args(description: str | None, smoke_help: str, replot_help: str) -> argparse.ArgumentParser:
    """The flags every quality benchmark takes; each adds its own."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help=smoke_help)
    ap.add_argument("--workers", type=int, default=2, help="parallel training runs (one torch thread each)")
    ap.add_argument("--doc", help="markdown file to write the section to")
    ap.add_argument("--replot", action="store_true", help=replot_help)
    return ap


def ablation_args(description: str | None, seeds: int, results: Path,
                  argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line shared by the ablation benchmarks (expert dropout, loss balancing)."""
    ap = quality_args(description, "tiny data, 1 epoch, 2 seeds; writes to a temp dir",
                      f"re-render from {results.relative_to(REPO)}")
    ap.add_argument("--seeds", type=int, default=seeds, help="seeds per (dataset, value)")
    ap.add_argument("--demo-rows", type=int, default=100_000, help="rows of generated demo data")
    return ap.parse_args(argv)


Run = Callable[[argparse.Namespace, str], dict]  # (parsed flags, provenance line) -> what is saved


def run_and_save(ns: argparse.Namespace, results: Path, command: str, run: Run) -> dict:
    """A fresh run, stamped with its provenance at its start; saved unless it is a --smoke run."""
    saved = run(ns, provenance(command))
    if not ns.smoke:
        save_results(results, saved)
    return saved


def saved_or_run(ns: argparse.Namespace, results: Path, command: str, run: Run) -> dict:
    """--replot: the saved results (provenance says so); otherwise run_and_save."""
    if ns.replot:
        return load_results(results, REPLOT_NOTE)
    return run_and_save(ns, results, command, run)
