"""The response of one request: the top-k order and the JSON bytes, built for the returned items only.

    {request_id, model_version, profile, arm, weights_generation, [lookup],
     items: [{item_id, score, rank, [scores: {task: head}], [contributions: {task: part}]}, ...]}

Per-task `scores` are optional (the request's `scores` field, default on). Everything here is
per returned item, so a `top_k` request pays for k items, not for every candidate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import msgspec
import numpy as np

from service.contract.request_decoder import renamable


def top_k_order(scores: np.ndarray, k: int | None) -> np.ndarray:
    """Indices of the k best scores, best first; ties keep request order. (B,) -> (min(k, B),)

    Equal to a stable argsort cut at k. For k < B only the candidates at or above the k-th score are
    sorted, every tie at the cut included, so which tied item makes the cut never depends on the partition.
    """
    if k is None or k >= len(scores):
        return np.argsort(-scores, kind="stable")[:k]
    neg = -scores
    kth = np.partition(neg, k - 1)[k - 1]
    candidates = np.flatnonzero(neg <= kth)  # ascending indices: ties stay in request order
    return candidates[np.argsort(neg[candidates], kind="stable")][:k]


def response_body(header: dict, ids: Sequence[Any], scores: np.ndarray, heads: dict[str, np.ndarray],
                  order: np.ndarray, contributions: dict[str, np.ndarray] | None = None,
                  with_scores: bool = True) -> bytes:
    """The JSON response: `header` fields plus one item per index of `order`, best first.

    Args:
        ids: (B,) the candidates' item ids, in request order.
        heads: {task: (B,)} natural-unit heads; each item's `scores` when with_scores.
        contributions: {task: (B,)} parts of the score; each item's `contributions` when given.
    """
    picked = order.tolist()
    names = tuple(heads) if with_scores else ()
    parts = tuple(contributions) if contributions is not None else ()
    item, nested = item_type(names, parts)
    columns = [[ids[i] for i in picked], scores[order].tolist(), range(1, len(picked) + 1)]
    for struct, values, keys in ((nested[0], heads, names), (nested[1], contributions, parts)):
        if struct is not None:  # one struct per item holding its per-task values
            columns.append(list(map(struct, *(values[t][order].tolist() for t in keys))))
    return _ENCODER.encode({**header, "items": list(map(item, *columns))})


_ENCODER = msgspec.json.Encoder()


@cache
def item_type(task_names: tuple[str, ...], part_names: tuple[str, ...]
              ) -> tuple[type, tuple[Callable[..., Any] | None, ...]]:
    """The struct of one returned item, and the makers of its `scores` and `contributions` (None when
    left out) from their values in order, for these task and part names.

    msgspec encodes structs in C, field by field in declaration order: the same bytes as dicts through
    orjson, built and encoded faster (bench/serving/serve_latency.py's stage table: 371 -> 254 µs for 500
    items, docs/BENCHMARKS.md and docs/ARCHITECTURE.md). Fields are f0, f1, ... renamed to the task names, which
    need not be identifiers (names msgspec cannot rename to get a dict per item).
    """
    def struct(name: str, keys: tuple[str, ...]) -> Callable[..., Any] | None:
        if not keys:
            return None
        if not all(map(renamable, keys)):  # a quote or backslash in a name: a dict per item instead
            return lambda *values: dict(zip(keys, values, strict=True))
        return msgspec.defstruct(name, [(f"f{k}", float) for k in range(len(keys))],
                                 rename={f"f{k}": key for k, key in enumerate(keys)}, gc=False)

    scores, contributions = struct("Scores", task_names), struct("Contributions", part_names)
    fields: list[tuple[str, Any]] = [("item_id", Any), ("score", float), ("rank", int)]
    fields += [(name, Any) for name, made in (("scores", scores), ("contributions", contributions)) if made]
    return msgspec.defstruct("RankedItem", fields, gc=False), (scores, contributions)
