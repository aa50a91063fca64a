"""Per-request ranking metrics of logged requests, vectorized over all requests at once.

Rows belong to a request by the *value* of their request id (wherever the rows lie). Within a
request, rows are ranked by score, best first, ties kept in row order: the order the server's
`top_k_order` gives a request whose candidates arrive in row order.

Every function returns one value per request, (R,), NaN where the metric is undefined (e.g.
NDCG of a request with no positive gain), so callers average, bootstrap or pair them.

    ndcg        DCG@k / ideal DCG@k with a label as the gain (null labels count 0)
    seen_ndcg   the same among only the rows whose label was observed (e.g. likes among clicked
                items: satisfaction without the click that revealed it)
    yield       sum of the labels among the top k / min(k, request size): the mean label per shown slot
    overlap     |top-k(a) & top-k(b)| / min(k, request size)
    kendall_tau tau-b between two orders of the same request
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from training.data.requests import request_index

TAU_CHUNK_CELLS = 1_000_000  # padded (requests x size x size) cells per chunk of the Kendall tau


@dataclass(frozen=True)
class Requests:
    """Rows grouped by request id value.

    Args:
        group: (N,) request index of each row, 0..R-1 (in order of first appearance).
        ids: (R,) the request id of each index.
        sizes: (R,) rows per request.
    """

    group: np.ndarray
    ids: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, request_ids: np.ndarray) -> Requests:
        """Group (N,) request id values; equal values are one request wherever their rows are.

        The grouping is the trainer's (training/data/requests.py `request_index`): requests are
        numbered in order of first appearance, so the order of requests follows the log.
        """
        values = np.asarray(request_ids)
        group = request_index(pa.array(values.reshape(-1)))
        n = int(group.max()) + 1 if len(group) else 0
        first = np.full(n, len(group), dtype=np.int64)
        np.minimum.at(first, group, np.arange(len(group)))
        return cls(group=group, ids=values.reshape(-1)[first], sizes=np.bincount(group, minlength=n))

    @classmethod
    def of_index(cls, request: np.ndarray) -> Requests:
        """Requests of an (N,) dense request index (as `request_index` gives); ids are the indices."""
        group = np.asarray(request, dtype=np.int64)
        sizes = np.bincount(group) if len(group) else np.zeros(0, dtype=np.int64)
        return cls(group=group, ids=np.arange(len(sizes)), sizes=sizes)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, keep: np.ndarray) -> np.ndarray:
        """(N,) bool: the rows of the requests where keep (R,) is True."""
        return keep[self.group]


def positions(req: Requests, scores: np.ndarray) -> np.ndarray:
    """(N,) 0-based position of each row in its request, by score descending, ties in row order."""
    n = len(scores)
    order = np.lexsort((np.arange(n), -np.asarray(scores, dtype=np.float64), req.group))
    starts = np.r_[0, np.cumsum(req.sizes)[:-1]]
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n) - starts[req.group[order]]
    return pos


def discount(pos: np.ndarray, k: int) -> np.ndarray:
    """1 / log2(position + 2) inside the top k, 0 below it."""
    return np.where(pos < k, 1.0 / np.log2(pos + 2.0), 0.0)


def _per_request(req: Requests, values: np.ndarray) -> np.ndarray:
    return np.bincount(req.group, weights=values, minlength=len(req))


def gains_of(labels: np.ndarray) -> np.ndarray:
    """(N,) label -> gain: null (NaN) counts 0; negative labels are refused by the caller's check."""
    return np.nan_to_num(np.asarray(labels, dtype=np.float64), nan=0.0)


