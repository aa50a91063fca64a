"""Listwise losses of the ranking head (issue 22, item 1): what each computes, masks, skipped requests, and
that descending them orders requests by their gain."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from training.evaluation.metrics import ndcg_at_k
from training.modeling.listwise import LOSSES, lambdarank, listnet, listwise_loss, padded, size_buckets


def test_padded_lays_requests_out_as_rows_in_any_row_order() -> None:
    group = torch.tensor([1, 0, 1, 2, 1])
    values = torch.tensor([10.0, 20.0, 30.0, 40.0, 50.0])
    (m, real) = padded(group, values)
    assert m.tolist() == [[20.0, 0.0, 0.0], [10.0, 30.0, 50.0], [40.0, 0.0, 0.0]]
    assert real.tolist() == [[True, False, False], [True, True, True], [True, False, False]]


def test_listnet_is_the_softmax_cross_entropy_against_the_normalized_gains() -> None:
    s = torch.tensor([[1.0, 0.0, -1.0]])
    g = torch.tensor([[2.0, 1.0, 0.0]])
    loss, signal = listnet(s, g, torch.ones_like(s, dtype=torch.bool))
    p = torch.softmax(s[0], 0)
    assert signal.tolist() == [True]
    assert loss.item() == pytest.approx(-(2 / 3 * math.log(p[0]) + 1 / 3 * math.log(p[1])), rel=1e-6)


def test_lambdarank_weights_each_pair_by_its_ndcg_change() -> None:
    s = torch.tensor([[0.0, 1.0]], requires_grad=True)  # the relevant item is ranked second
    g = torch.tensor([[1.0, 0.0]])
    loss, signal = lambdarank(s, g, torch.ones((1, 2), dtype=torch.bool))
    assert signal.tolist() == [True]
    assert loss.item() == pytest.approx(math.log1p(math.exp(1.0)), rel=1e-6)  # one pair, weight normalized to 1
    loss.sum().backward()
    assert s.grad[0, 0] < 0 < s.grad[0, 1]  # descending the loss lifts the relevant item


def test_a_perfect_order_costs_less_than_its_reverse() -> None:
    g = torch.tensor([[3.0, 2.0, 1.0, 0.0, 0.0]])
    valid = torch.ones_like(g, dtype=torch.bool)
    for loss_fn in (listnet, lambdarank):
        good, _ = loss_fn(g * 2, g, valid)
        bad, _ = loss_fn(-g * 2, g, valid)
        assert good.item() < bad.item(), loss_fn.__name__


def test_requests_without_signal_are_skipped_and_masked_rows_are_not_in_the_list() -> None:
    group = torch.tensor([0, 1, 1, 2, 2, 2])  # a one-row request, one without a positive gain, one that counts
    gains = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 5.0])
    mask = torch.tensor([True, True, True, True, True, False])  # the last row has no gain: out of its list
    for kind in ("listnet", "lambdarank"):
        scores = torch.randn(6, requires_grad=True)
        loss, counted = listwise_loss(kind, scores, gains, mask, group)
        assert counted.item() == 1
        loss.backward()
        assert scores.grad[:3].abs().sum() == 0 and scores.grad[5] == 0, kind  # skipped requests, masked row
        assert scores.grad[3] != 0


@pytest.mark.parametrize("kind", ["listnet", "lambdarank"])
def test_descending_a_listwise_loss_orders_requests_by_gain(kind: str) -> None:
    rng = np.random.default_rng(0)
    n_req, size, d = 200, 12, 5
    x = torch.from_numpy(rng.normal(size=(n_req * size, d)).astype(np.float32))
    true_w = torch.tensor([1.5, -1.0, 0.5, 0.0, 0.0])
    gains = (x @ true_w + 0.3 * torch.randn(len(x)) > 1.0).float() + (x @ true_w > 2.0).float()  # graded 0/1/2
    group = torch.arange(n_req).repeat_interleave(size)
    w = torch.zeros(d, requires_grad=True)
    opt = torch.optim.Adam([w], lr=0.05)
    for _ in range(150):
        loss, _ = listwise_loss(kind, x @ w + 1e-3 * torch.randn(len(x)), gains, torch.ones(len(x), dtype=torch.bool),
                                group)
        opt.zero_grad()
        loss.backward()
        opt.step()
    trained = ndcg_at_k(group.numpy(), (x @ w).detach().numpy(), gains.numpy(), 5)
    shuffled = ndcg_at_k(group.numpy(), rng.normal(size=len(x)), gains.numpy(), 5)
    assert trained > shuffled + 0.3 and trained > 0.85, (trained, shuffled)


@pytest.mark.parametrize("kind", ["lambdarank", "listnet"])
def test_requests_of_very_different_sizes_are_padded_by_size_class_with_the_same_loss(kind: str) -> None:
    """One 600-row request among 300 of 3 rows: padding every request to 600 made lambdarank's (G, L, L)
    pairs 300 x 600 x 600 (a skewed public dataset trained 15x slower). Requests are padded within their
    size class, and the loss and its gradient are those of each request computed alone."""
    gen = torch.Generator().manual_seed(0)
    sizes = [600] + [3] * 300
    group = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    group = group[torch.randperm(len(group), generator=gen)]  # rows of a request in any order
    scores = torch.randn(len(group), generator=gen, requires_grad=True)
    gains = torch.randint(0, 3, (len(group),), generator=gen).float()
    mask = torch.ones(len(group), dtype=torch.bool)
    widths = [rows.numel() and int(torch.bincount(group[rows]).max()) for rows in size_buckets(group)]
    assert sorted(widths) == [3, 600]
    loss, counted = listwise_loss(kind, scores, gains, mask, group)
    (grad,) = torch.autograd.grad(loss, scores)
    alone, n = [], 0
    for r in range(len(sizes)):
        rows = group == r
        per, signal = LOSSES[kind](*padded(torch.zeros(int(rows.sum()), dtype=torch.long), scores[rows], gains[rows])[:2],
                                   torch.ones((1, int(rows.sum())), dtype=torch.bool))
        alone.append(per[0])
        n += int(signal[0])
    expected = torch.stack(alone).sum() / n
    (expected_grad,) = torch.autograd.grad(expected, scores)
    assert counted.item() == n
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(grad, expected_grad, atol=1e-7)
