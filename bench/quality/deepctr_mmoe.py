"""DeepCTR-Torch's MMoE on exactly our prepared arrays (same split, features and encoders).

How it is trained (recorded in docs/BENCHMARKS.md):
- `deepctr_torch.models.MMOE` with our categorical columns as `SparseFeat` (our vocabularies, incl.
  the OOV slot) and our standardized numerics as `DenseFeat`; same shape as our MMoE (experts,
  expert/tower sizes, a linear gate as in the paper, embedding dim); its own defaults otherwise
  (init_std 1e-4, L2 1e-5 on embeddings).
- `model.compile("adam", loss=["binary_crossentropy", ..., "mse"])` and `model.fit(...)`, the way
  its docs show. Its multi-task fit calls `loss_func[i](y_pred[:, i], y[:, i], reduction="sum")`, so
  masked labels go in as NaN and, after compile, each resolved loss function is wrapped so rows
  whose label is NaN are left out (compile itself accepts only loss names).
- The rating head is its `regression` output on our standardized rating; predictions are mapped
  back to stars with our label scaler. Binary heads are its sigmoid outputs.
- `fit` has no early stopping on a custom loss, so it is called one epoch at a time and the epoch
  with the best validation loss (our masked, fixed-weight loss) is kept, as our trainer does.
"""

from __future__ import annotations

import contextlib
import copy
import io
import sys
import time
import types

import numpy as np
import torch
import torch.nn.functional as F

from training.evaluation import inference
from training.evaluation.metrics import prediction_metrics
from training.fit import train as T
from training.spec import RankerSpec


def import_deepctr() -> types.ModuleType:
    """deepctr_torch, without its import-time PyPI version check.

    deepctr-torch 0.3.0 imports `requests` (not a declared dependency) only to query PyPI for a newer
    version in a thread at import time. A benchmark must not make network calls, so that module is
    a stub during the import whose `get` answers "not ok" without any I/O, and the check gives up.
    """
    if "deepctr_torch" in sys.modules:
        return sys.modules["deepctr_torch"]
    stub = types.ModuleType("requests")
    stub.codes = types.SimpleNamespace(ok=200)

    def _no_network(*_args: object, **_kwargs: object) -> types.SimpleNamespace:
        return types.SimpleNamespace(status_code=0, text="")  # "not ok": the check gives up quietly

    stub.get = _no_network
    saved = sys.modules.get("requests")
    sys.modules["requests"] = stub
    try:
        import deepctr_torch
    finally:
        if saved is None:
            sys.modules.pop("requests", None)
        else:
            sys.modules["requests"] = saved
    return deepctr_torch


def masked(loss_fn):  # noqa: ANN001, ANN201 (a torch functional loss)
    """Wrap a loss with deepctr's call signature so rows whose label is NaN are left out."""
    def loss(y_pred: torch.Tensor, y_true: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        seen = ~torch.isnan(y_true)
        return loss_fn(y_pred[seen], y_true[seen], reduction=reduction)
    return loss


def inputs(prep: T.Prepared, e) -> dict[str, np.ndarray]:  # noqa: ANN001 (training.data.Encoded)
    """Feature name -> (N,) column, in deepctr's dict input form."""
    cols = {f.name: e.categorical[:, j] for j, f in enumerate(prep.encoders.categorical)}
    cols |= {f.name: e.numeric[:, j] for j, f in enumerate(prep.encoders.numeric)}
    return cols


def targets(e) -> np.ndarray:  # noqa: ANN001
    """(N, T) training targets (regression already standardized), NaN where not observed."""
    return np.where(e.mask, e.labels, np.nan).astype(np.float32)


def build(spec: RankerSpec, prep: T.Prepared):  # noqa: ANN201 (deepctr MMOE)
    dc = import_deepctr()
    from deepctr_torch.inputs import DenseFeat, SparseFeat
    from deepctr_torch.models import MMOE

    m = spec.model
    columns = [SparseFeat(f.name, vocabulary_size=f.cardinality, embedding_dim=m.embedding_dim)
               for f in prep.encoders.categorical]
    columns += [DenseFeat(f.name, 1) for f in prep.encoders.numeric]
    model = MMOE(columns, num_experts=m.num_experts, expert_dnn_hidden_units=tuple(m.expert_hidden),
                 gate_dnn_hidden_units=(), tower_dnn_hidden_units=tuple(m.tower_hidden),
                 task_types=[t.type for t in spec.tasks], task_names=spec.task_names(),
                 seed=spec.train.seed, device="cpu")
    model.compile("adam", loss=["binary_crossentropy" if t.type == "binary" else "mse" for t in spec.tasks])
    # compile() accepts a list of loss *names* only; wrap the functions it resolved so NaN rows drop out.
    model.loss_func = [masked(fn) for fn in model.loss_func]
    model.deepctr_version = dc.__version__
    return model


def natural_units(raw: np.ndarray, spec: RankerSpec, prep: T.Prepared) -> np.ndarray:
    """deepctr outputs (probabilities, standardized regression) -> label units, like ExportHeads."""
    out = raw.copy()
    for j, t in enumerate(spec.tasks):
        if t.type == "regression":
            s = prep.scalers[t.name]
            z = raw[:, j] * s.std + s.mean
            out[:, j] = np.expm1(z).clip(min=0.0) if s.transform == "log1p" else z
    return out


def valid_loss(model, spec: RankerSpec, prep: T.Prepared) -> float:  # noqa: ANN001
    """Our validation loss (fixed task weights, masked means) on deepctr's predictions."""
    pred = torch.from_numpy(model.predict(inputs(prep, prep.valid), batch_size=inference.EVAL_BATCH)).float()
    y = torch.from_numpy(targets(prep.valid))
    total = 0.0
    for j, t in enumerate(spec.tasks):
        fn = F.binary_cross_entropy if t.type == "binary" else F.mse_loss
        seen = ~torch.isnan(y[:, j])
        total += t.weight * float(fn(pred[seen, j].clamp(1e-7, 1 - 1e-7) if t.type == "binary" else pred[seen, j],
                                     y[seen, j]))
    return total


def run_deepctr(spec: RankerSpec, prep: T.Prepared) -> tuple[dict, list[dict], np.ndarray]:
    """Train and evaluate; returns (metrics, per-epoch history, natural-unit test predictions)."""
    T.set_seed(spec.train.seed)
    model = build(spec, prep)
    x, y = inputs(prep, prep.train), targets(prep.train)
    best, best_state, stale, history = float("inf"), None, 0, []
    for epoch in range(1, spec.train.epochs + 1):
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # fit prints the device and sizes every call
            model.fit(x, y, batch_size=spec.train.batch_size, epochs=1, verbose=0, shuffle=True)
        seconds = time.perf_counter() - t0
        loss = valid_loss(model, spec, prep)
        history.append({"epoch": epoch, "seconds": seconds, "valid_loss": loss})
        if loss < best - 1e-6:
            best, best_state, stale = loss, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale > spec.train.early_stopping_patience:
                break
    model.load_state_dict(best_state)
    metrics = {}
    for split in ("valid", "test"):
        e = getattr(prep, split)
        preds = natural_units(model.predict(inputs(prep, e), batch_size=inference.EVAL_BATCH), spec, prep)
        metrics[split] = prediction_metrics(preds, e.raw_labels, e.request, spec)
    return metrics, history, preds
