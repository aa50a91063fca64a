"""torch-rechub's MMOE on exactly our prepared arrays (same split, features and encoders).

How it is trained (recorded in docs/BENCHMARKS.md):
- `torch_rechub.models.multi_task.MMOE` with our categorical columns as `SparseFeature` (our
  vocabularies, incl. the OOV slot, embedding dim as ours) and our standardized numerics as
  `DenseFeature`; experts and towers of our sizes. Its MLPs put BatchNorm after every Linear and its
  gates are a Linear + softmax, as the library builds them; its initialization is its own.
- Its own `MTLTrainer` (Adam lr 1e-3, weight decay 1e-5, loss = mean of the task losses, as the
  library's defaults) runs each epoch with `train_one_epoch`. Its losses (BCELoss / MSELoss) cannot
  skip unobserved labels, so each is wrapped to leave out rows whose label is NaN.
- Its `fit` stops on one task's validation AUC and writes a file per run; instead the epochs are
  run one at a time and the epoch with the best validation loss (our masked, fixed-weight loss) is
  kept, as for our models and DeepCTR-Torch.
- Batches are index slices of the arrays, in an order shuffled per epoch with the seed (a
  DataLoader over single rows does the same work one row at a time).
"""

from __future__ import annotations

import contextlib
import copy
import io
import time

import numpy as np
import torch
import torch.nn.functional as F

from bench.quality.deepctr_mmoe import inputs, natural_units, targets
from training.evaluation import inference
from training.evaluation.metrics import prediction_metrics
from training.fit import train as T
from training.spec import RankerSpec


def masked(loss_fn):  # noqa: ANN001, ANN201 (a torch loss module)
    """The library's loss, over the rows whose label is observed (0 when a batch has none)."""
    def loss(y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        seen = ~torch.isnan(y_true)
        if not seen.any():
            return y_pred.sum() * 0.0
        return loss_fn(y_pred[seen], y_true[seen])
    return loss


class Batches:
    """(x_dict, ys) batches over arrays, shuffled per pass with a seeded generator."""

    def __init__(self, x: dict[str, np.ndarray], y: np.ndarray, batch_size: int, seed: int | None) -> None:
        self.x = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in x.items()}
        self.y = torch.from_numpy(y)
        self.batch_size = batch_size
        self.gen = None if seed is None else torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return (len(self.y) + self.batch_size - 1) // self.batch_size

    def __iter__(self):  # noqa: ANN204
        n = len(self.y)
        order = torch.randperm(n, generator=self.gen) if self.gen is not None else torch.arange(n)
        for i in range(0, n, self.batch_size):
            idx = order[i:i + self.batch_size]
            yield {k: v[idx] for k, v in self.x.items()}, self.y[idx]


def build(spec: RankerSpec, prep: T.Prepared):  # noqa: ANN201 (torch_rechub MTLTrainer)
    from torch_rechub.basic.features import DenseFeature, SparseFeature
    from torch_rechub.models.multi_task import MMOE
    from torch_rechub.trainers import MTLTrainer

    m = spec.model
    features = [SparseFeature(f.name, vocab_size=f.cardinality, embed_dim=m.embedding_dim)
                for f in prep.encoders.categorical]
    features += [DenseFeature(f.name) for f in prep.encoders.numeric]
    task_types = ["classification" if t.type == "binary" else "regression" for t in spec.tasks]
    model = MMOE(features, task_types, n_expert=m.num_experts,
                 expert_params={"dims": list(m.expert_hidden)},
                 tower_params_list=[{"dims": list(m.tower_hidden)} for _ in spec.tasks])
    trainer = MTLTrainer(model, task_types, n_epoch=1, device="cpu")
    trainer.loss_fns = [masked(fn) for fn in trainer.loss_fns]
    return trainer


@torch.no_grad()
def predict(model, x: dict[str, np.ndarray]) -> np.ndarray:  # noqa: ANN001
    model.eval()
    parts = [model(xb).numpy() for xb, _ in Batches(x, np.zeros(len(next(iter(x.values()))), np.float32),
                                                    inference.EVAL_BATCH, None)]
    return np.concatenate(parts).astype(np.float64)


def valid_loss(model, spec: RankerSpec, prep: T.Prepared) -> float:  # noqa: ANN001
    """Our validation loss (fixed task weights, masked means) on the library's predictions."""
    pred = torch.from_numpy(predict(model, inputs(prep, prep.valid))).float()
    y = torch.from_numpy(targets(prep.valid))
    total = 0.0
    for j, t in enumerate(spec.tasks):
        seen = ~torch.isnan(y[:, j])
        p = pred[seen, j]
        total += t.weight * float(F.binary_cross_entropy(p.clamp(1e-7, 1 - 1e-7), y[seen, j]) if t.type == "binary"
                                  else F.mse_loss(p, y[seen, j]))
    return total


def run_rechub(spec: RankerSpec, prep: T.Prepared) -> tuple[dict, list[dict], np.ndarray]:
    """Train and evaluate; returns (metrics, per-epoch history, natural-unit test predictions)."""
    T.set_seed(spec.train.seed)
    trainer = build(spec, prep)
    batches = Batches(inputs(prep, prep.train), targets(prep.train), spec.train.batch_size, spec.train.seed)
    best, best_state, stale, history = float("inf"), None, 0, []
    for epoch in range(1, spec.train.epochs + 1):
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            trainer.train_one_epoch(batches)  # prints its loss and a tqdm bar
        seconds = time.perf_counter() - t0
        loss = valid_loss(trainer.model, spec, prep)
        history.append({"epoch": epoch, "seconds": seconds, "valid_loss": loss})
        if loss < best - 1e-6:
            best, best_state, stale = loss, copy.deepcopy(trainer.model.state_dict()), 0
        else:
            stale += 1
            if stale > spec.train.early_stopping_patience:
                break
    trainer.model.load_state_dict(best_state)
    metrics = {}
    for split in ("valid", "test"):
        e = getattr(prep, split)
        preds = natural_units(predict(trainer.model, inputs(prep, e)), spec, prep)
        metrics[split] = prediction_metrics(preds, e.raw_labels, e.request, spec)
    return metrics, history, preds
