"""Ranking requests: the rows with equal `request_id` values, wherever they lie in the table.

Grouping is by value, never by contiguity: a user's rows interleaved with other users' in time
are still one request when `request_id` names the user. This module also describes the requests
of a split (how many, how big) and says when they look degenerate, because NDCG over accidental
groups is a silent wrong answer.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SIZE_QUANTILES = {"p10": 10, "median": 50, "p90": 90}


def request_index(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """(N,) int64 dense request index: rows with equal values share one index (hash-based, O(N))."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()  # one dictionary for all chunks
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return pc.dictionary_encode(column).indices.to_numpy(zero_copy_only=False).astype(np.int64)


def request_sizes(request: np.ndarray) -> np.ndarray:
    """(R,) rows per request, for the requests present in `request`."""
    sizes = np.bincount(request)
    return sizes[sizes > 0]


def request_stats(request: np.ndarray) -> dict:
    """How many requests and how large: {"count", "rows", "single_row", "size": {min, p10, median, mean, p90, max}}."""
    sizes = request_sizes(request) if len(request) else np.zeros(0, dtype=np.int64)
    if sizes.size == 0:
        return {"count": 0, "rows": 0, "single_row": 0, "size": {}}
    size = {"min": int(sizes.min()), **{k: float(np.percentile(sizes, q)) for k, q in SIZE_QUANTILES.items()},
            "mean": round(float(sizes.mean()), 3), "max": int(sizes.max())}
    return {"count": int(sizes.size), "rows": int(sizes.sum()), "single_row": int((sizes == 1).sum()), "size": size}


def size_warnings(stats: dict, column: str | None) -> list[str]:
    """Warnings for groups that cannot be ranking requests (e.g. one row each)."""
    if not stats.get("count"):
        return []
    name = f" ({column!r})" if column else ""
    if stats["size"]["median"] <= 1:
        return [f"median request size is 1: {stats['single_row']:,} of {stats['count']:,} requests{name} "
                "have a single row, and a single row ranks nothing (its NDCG would be 1.0). Is data.request_id "
                "a column that groups the candidates shown together?"]
    if stats["single_row"]:
        return [f"{stats['single_row']:,} of {stats['count']:,} requests{name} have a single row; NDCG "
                "leaves them out"]
    return []


def spanning_warning(parts: dict[str, pa.Table], column: str) -> str | None:
    """A warning when some request values have rows in more than one split, else None.

    Such a request is partly trained on, and its rows in valid/test are ranked without the rest of
    the request: a user id used as request_id with a time split does this to every user.
    """
    names = [name for name, t in parts.items() if t.num_rows]
    uniques = [pc.unique(parts[name].column(column).combine_chunks()) for name in names]
    if len(uniques) < 2:
        return None
    # Each split's distinct values once, all together: a value counted twice lies in two splits.
    counts = pc.value_counts(pa.concat_arrays([u.cast(uniques[0].type) for u in uniques])).field("counts")
    spanning, total = int(pc.sum(pc.greater(counts, 1)).as_py() or 0), len(counts)
    return spanning_message(spanning, total, "requests", column, names)


def spanning_message(spanning: int, total: int, what: str, column: str, names: list[str]) -> str | None:
    """The warning for `spanning` of `total` requests (described as `what`) found in more than one split."""
    if not spanning:
        return None
    return (f"{spanning:,} of {total:,} {what} ({spanning / total:.0%}) by {column!r} span more than one split "
            f"({', '.join(names)}), so ranking metrics mix rows the model trained on. A request_id should "
            "name one ranking request; if it names a user, use a split that keeps requests whole "
            "(split: random, or split_column)")
