"""Listwise ranking losses over each request's candidates (the ranking head, tasks of type `ranking`).

A batch holds whole requests (training/streaming/feed.py groups them); `group` (B,) numbers them 0..G-1. The
rows are laid out as a padded (G, L) matrix, L the largest request, so both losses are a few tensor ops with no
per-request Python. Requests are padded within their size class (sizes in (2^(c-1), 2^c]): in one matrix, a
600-row request among 3-row ones would pad every request to 600 (lambdarank's pairs: G x 600 x 600).

    listnet     softmax cross-entropy: -sum_i (g_i / sum_j g_j) * log softmax(s)_i over a request (ListNet's
                top-one probabilities; TF-Ranking's softmax loss)
    lambdarank  pairwise logistic loss log(1 + exp(-(s_i - s_j))) over the pairs with g_i > g_j, each weighted by
                |delta NDCG_ij|, the change in the request's NDCG (linear gains, the scores' current order) when
                i and j swap places (LambdaRank / LambdaMART's weights, Burges 2010), averaged with those weights

A candidate without a gain (mask False: every gain label null, with the task's missing_gain: skip) is not
part of its list. A request with
fewer than two such candidates, or without a positive gain, carries no listwise signal: it is skipped, and
the counts say how many requests did count.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def padded(group: torch.Tensor, *values: torch.Tensor, fill: float = 0.0) -> tuple[torch.Tensor, ...]:
    """Rows -> a (G, L) matrix per value (requests as rows, padded with `fill`), and the (G, L) bool of real rows.

    group: (B,) int64 in [0, G), rows of a request in any order.
    """
    n_groups = int(group.max()) + 1 if group.numel() else 0
    order = torch.argsort(group, stable=True)
    g = group[order]
    sizes = torch.bincount(g, minlength=n_groups)
    starts = torch.cumsum(sizes, 0) - sizes
    pos = torch.arange(len(g)) - starts[g]
    width = int(sizes.max()) if n_groups else 0
    out = []
    for v in values:
        m = torch.full((n_groups, width), fill, dtype=v.dtype)
        m[g, pos] = v[order]
        out.append(m)
    real = torch.zeros((n_groups, width), dtype=torch.bool)
    real[g, pos] = True
    return (*out, real)


def size_buckets(group: torch.Tensor) -> list[torch.Tensor]:
    """The batch's rows by their request's size class, ceil(log2(size)): (rows,) indices per class present
    (one class: every row). Within a class no request is padded to more than twice its size."""
    sizes = torch.bincount(group)
    size_class = torch.ceil(torch.log2(sizes.clamp_min(1).to(torch.float64))).to(torch.int64)[group]
    classes = torch.unique(size_class)
    if len(classes) <= 1:
        return [torch.arange(len(group))]
    return [torch.nonzero(size_class == c).squeeze(1) for c in classes.tolist()]


def listnet(scores: torch.Tensor, gains: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(G, L) scores, gains >= 0, valid -> ((G,) loss per request, (G,) bool: the request carries signal)."""
    total = torch.where(valid, gains, torch.zeros_like(gains)).sum(dim=1)  # (G,)
    signal = (valid.sum(dim=1) >= 2) & (total > 0)
    log_p = torch.log_softmax(scores.masked_fill(~valid, float("-inf")), dim=1)
    target = torch.where(valid, gains, torch.zeros_like(gains)) / total.clamp_min(1e-12).unsqueeze(1)
    loss = -(target * torch.where(valid, log_p, torch.zeros_like(log_p))).sum(dim=1)
    return torch.where(signal, loss, torch.zeros_like(loss)), signal


def lambdarank(scores: torch.Tensor, gains: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(G, L) scores, gains >= 0, valid -> ((G,) |delta NDCG|-weighted mean pairwise logistic loss, (G,) signal)."""
    gains = torch.where(valid, gains, torch.zeros_like(gains))
    with torch.no_grad():
        discount = _discounts(scores.masked_fill(~valid, float("-inf")))  # (G, L) 1/log2(rank + 2) now
        ideal = _ideal_dcg(gains)  # (G,)
        weight = (gains.unsqueeze(2) - gains.unsqueeze(1)).abs() * (discount.unsqueeze(2) - discount.unsqueeze(1)).abs()
        better = (gains.unsqueeze(2) > gains.unsqueeze(1)) & valid.unsqueeze(2) & valid.unsqueeze(1)  # (G, L, L)
        weight = torch.where(better, weight / ideal.clamp_min(1e-12).view(-1, 1, 1), torch.zeros_like(weight))
        total = weight.sum(dim=(1, 2))  # (G,)
    signal = (valid.sum(dim=1) >= 2) & (ideal > 0) & (total > 0)
    pair = F.softplus(-(scores.unsqueeze(2) - scores.unsqueeze(1)))  # (G, L, L): log(1 + exp(-(s_i - s_j)))
    loss = (weight * pair).sum(dim=(1, 2)) / total.clamp_min(1e-12)
    return torch.where(signal, loss, torch.zeros_like(loss)), signal


def _discounts(scores: torch.Tensor) -> torch.Tensor:
    """(G, L) -> 1 / log2(2 + rank) of each entry by descending score within its row (rank 0 = first)."""
    order = torch.argsort(scores, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(scores.shape[1]).expand_as(order))
    return 1.0 / torch.log2(rank.to(scores.dtype) + 2.0)


def _ideal_dcg(gains: torch.Tensor) -> torch.Tensor:
    """(G, L) gains -> (G,) DCG of the ideal order."""
    ideal = torch.sort(gains, dim=1, descending=True).values
    disc = 1.0 / torch.log2(torch.arange(gains.shape[1], dtype=gains.dtype) + 2.0)
    return (ideal * disc).sum(dim=1)


LOSSES = {"listnet": listnet, "lambdarank": lambdarank}


def listwise_loss(kind: str, scores: torch.Tensor, gains: torch.Tensor, mask: torch.Tensor,
                  group: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One ranking task on one batch: (mean loss over the requests with signal (), their count ()).
    scores, gains (B,) float; mask (B,) bool (the row has a gain); group (B,) int64."""
    buckets = size_buckets(group)
    parts = [(group, scores, gains, mask)] if len(buckets) == 1 else [
        (torch.unique(group[rows], return_inverse=True)[1], scores[rows], gains[rows], mask[rows]) for rows in buckets]
    losses, signals = [], []
    for local, s_rows, g_rows, m_rows in parts:  # local: the class's requests numbered 0..
        s, g, m, real = padded(local, s_rows, g_rows, m_rows.to(scores.dtype))
        per_request, signal = LOSSES[kind](s, g, real & (m > 0))
        losses.append(per_request.sum())
        signals.append(signal.sum())
    counted = torch.stack(signals).sum().to(scores.dtype)
    return torch.stack(losses).sum() / counted.clamp_min(1.0), counted
