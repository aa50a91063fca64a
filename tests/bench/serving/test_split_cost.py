"""bench/serving/split_cost.py's FLOPs count and floors, and bench/serving/wrk_load.py's parsing of wrk's report."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.serving import split_cost
from bench.serving.wrk_load import parse_wrk
from service.contract.bundle import (
    MODEL_FILE,
    read_manifest,
)
from service.contract.layout import split_columns


def test_flops_of_the_split_graph_scale_with_the_item_side_only(bundle_dir: Path) -> None:
    """Demo model: 4 experts x (128, 64), a gate over x and a tower [64] per task; x = D_u + D_i columns."""
    manifest = read_manifest(bundle_dir)
    c = split_columns(manifest.features)
    emb = manifest.model_args["embedding_dim"]
    d_u, d_i = emb * len(c.request_cat) + len(c.request_num), emb * len(c.item_cat) + len(c.item_num)
    shapes = {"request_categorical": (1, len(c.request_cat)), "request_numeric": (1, len(c.request_num))}

    def flops(b: int) -> int:
        return split_cost.matmul_flops(bundle_dir / MODEL_FILE, {**shapes, "item_categorical": (b, len(c.item_cat)),
                                                                 "item_numeric": (b, len(c.item_num))})

    tasks = len(manifest.tasks)  # four pointwise heads and the ranking head: a gate and a tower each
    first_layers = 4 * 128 + tasks * 4  # expert and gate widths: the layers that read x
    per_candidate = (flops(200) - flops(100)) // 100
    per_request = flops(100) - 100 * per_candidate
    assert per_request == 2 * d_u * first_layers  # u·W_u: once, whatever the candidates
    rest = per_candidate - 2 * d_i * first_layers
    assert rest == 2 * (4 * 128 * 64 + tasks * 64 * 64 + tasks * 64 * 1)  # second expert layers and towers


def test_floors_compare_time_with_flops() -> None:
    fast = split_cost.Cell(100, 50, full=[2.0, 2.0], split=[1.1, 1.1])
    slow = split_cost.Cell(100, 80, full=[2.0], split=[1.98])
    results = [split_cost.ShapeResult("demo", 0.0, {500: fast}), split_cost.ShapeResult("user-heavy", 0.0, {500: slow})]
    (demo, ok_demo, _), (heavy, ok_heavy, _) = split_cost.floors(results)
    assert ok_demo and "demo" in demo  # 0.55 <= 0.5 x 1.2
    assert not ok_heavy and "2x" in heavy  # 1.01x


WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:8000/v1/rank
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.10ms  812.00us  12.40ms   90.00%
  Latency Distribution
     50%    2.95ms
     75%    3.30ms
     90%    3.80ms
     99%   11.20ms
  1290 requests in 2.00s, 113.40MB read
  Non-2xx or 3xx responses: 3
Requests/sec:    644.81
Transfer/sec:     56.70MB
"""


def test_wrk_report_is_parsed_in_seconds() -> None:
    r = parse_wrk(WRK_OUTPUT, 2)
    assert (r.connections, r.requests, r.errors) == (2, 1290, 3)
    assert r.p50 == pytest.approx(0.00295) and r.p99 == pytest.approx(0.0112) and r.throughput == pytest.approx(644.81)
