"""Warm start: initialize a new model from the CURRENT bundle's checkpoint.pt.

Vocabularies change between nights (new users and items appear, rare ones drop out), so embedding
rows are copied by *value*: the row of item "i42" goes to wherever "i42" sits in the new vocabulary,
and rows of unseen values keep their fresh initialization. Towers, gates and (CGC / PLE) each task's
own experts are matched by task name, so a reordered or extended task list still starts from the
right heads; a PLE shared gate's rows (one per expert) are re-ordered the same way. A checkpoint
of another arch is refused (WarmStartError); so is one whose `numeric_embedding: ple_auto` binned other numeric
features, which `ranker retrain` avoids by keeping CURRENT's choice (keep_binned). Every other tensor is
copied when its name and shape match, and reported as skipped otherwise (e.g. a wider expert).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from service.contract.features import FeatureEncoders
from training.data.columns import expand_numeric_patterns
from training.modeling.args import ModelArgs
from training.spec import RankerSpec

EMBEDDING_SUFFIX = "inputs.embedding.weight"
# Modules indexed by task: towers.T, gates.T (MMoE), models.T (single-task), and PLE/CGC's
# levels.L.task_experts.T / levels.L.task_gates.T.
PER_TASK = re.compile(r"^((?:levels\.\d+\.)?(?:towers|gates|models|task_experts|task_gates))\.(\d+)\.")
SHARED_GATE = re.compile(r"^levels\.\d+\.shared_gate\.linear\.(weight|bias)$")


class WarmStartError(ValueError):
    """A checkpoint that cannot initialize this model; the message says why and what to do."""


def load_checkpoint(path: Path) -> dict:
    """The checkpoint written by training.bundle.export.save_checkpoint (plain tensors and lists only)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def old_name(name: str, task_index: dict[int, int], shared_gate: bool) -> str | None:
    """Name of the matching tensor in the old model, with per-task modules re-indexed by task name."""
    m = PER_TASK.match(name)
    if m is None or (m.group(1) == "gates" and shared_gate):
        return name
    old = task_index.get(int(m.group(2)))
    return None if old is None else f"{m.group(1)}.{old}.{name[m.end():]}"


