"""Training throughput of the real trainer vs. a bare loop (ceiling) and a per-row DataLoader loop.

For each model shape, in one process, with the same number of torch threads, in interleaved rounds:
  bare     the same model over pre-made random tensors of the same shapes, plain BCE/MSE, no masks,
           no metrics, no progress bar: what the hardware allows for this model.
  trainer  epochs of training.fit.train.fit_epochs() (what fit() runs) on encoded demo data: masked
           losses, loss balancing, a live progress bar, the per-epoch validation pass. Data prep
           (Parquet -> encoded arrays) is timed separately.
  per-row  what most users write: a torch Dataset whose __getitem__ returns one row (pre-encoded
           tensors, a dict of named columns, or a raw row encoded on the fly), a DataLoader with
           the default collate, the same model and masked losses.
Then, in a child process, the peak RSS of `training.fit.train.train()` on --memory-rows demo rows.

    .venv/bin/python -m bench.training.train_throughput                        # full size, rewrites docs
    .venv/bin/python -m bench.training.train_throughput --rows 20000 --memory-rows 0 --no-write-doc  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from bench.doc_sections import write_section

REPO = Path(__file__).resolve().parents[2]
SECTION = "train-throughput"
SHAPES = {"small": (4, [128, 64]), "large": (8, [256, 128])}
BATCH = 1024
WARMUP_STEPS = 5


@dataclass
class ShapeResult:
    """Samples/s of each loop, one value per round (the trainer's window is one epoch plus its
    validation pass). Best-of-rounds is the headline figure, as timeit's min: on a shared machine
    the other rounds also measure the neighbours."""

    shape: str
    bare: list[float]
    trainer: list[float]
    per_row_tuple: list[float]
    per_row_named: list[float]
    per_row_raw: list[float]

    def best(self, loop: str) -> float:
        return max(getattr(self, loop))

    def mean(self, loop: str) -> float:
        values = getattr(self, loop)
        return len(values) / sum(1 / v for v in values)  # harmonic: total samples / total time


def demo_spec(data_dir: Path, shape: str, epochs: int, threads: int):
    from training.spec import load_spec

    # Pointwise heads only: the loops below compare data paths under the same per-row losses.
    spec = load_spec(REPO / "configs" / "demo.yaml", data_path=str(data_dir)).without_ranking()
    experts, hidden = SHAPES[shape]
    spec.model.num_experts, spec.model.expert_hidden = experts, hidden
    spec.model.embedding_dim, spec.model.tower_hidden = 16, [64]
    spec.train.batch_size, spec.train.epochs, spec.train.threads = BATCH, epochs, threads
    spec.train.early_stopping_patience = epochs  # measure every epoch
    return spec


class BareLoop:
    """The same model over pre-made random tensors shaped like the data: plain BCE/MSE, no masks,
    no progress bar, no validation. `window()` runs one pass and returns its samples/s."""

    def __init__(self, model: torch.nn.Module, cardinalities: list[int], like, rows: int,
                 binary: torch.Tensor) -> None:
        g = torch.Generator().manual_seed(0)
        self.cat = torch.stack([torch.randint(0, c, (rows,), generator=g) for c in cardinalities], dim=1)
        self.num = torch.randn(rows, like.numeric.shape[1], generator=g)
        self.labels = (torch.rand(rows, like.labels.shape[1], generator=g) > 0.5).float()
        self.model, self.binary = model.train(), binary
        self.opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(WARMUP_STEPS):
            self.step(slice(0, BATCH))

    def step(self, sl: slice) -> None:
        out, y, b = self.model(self.cat[sl], self.num[sl]), self.labels[sl], self.binary
        loss = F.binary_cross_entropy_with_logits(out[:, b], y[:, b]) + F.mse_loss(out[:, ~b], y[:, ~b])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def window(self) -> float:
        t0 = time.perf_counter()
        for i in range(0, len(self.cat), BATCH):
            self.step(slice(i, i + BATCH))
        return len(self.cat) / (time.perf_counter() - t0)


class TupleRows(Dataset):
    """One encoded row per item as a tuple of tensors (like TensorDataset)."""

    def __init__(self, e, spec) -> None:
        self.cat, self.num = torch.from_numpy(e.categorical), torch.from_numpy(e.numeric)
        self.labels, self.mask = torch.from_numpy(e.labels), torch.from_numpy(e.mask)

    def __len__(self) -> int:
        return len(self.cat)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return self.cat[i], self.num[i], self.labels[i], self.mask[i]

    @staticmethod
    def unpack(batch) -> tuple[torch.Tensor, ...]:
        return tuple(batch)


class NamedRows(Dataset):
    """One row per item as a dict of named columns (features, labels, label masks)."""

    def __init__(self, e, spec) -> None:
        self.cat_names = [f.name for f in spec.features.categorical]
        self.num_names = [f.name for f in spec.features.numeric]
        self.tasks = spec.task_names()
        self.columns = {n: e.categorical[:, j] for j, n in enumerate(self.cat_names)}
        self.columns |= {n: e.numeric[:, j] for j, n in enumerate(self.num_names)}
        self.columns |= {t: e.labels[:, j] for j, t in enumerate(self.tasks)}
        self.columns |= {f"{t}_observed": e.mask[:, j] for j, t in enumerate(self.tasks)}

    def __len__(self) -> int:
        return len(self.columns[self.tasks[0]])

    def __getitem__(self, i: int) -> dict:
        return {name: col[i] for name, col in self.columns.items()}

    def unpack(self, batch: dict) -> tuple[torch.Tensor, ...]:
        return (torch.stack([batch[n] for n in self.cat_names], 1), torch.stack([batch[n] for n in self.num_names], 1),
                torch.stack([batch[t] for t in self.tasks], 1),
                torch.stack([batch[f"{t}_observed"] for t in self.tasks], 1))


class RawRows(Dataset):
    """One raw log row per item, encoded in __getitem__ with the project's own encoders.

    What a script over a log table does when it has not pre-encoded: look the row up, map its
    categories and normalize its numbers, return tensors. (Same encoders as the trainer, per row.)
    """

    def __init__(self, table, encoders, spec) -> None:
        self.encoders = encoders
        self.columns = {f.name: table.column(f.name).to_numpy(zero_copy_only=False) for f in encoders.all()}
        self.labels = {t.name: table.column(t.column).cast("double").to_numpy(zero_copy_only=False)
                       for t in spec.tasks}

    def __len__(self) -> int:
        return len(next(iter(self.labels.values())))

    def __getitem__(self, i: int) -> dict:
        cat = [int(f.encode([self.columns[f.name][i]])[0]) for f in self.encoders.categorical]
        num = [float(f.encode([self.columns[f.name][i]])[0]) for f in self.encoders.numeric]
        y = [self.labels[t][i] for t in self.labels]
        return {"categorical": torch.tensor(cat), "numeric": torch.tensor(num),
                "labels": torch.tensor([0.0 if v != v else v for v in y], dtype=torch.float32),
                "mask": torch.tensor([v == v for v in y])}  # NaN != NaN: unobserved

    @staticmethod
    def unpack(batch: dict) -> tuple[torch.Tensor, ...]:
        return batch["categorical"], batch["numeric"], batch["labels"], batch["mask"]


class RowLoop:
    """A DataLoader(shuffle, default collate) loop with the trainer's masked losses. `window(rows)`
    trains on the next `rows` samples (reshuffling when the loader runs out) and returns samples/s."""

    def __init__(self, model: torch.nn.Module, dataset: TupleRows | NamedRows | RawRows, spec) -> None:
        from training.modeling.losses import MaskedTaskLosses

        self.model, self.dataset = model.train(), dataset
        self.losses = MaskedTaskLosses([t.loss for t in spec.tasks])
        self.opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.loader = DataLoader(dataset, batch_size=BATCH, shuffle=True,
                                 generator=torch.Generator().manual_seed(0))
        self.batches = iter(self.loader)
        for _ in range(WARMUP_STEPS):
            self.step()

    def step(self) -> int:
        batch = next(self.batches, None)
        if batch is None:
            self.batches = iter(self.loader)
            batch = next(self.batches)
        cat, num, labels, mask = self.dataset.unpack(batch)
        per_task, _ = self.losses(self.model(cat, num), labels, mask)
        self.opt.zero_grad(set_to_none=True)
        per_task.sum().backward()
        self.opt.step()
        return len(cat)

    def window(self, rows: int) -> float:
        seen, t0 = 0, time.perf_counter()
        while seen < rows:
            seen += self.step()
        return seen / (time.perf_counter() - t0)


def measure_shape(shape: str, data_dir: Path, args: argparse.Namespace, prep_cache: dict) -> ShapeResult:
    from training.fit.train import fit_epochs, model_args, prepare, set_seed
    from training.modeling.model import build_model

    spec = demo_spec(data_dir, shape, args.epochs, args.threads)
    if "prep" not in prep_cache:
        t0 = time.perf_counter()
        prep_cache["prep"] = prepare(spec)
        prep_cache["seconds"] = time.perf_counter() - t0
    prep = prep_cache["prep"]
    margs = model_args(spec, prep.encoders, prep.train.numeric)
    binary = torch.tensor([t.type == "binary" for t in spec.tasks])
    n_train = len(prep.train)

    set_seed(0)
    bare = BareLoop(build_model(margs), margs.cardinalities, prep.train, n_train, binary)
    set_seed(0)
    epochs = fit_epochs(spec, prep, build_model(margs), progress=args.progress)  # the real trainer
    rows = min(args.per_row_rows, n_train)
    row_loops = [RowLoop(build_model(margs), dataset, spec) for dataset in (
        TupleRows(prep.train, spec), NamedRows(prep.train, spec), RawRows(prep.splits.train, prep.encoders, spec))]
    result = ShapeResult(shape, [], [], [], [], [])
    # Interleaved rounds: on a shared machine every loop then sees the same neighbours.
    for _ in range(args.epochs):
        result.bare.append(bare.window())
        t0 = time.perf_counter()
        next(epochs)  # one epoch: shuffle, masked losses, balancing, progress bar, validation, bookkeeping
        result.trainer.append(n_train / (time.perf_counter() - t0))
        for key, loop in zip(PER_ROW, row_loops, strict=True):
            getattr(result, key).append(loop.window(rows))
    return result


def peak_memory_mib(rows: int, threads: int) -> tuple[float, float]:
    """(peak RSS MiB, seconds) of one `train()` epoch on `rows` demo rows, in a child process."""
    from training.data.demo import DemoConfig, write_demo

    with tempfile.TemporaryDirectory() as tmp:
        write_demo(Path(tmp) / "data", DemoConfig(rows=rows, seed=0))  # generated here, not in the child
        cmd = [sys.executable, "-m", "bench.training.train_throughput", "--memory-child", str(Path(tmp) / "data"),
               "--threads", str(threads)]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=REPO)
        seconds = time.perf_counter() - t0
    # ru_maxrss is in KiB on Linux; RUSAGE_CHILDREN covers only the (one) waited-for child.
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, seconds


def memory_child(data_dir: str, threads: int) -> None:
    from training.fit.train import train

    spec = demo_spec(Path(data_dir), "small", epochs=1, threads=threads)
    train(spec, progress=False)


PER_ROW = {"per_row_tuple": "tuple of pre-encoded tensors (as TensorDataset)",
           "per_row_named": "dict of pre-encoded named columns",
           "per_row_raw": "raw log row, encoded in `__getitem__`"}


def floor_verdicts(results: list[ShapeResult]) -> list[str]:
    """One line per floor and shape, computed from this run's numbers (best rounds)."""
    lines = []
    for r in results:
        vs_bare = r.best("trainer") / r.best("bare")
        per_row = {key: r.best("trainer") / r.best(key) for key in PER_ROW}
        met = [PER_ROW[k] for k, x in per_row.items() if x >= 3]
        missed = [PER_ROW[k] for k, x in per_row.items() if x < 3]
        lines.append(
            f"- **{r.shape}**: trainer / bare = {vs_bare:.2f}, floor 2/3 **{'met' if vs_bare >= 2 / 3 else 'NOT met'}**; "
            f"3x per-row floor met against: {', '.join(met) or 'none'}; not met against: {', '.join(missed) or 'none'}."
        )
    lines += ["", "The raw-row loop is the per-row loop most users write (a Dataset that reads a log row and "
              "turns it into tensors). The pre-encoded per-row loops are a stronger baseline: against them 3x is "
              "out of reach for any trainer of this model, because *bare / it* (the ceiling's own lead) is below 3x: "
              "the model step, not the data path, dominates."]
    return lines


