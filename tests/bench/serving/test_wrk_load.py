"""bench/serving/wrk_load.py's parsing of wrk's report."""

from __future__ import annotations

import pytest

from bench.serving.wrk_load import parse_wrk

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