def embedding_rows(new: FeatureEncoders, old_vocab: dict[str, list[str]], old_cards: list[int]
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Row indices (new_rows, old_rows) of the shared embedding table holding the same values.

    The table stacks one block per categorical feature; row 0 of a block is the OOV slot.
    Returns also, per feature, how many vocabulary rows were carried over.
    """
    old_names = list(old_vocab)
    old_offsets = dict(zip(old_names, np.cumsum([0, *old_cards[:-1]]).tolist(), strict=True))
    new_rows, old_rows, mapped = [], [], {}
    offset = 0
    for f in new.categorical:
        if f.name in old_vocab:
            where = {v: i + 1 for i, v in enumerate(old_vocab[f.name])}
            pairs = [(0, 0)] + [(i + 1, where[v]) for i, v in enumerate(f.vocab) if v in where]
            new_rows += [offset + a for a, _ in pairs]
            old_rows += [old_offsets[f.name] + b for _, b in pairs]
            mapped[f.name] = len(pairs) - 1
        offset += f.cardinality
    return np.asarray(new_rows, dtype=np.int64), np.asarray(old_rows, dtype=np.int64), mapped


def shared_gate_rows(args: ModelArgs, old_args: ModelArgs, task_index: dict[int, int]) -> tuple[list[int], list[int]]:
    """(new slots, old slots) of a PLE shared gate holding the same expert: task t's own experts sit
    in slots t*K..t*K+K-1 (in task order), the shared experts after every task's."""
    k, old_k = args.task_experts, old_args.task_experts
    new, old = [], []
    for t, o in task_index.items():
        for j in range(min(k, old_k)):
            new.append(t * k + j)
            old.append(o * old_k + j)
    for j in range(min(args.shared_experts, old_args.shared_experts)):
        new.append(len(args.tasks) * k + j)
        old.append(len(old_args.tasks) * old_k + j)
    return new, old


def embedded_numerics(args: ModelArgs) -> list[int]:
    """The numeric features the model embeds (`none`: none; `ple_auto`: those it binned; else every one)."""
    if args.numeric_embedding == "ple_auto":
        return list(args.numeric_binned or [])
    return [] if args.numeric_embedding == "none" else list(range(args.n_numeric))


def check_binned(args: ModelArgs, old_args: ModelArgs, numeric_names: list[str]) -> None:
    """Refuse a checkpoint whose `ple_auto` binned other numeric features than this window's choice: its bin
    weights belong to other features, and its first layers read a layout of the same width but other columns."""
    if "ple_auto" not in (args.numeric_embedding, old_args.numeric_embedding):
        return
    new, old = embedded_numerics(args), embedded_numerics(old_args)
    if new == old:
        return
    new_names, old_names = ([numeric_names[j] for j in e if j < len(numeric_names)] for e in (new, old))
    raise WarmStartError(f"warm start: CURRENT was trained with binned numeric features {old_names} and this "
                         f"window's model has {new_names}; copying weights would pair "
                         "them with other features. Retrain once without --warm-start (or set "
                         "model.numeric_embedding: ple to bin every numeric feature on every night).")


def keep_binned(spec: RankerSpec, checkpoint: dict, numeric_names: list[str]) -> tuple[RankerSpec, list[str] | None]:
    """The spec with CURRENT's `ple_auto` choice of binned features (`model.numeric_binned`), when both models use
    ple_auto and the spec names none itself: this window's data may tip the rule for a column, and a warm start
    needs the bin weights on the features they were learned for. Returns (spec, the names kept, or None).

    `numeric_names`: CURRENT's numeric features in encoder order (its manifest). A kept feature the spec no longer
    has (after its numeric patterns are expanded, as train() expands them) is left out, and the warm start then
    refuses with check_binned's message.
    """
    old = ModelArgs(**checkpoint["model_args"])
    m = spec.model
    if m.numeric_embedding != "ple_auto" or m.numeric_binned is not None or old.numeric_embedding != "ple_auto":
        return spec, None
    declared = {f.name for f in expand_numeric_patterns(spec)[0].features.numeric}
    names = [n for n in (numeric_names[j] for j in old.numeric_binned or []) if n in declared]
    spec = spec.model_copy(deep=True)
    spec.model.numeric_binned = names
    return spec, names


def warm_start(model: nn.Module, args: ModelArgs, encoders: FeatureEncoders, checkpoint: dict) -> dict:
    """Copy what carries over from `checkpoint` into `model` (in place). Returns a summary for the report.

    Raises WarmStartError when the checkpoint's arch differs: its experts and gates mean something
    else in another arch, so copying by name would start from a model that never existed.
    """
    old_args = ModelArgs(**checkpoint["model_args"])
    if old_args.arch != args.arch:
        raise WarmStartError(f"warm start: CURRENT was trained as model.arch {old_args.arch!r} and the spec asks for "
                             f"{args.arch!r}; a warm start needs the same arch. Retrain once without --warm-start.")
    check_binned(args, old_args, [f.name for f in encoders.numeric])
    old_state: dict[str, torch.Tensor] = checkpoint["state_dict"]
    task_index = {i: old_args.tasks.index(t) for i, t in enumerate(args.tasks) if t in old_args.tasks}
    shared_gate = args.arch == "omoe"
    new_rows, old_rows, mapped = embedding_rows(encoders, checkpoint["vocabularies"], old_args.cardinalities)
    state = model.state_dict()
    copied, skipped = [], []
    for name, tensor in state.items():
        source = old_name(name, task_index, shared_gate)
        old = old_state.get(source) if source else None
        if old is not None and name.endswith(EMBEDDING_SUFFIX) and old.shape[1:] == tensor.shape[1:]:
            tensor[torch.from_numpy(new_rows)] = old[torch.from_numpy(old_rows)]
            copied.append(name)
        elif old is not None and SHARED_GATE.match(name) and old.shape[1:] == tensor.shape[1:]:
            new_slots, old_slots = shared_gate_rows(args, old_args, task_index)
            tensor[new_slots] = old[old_slots]  # rows = slots, re-ordered by task name
            copied.append(name)
        elif old is not None and old.shape == tensor.shape:
            state[name] = old.clone()
            copied.append(name)
        else:
            skipped.append(name)
    model.load_state_dict(state)
    total_vocab = {f.name: len(f.vocab) for f in encoders.categorical}
    return {"copied_tensors": len(copied), "skipped_tensors": skipped,
            "embedding_rows_mapped": {f: f"{n}/{total_vocab[f]}" for f, n in mapped.items()}}
