"""The trained torch model as the bundle sees it: natural-unit heads, predictions, gate weights.

Export, the retrain gates and evaluation call these; the training loop does not.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from training import data as D
from training.data.interface import SplitRows
from training.evaluation.metrics import gate_stats
from training.modeling.model import ExportHeads
from training.spec import RankerSpec

EVAL_BATCH = 16_384


def export_heads(model: nn.Module, spec: RankerSpec, scalers: dict[str, D.LabelScaler],
                 served: bool = False) -> ExportHeads:
    """Natural-unit heads of every task (what training validates), or with `served` of the served tasks only
    (what the bundle exports: no `serve: false` head)."""
    columns = spec.served_columns() if served else list(range(len(spec.tasks)))
    tasks = [spec.tasks[j] for j in columns]
    scale = [(s.transform, s.mean, s.std) if (s := scalers.get(t.name)) else ("none", 0.0, 1.0) for t in tasks]
    return ExportHeads(model, [t.type for t in tasks], scale, columns).eval()


@torch.no_grad()
def predict(heads: ExportHeads, e: SplitRows) -> np.ndarray:
    """Natural-unit outputs (N, T), exactly the function that is exported. `e` is any split that yields
    its rows as Encoded chunks (in memory, or streamed: training/streaming/splits.py)."""
    parts = [torch.stack(heads(torch.from_numpy(c.categorical), torch.from_numpy(c.numeric)), dim=1)
             for c in e.chunks(EVAL_BATCH)]
    return torch.cat(parts).numpy() if parts else np.zeros((0, len(heads.binary)), dtype=np.float32)


@torch.no_grad()
def gate_levels(model: nn.Module, e: SplitRows, max_rows: int = 50_000) -> list[np.ndarray] | None:
    """Eval-mode task-gate weights on up to max_rows rows, one (T, N, E) array per extraction level
    (one level for MMoE / OMoE, one per level for PLE); None for gateless models."""
    if not hasattr(model, "gate_levels"):
        return None
    rows = e.head(min(len(e), max_rows))
    levels = model.gate_levels(torch.from_numpy(rows.categorical), torch.from_numpy(rows.numeric))
    return [g.numpy() for g in levels]


def gate_report(model: nn.Module, e: SplitRows, task_names: list[str]) -> dict:
    """{"gates": stats of the top level's task gates} (+ "gates_by_level" for PLE); {} without gates."""
    levels = gate_levels(model, e)
    if levels is None:
        return {}
    slots = model.shared_slots()
    out = {"gates": gate_stats(levels[-1], task_names, slots)}
    if len(levels) > 1:
        out["gates_by_level"] = [gate_stats(g, task_names, slots) for g in levels]
    return out
