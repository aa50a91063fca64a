"""The served graph split by input source: user and context once per request, items once per candidate.

Every candidate of a request carries the same user and context features, so every layer that reads
the concatenated input x (the first Linear of each expert, gate and shared bottom, CGC/PLE's
level-0 experts and gates) computes

    x·Wᵀ + b  =  u·W_uᵀ + b  +  i·W_iᵀ          u: (1, D_u) user/context blocks, i: (B, D_i) item blocks

with W_u, W_i the columns of W at those features' slices of x (FeatureInput.feature_slices). The
first term is one row per request, broadcast over the B candidates; only the second is per candidate.
The exported graph takes four inputs (a group with no feature is left out):

    request_categorical (1, C_u) int64   request_numeric (1, F_u) float32   user and context features
    item_categorical    (B, C_i) int64   item_numeric    (B, F_i) float32   one row per candidate

Nothing here knows an architecture. The Linear layers that read x are found by running the model
once with hooks, then replaced by `SplitLinear`; the FeatureInput is replaced by one that embeds the
two groups apart. A model that uses x in any other way (an elementwise cross layer, say) cannot be
split this way; `split_heads` raises SplitUnsupported and the export writes the unsplit graph.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from service.contract.features import FeatureEncoders
from service.contract.layout import REQUEST_SOURCES, SplitColumns, split_columns
from training.modeling.modules import FeatureInput


class SplitUnsupported(Exception):
    """The model reads its input other than through Linear layers (or has nothing to split)."""


@dataclass(frozen=True)
class SplitX:
    """x held as its two parts: u (1, D_u) for the request, i (B, D_i) per candidate. Not a tensor on
    purpose: any use of x other than a SplitLinear fails loudly at export instead of mixing rows."""

    u: torch.Tensor
    i: torch.Tensor


class SplitLinear(nn.Module):
    """A Linear over x computed as u·W_uᵀ + b (one row) + i·W_iᵀ (B rows). (B, H) out."""

    def __init__(self, linear: nn.Linear, u_cols: torch.Tensor, i_cols: torch.Tensor) -> None:
        super().__init__()
        w = linear.weight.detach()
        self.w_u = nn.Parameter(w[:, u_cols].clone(), requires_grad=False)  # (H, D_u)
        self.w_i = nn.Parameter(w[:, i_cols].clone(), requires_grad=False)  # (H, D_i)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x: SplitX) -> torch.Tensor:
        if not isinstance(x, SplitX):
            raise SplitUnsupported("a Linear layer that reads the input also reads something else")
        # addmm, not matmul + add: the (1, H) user/context row becomes the Gemm's broadcast C input, so
        # onnxruntime still fuses the following ReLU into the Gemm (an Add in between cost ~10% of the graph).
        return torch.addmm(F.linear(x.u, self.w_u, self.bias), x.i, self.w_i.t())  # (1, H) + (B, D_i)·(D_i, H)


class SplitFeatureInput(nn.Module):
    """FeatureInput for the split graph: (request inputs, item inputs) -> SplitX."""

    def __init__(self, inputs: FeatureInput, columns: SplitColumns) -> None:
        super().__init__()
        self.inputs = inputs
        self.columns = columns

    def forward(self, batch: SplitBatch, _unused: object = None) -> SplitX:
        c = self.columns
        u = self.inputs.embed(batch.request_cat, batch.request_num, c.request_cat, c.request_num)  # (1, D_u)
        i = self.inputs.embed(batch.item_cat, batch.item_num, c.item_cat, c.item_num)  # (B, D_i)
        return SplitX(u, i)

    def x_columns(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Where u's and i's columns sit in x: (D_u,), (D_i,) indices, in embed's order."""
        slices = self.inputs.feature_slices()
        n_cat = len(self.inputs.offsets)

        def cols(cat: list[int], num: list[int]) -> torch.Tensor:
            feats = [slices[j] for j in cat] + [slices[n_cat + f] for f in num]
            return torch.tensor([k for s in feats for k in range(s.start, s.stop)], dtype=torch.long)

        c = self.columns
        return cols(c.request_cat, c.request_num), cols(c.item_cat, c.item_num)


@dataclass
class SplitBatch:
    """The split graph's inputs; an empty group is a (rows, 0) tensor that no layer reads."""

    request_cat: torch.Tensor
    request_num: torch.Tensor
    item_cat: torch.Tensor
    item_num: torch.Tensor


