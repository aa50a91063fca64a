"""The response of one request: the top-k order and the JSON bytes, built for the returned items only.

    {request_id, model_version, profile, arm, weights_generation, [lookup],
     items: [{item_id, score, rank, [scores: {task: head}], [contributions: {task: part}]}, ...]}

Per-task `scores` are optional (the request's `scores` field, default on). Everything here is
per returned item, so a `top_k` request pays for k items, not for every candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import orjson

from service.contract.request import ITEM_ID


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


def response_body(header: dict, candidates: list[dict], scores: np.ndarray, heads: dict[str, np.ndarray],
                  order: np.ndarray, contributions: dict[str, np.ndarray] | None = None,
                  with_scores: bool = True) -> bytes:
    """The JSON response: `header` fields plus one item per index of `order`, best first.

    Args:
        heads: {task: (B,)} natural-unit heads; each item's `scores` when with_scores.
        contributions: {task: (B,)} parts of the score; each item's `contributions` when given.
    """
    picked = order.tolist()
    ids = [candidates[i][ITEM_ID] for i in picked]
    columns: list[list[float]] = [scores[order].tolist()]
    names = tuple(heads) if with_scores else ()
    columns += [heads[t][order].tolist() for t in names]
    parts = tuple(contributions) if contributions is not None else ()
    columns += [contributions[t][order].tolist() for t in parts] if contributions is not None else []
    items = item_builder(names, parts)(ids, range(1, len(picked) + 1), *columns)
    return orjson.dumps({**header, "items": items})


@cache
def item_builder(task_names: tuple[str, ...], part_names: tuple[str, ...]) -> Callable[..., list[dict[str, Any]]]:
    """A function (ids, ranks, score column, one column per task, one per part) -> the items' dicts.

    It is generated once per set of names so that each item's nested `scores` is a dict literal:
    `dict(zip(names, values))` per item made building and serializing 500 items 1.3-1.6x slower
    (about 0.3 ms of ~1 ms, measured side by side on the shared 2-core machine). Names enter the
    source only as repr() literals, and the generated code sees no builtin but zip.
    """
    heads = [f"h{k}" for k in range(len(task_names))]
    parts = [f"p{k}" for k in range(len(part_names))]
    item = [f"{ITEM_ID!r}: i", "'score': s", "'rank': r"]
    if task_names:
        item.append("'scores': {" + ", ".join(f"{n!r}: {v}" for n, v in zip(task_names, heads, strict=True)) + "}")
    if part_names:
        item.append("'contributions': {" + ", ".join(f"{n!r}: {v}" for n, v in zip(part_names, parts, strict=True))
                    + "}")
    args = ", ".join(["ids", "ranks", "s_col", *(f"{v}_col" for v in heads + parts)])
    loop = ", ".join(["i", "r", "s", *heads, *parts])
    source = (f"lambda {args}: [{{{', '.join(item)}}} for {loop} in "
              f"zip(ids, ranks, s_col, {', '.join(f'{v}_col' for v in heads + parts)}{',' if heads or parts else ''})]")
    return eval(compile(source, "<item_builder>", "eval"), {"__builtins__": {"zip": zip}})  # noqa: S307