def ndcg(req: Requests, scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(R,) NDCG@k of the order by `scores` with `labels` as gains; NaN without a positive gain, and for
    one-row requests, which rank nothing. The one NDCG: metrics.ndcg_at_k is its mean over requests."""
    gain = gains_of(labels)
    dcg = _per_request(req, gain * discount(positions(req, scores), k))
    ideal = _per_request(req, gain * discount(positions(req, gain), k))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((ideal > 0) & (req.sizes > 1), dcg / ideal, np.nan)


def observed_only(req: Requests, labels: np.ndarray) -> tuple[Requests, np.ndarray]:
    """The requests restricted to rows with an observed (non-NaN) label, and those rows (N,) bool.

    Request indices are kept (a request without such rows has size 0), so per-request results align.
    """
    seen = ~np.isnan(np.asarray(labels, dtype=np.float64))
    group = req.group[seen]
    return Requests(group=group, ids=req.ids, sizes=np.bincount(group, minlength=len(req))), seen


def seen_ndcg(req: Requests, scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(R,) NDCG@k of the order by `scores` among the rows whose label was observed."""
    sub, seen = observed_only(req, labels)
    return ndcg(sub, np.asarray(scores)[seen], np.asarray(labels)[seen], k)


def shown(req: Requests, k: int) -> np.ndarray:
    """(R,) slots of a top k: min(k, request size)."""
    return np.minimum(req.sizes, k).astype(np.float64)


def topk_yield(req: Requests, scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(R,) mean label per slot of the top k (null labels count 0)."""
    top = positions(req, scores) < k
    return _per_request(req, gains_of(labels) * top) / shown(req, k)


def random_ndcg(req: Requests, labels: np.ndarray, k: int) -> np.ndarray:
    """(R,) expected NDCG@k of a uniformly random order: every position holds the mean gain."""
    gain = gains_of(labels)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_gain = _per_request(req, gain) / req.sizes
    # disc_sum[s]: the sum of the discounts of the first min(k, s) positions.
    disc_sum = np.r_[0.0, np.cumsum(1.0 / np.log2(np.arange(int(req.sizes.max(initial=0))) + 2.0))]
    disc_sum[k + 1:] = disc_sum[min(k, len(disc_sum) - 1)]
    ideal = _per_request(req, gain * discount(positions(req, gain), k))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((ideal > 0) & (req.sizes > 1), mean_gain * disc_sum[req.sizes] / ideal, np.nan)


def random_yield(req: Requests, labels: np.ndarray) -> np.ndarray:
    """(R,) expected top-k yield of a random order: the request's mean label."""
    return _per_request(req, gains_of(labels)) / req.sizes


def overlap(req: Requests, a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """(R,) share of the top k by `a` that is also in the top k by `b`."""
    both = (positions(req, a) < k) & (positions(req, b) < k)
    return _per_request(req, both.astype(np.float64)) / shown(req, k)


def kendall_tau(req: Requests, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(R,) Kendall tau-b between the scores `a` and `b` of each request; NaN when either is constant.

    Pairs are compared in padded (requests, size, size) blocks of similar-size requests.
    """
    out = np.full(len(req), np.nan)
    rows_by_request = np.argsort(req.group, kind="stable")
    starts = np.r_[0, np.cumsum(req.sizes)[:-1]]
    by_size = np.argsort(req.sizes, kind="stable")
    i = 0
    while i < len(by_size):
        j = i + 1
        while j < len(by_size) and (j - i + 1) * int(req.sizes[by_size[j]]) ** 2 <= TAU_CHUNK_CELLS:
            j += 1
        chunk = by_size[i:j]
        width = int(req.sizes[chunk].max())
        out[chunk] = _tau_block(chunk, starts, req.sizes, rows_by_request, np.asarray(a, float), np.asarray(b, float),
                                width)
        i = j
    return out


def _tau_block(chunk: np.ndarray, starts: np.ndarray, sizes: np.ndarray, rows: np.ndarray, a: np.ndarray,
               b: np.ndarray, width: int) -> np.ndarray:
    """tau-b of each request in `chunk`, from (C, W, W) sign matrices padded to width W."""
    col = np.arange(width)
    valid = col[None, :] < sizes[chunk, None]  # (C, W)
    idx = rows[np.where(valid, starts[chunk, None] + col[None, :], 0)]  # (C, W) row numbers
    pa_, pb = np.where(valid, a[idx], 0.0), np.where(valid, b[idx], 0.0)
    pair = valid[:, :, None] & valid[:, None, :] & (col[None, :, None] < col[None, None, :])  # i < j
    sa = np.sign(pa_[:, :, None] - pa_[:, None, :]) * pair  # (C, W, W)
    sb = np.sign(pb[:, :, None] - pb[:, None, :]) * pair
    concordance = (sa * sb).sum(axis=(1, 2))
    denom = np.sqrt(np.abs(sa).sum(axis=(1, 2)) * np.abs(sb).sum(axis=(1, 2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, concordance / denom, np.nan)