def markdown(results: list[ShapeResult], args: argparse.Namespace, prep_seconds: float,
             memory: tuple[float, float] | None) -> str:
    cmd = "python -m bench.training.train_throughput" + "".join(
        f" --{k} {v}" for k, v in (("rows", args.rows), ("epochs", args.epochs), ("threads", args.threads),
                                   ("per-row-rows", args.per_row_rows), ("memory-rows", args.memory_rows)))
    shapes = [f"{r.shape}: {SHAPES[r.shape][0]} experts {tuple(SHAPES[r.shape][1])}" for r in results]
    lines = [
        "## Training throughput (samples/s)", "",
        f"Command: `.venv/bin/{cmd}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} "
        f"cores (nproc), {platform.machine()}, torch {torch.__version__}, {args.threads} torch thread(s) for "
        f"every loop. {args.rows:,} demo rows (80% train), batch {BATCH}, embedding dim 16, towers (64). "
        f"The loops run in {args.epochs} interleaved rounds (bare pass over the train rows, one trainer epoch "
        "with its validation pass, each per-row loop), so all see the same neighbours on a shared machine; "
        "cells give the best round (all rounds).", "",
        "| shape | bare loop (ceiling) | trainer | trainer / bare |",
        "|---|---|---|---|",
        *(f"| {name} | {r.best('bare'):,.0f} ({r.mean('bare'):,.0f}) | {r.best('trainer'):,.0f} "
          f"({r.mean('trainer'):,.0f}) | **{r.best('trainer') / r.best('bare'):.2f}** "
          f"({r.mean('trainer') / r.mean('bare'):.2f}) |"
          for name, r in zip(shapes, results, strict=True)),
        "",
        "| per-row DataLoader loop, item = | " + " | ".join(
            f"{r.shape}: samples/s | trainer / it | bare / it" for r in results) + " |",
        "|---|" + "---|---|---|" * len(results),
    ]
    for key, label in PER_ROW.items():
        cells = [f"{r.best(key):,.0f} ({r.mean(key):,.0f}) | **{r.best('trainer') / r.best(key):.1f}x** | "
                 f"{r.best('bare') / r.best(key):.1f}x" for r in results]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "*trainer*: epochs of `training.fit.train.fit_epochs()` (what `fit()` runs) with masked losses, uncertainty loss balancing, the tqdm progress "
        "bar and the per-epoch validation pass. Data prep (Parquet read, validation, time split, encoding of "
        f"{args.rows:,} rows) took {prep_seconds:.1f} s and is not included. *bare*: the same model over "
        "pre-made random tensors, plain BCE/MSE, no masks, no bar, no validation. Per-row loops: "
        f"`DataLoader(batch_size={BATCH}, shuffle=True)`, default collate, same model and masked losses, "
        f"{args.per_row_rows:,} rows. *bare / it* bounds what any trainer could gain over that loop with "
        "this model.",
        "",
        "Floors from the issue: trainer >= 2/3 of the bare loop; trainer >= 3x the per-row loop.",
        "",
        *floor_verdicts(results),
    ]
    if memory is not None:
        lines += ["", f"Peak memory (max RSS of a child process) of `training.fit.train.train()` on "
                      f"{args.memory_rows:,} demo rows, small shape, 1 epoch, from Parquet to test metrics: "
                      f"**{memory[0] / 1024:.2f} GiB** ({memory[1]:.0f} s); the budget is 8 GiB."]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="demo rows for the throughput runs")
    p.add_argument("--epochs", type=int, default=2, help="trainer epochs per shape")
    p.add_argument("--per-row-rows", type=int, default=100_000, help="rows timed in the per-row loop")
    p.add_argument("--memory-rows", type=int, default=5_000_000, help="demo rows for peak memory (0 = skip)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads for every loop")
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="trainer's tqdm bar")
    p.add_argument("--write-doc", action=argparse.BooleanOptionalAction, default=True,
                   help=f"replace the {SECTION} section of docs/BENCHMARKS.md")
    p.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[ShapeResult]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child, args.threads)
        return []
    from training.data.demo import DemoConfig, write_demo

    results, cache = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        write_demo(Path(tmp), DemoConfig(rows=args.rows, seed=0))
        for shape in args.shapes:
            results.append(measure_shape(shape, Path(tmp), args, cache))
            r = results[-1]
            print(f"{shape}: bare {r.best('bare'):,.0f}/s, trainer {r.best('trainer'):,.0f}/s "
                  f"({r.best('trainer') / r.best('bare'):.2f} of bare), per-row "
                  + ", ".join(f"{r.best(k):,.0f}/s" for k in PER_ROW), flush=True)
    memory = peak_memory_mib(args.memory_rows, args.threads) if args.memory_rows else None
    if memory:
        print(f"peak RSS on {args.memory_rows:,} rows: {memory[0] / 1024:.2f} GiB ({memory[1]:.0f} s)")
    text = markdown(results, args, cache["seconds"], memory)
    if args.write_doc:
        write_section(SECTION, text)
    if args.json:
        args.json.write_text(json.dumps({"results": [vars(r) for r in results], "memory_mib": memory,
                                         "prep_seconds": cache["seconds"], "args": vars(args)}, indent=2, default=str))
    return results


if __name__ == "__main__":
    main()