class SplitHeads(nn.Module):
    """The export graph over the split inputs, named as `SplitColumns.input_names` (absent groups left out)."""

    def __init__(self, heads: nn.Module, columns: SplitColumns) -> None:
        super().__init__()
        self.heads = heads
        self.columns = columns

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        named = dict(zip(self.columns.input_names(), inputs, strict=True))
        n = named[self.columns.item_input()].shape[0]
        empty_int, empty_float = torch.zeros((n, 0), dtype=torch.long), torch.zeros((n, 0))
        batch = SplitBatch(named.get("request_categorical", empty_int[:1]), named.get("request_numeric", empty_float[:1]),
                           named.get("item_categorical", empty_int), named.get("item_numeric", empty_float))
        return self.heads(batch, None)


def split_heads(heads: nn.Module, features: FeatureEncoders, example: tuple[torch.Tensor, torch.Tensor]) -> SplitHeads:
    """A copy of `heads` (categorical, numeric) -> outputs, rebuilt over the split inputs.

    Args:
        heads: the unsplit export module (ExportHeads), in eval mode.
        features: the model's encoders; their `source` says which columns are user/context.
        example: (categorical (B, C), numeric (B, F)) rows to find the layers that read x.
    Raises SplitUnsupported when there is nothing to split or x is read other than by Linear layers.
    """
    columns = split_columns(features)
    if not columns.splittable():
        raise SplitUnsupported(f"nothing to split: the model needs features of both kinds ({REQUEST_SOURCES} "
                               "and item)")
    original, heads = heads, copy.deepcopy(heads).eval()
    readers = _readers_of_inputs(heads, example)
    for inputs, linears in readers.items():
        split_input = SplitFeatureInput(inputs, columns)
        u_cols, i_cols = split_input.x_columns()
        for name in linears:
            _set_module(heads, name, SplitLinear(heads.get_submodule(name), u_cols, i_cols))
        _set_module(heads, _name_of(heads, inputs), split_input)
    split = SplitHeads(heads, columns).eval()
    _check_split(split, original, columns, example)
    return split


@torch.no_grad()
def _check_split(split: SplitHeads, heads: nn.Module, columns: SplitColumns,
                 example: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Run the split module on the example rows as one request: it must run (x used only by the split
    Linears) and give the unsplit model's outputs."""
    cat, num = example[0].clone(), example[1].clone()
    cat[:, columns.request_cat], num[:, columns.request_num] = cat[:1, columns.request_cat], num[:1, columns.request_num]
    parts = {"request_categorical": cat[:1, columns.request_cat], "request_numeric": num[:1, columns.request_num],
             "item_categorical": cat[:, columns.item_cat], "item_numeric": num[:, columns.item_num]}
    try:
        got = split(*(parts[n] for n in columns.input_names()))
    except (TypeError, AttributeError, RuntimeError, SplitUnsupported) as e:
        raise SplitUnsupported(f"the model reads its input other than through Linear layers ({e})") from e
    want = heads(cat, num)
    worst = max(float((g - w).abs().max()) for g, w in zip(got, want, strict=True))
    if not worst <= 1e-4:
        raise SplitUnsupported(f"the split model differs from the model by {worst:.3g} on the example rows")


@torch.no_grad()
def _readers_of_inputs(heads: nn.Module, example: tuple[torch.Tensor, torch.Tensor]) -> dict[FeatureInput, list[str]]:
    """For each FeatureInput of the model, the names of the Linear layers called on its output."""
    outputs: dict[int, tuple[FeatureInput, torch.Tensor]] = {}  # the tensor is kept so its id stays unique
    readers: dict[FeatureInput, list[str]] = {}
    hooks = []
    for name, module in heads.named_modules():
        if isinstance(module, FeatureInput):
            readers[module] = []
            hooks.append(module.register_forward_hook(
                lambda m, args, out: outputs.__setitem__(id(out), (m, out))))
        elif isinstance(module, nn.Linear):
            def pre(m: nn.Module, args: tuple, name: str = name) -> None:
                found = outputs.get(id(args[0])) if args else None
                if found is not None and name not in readers[found[0]]:
                    readers[found[0]].append(name)
            hooks.append(module.register_forward_pre_hook(pre))
    try:
        heads(*example)
    finally:
        for h in hooks:
            h.remove()
    if not readers or not all(readers.values()):
        raise SplitUnsupported("no Linear layer reads the model's input")
    return readers


def _name_of(root: nn.Module, target: nn.Module) -> str:
    return next(name for name, m in root.named_modules() if m is target)


def _set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, attr, new)
