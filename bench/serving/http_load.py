"""A lean HTTP/1.1 load generator for loopback benchmarks (bounded in requests and time).

A minimal keep-alive client on asyncio streams: the request bytes are built once, the response is
read by Content-Length, so the client spends microseconds per request and leaves the CPU to the
server under test (client and server share this machine's cores). Three patterns:

    sequential   one connection, one request at a time: latency without queueing
    closed_loop  C connections back to back: peak throughput
    open_loop    arrivals at a fixed rate, evenly spaced or Poisson: latency at a given load,
                 measured from each request's scheduled start (no coordinated omission)
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np


class HttpError(Exception):
    pass


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        status_line = await self.reader.readline()
        if not status_line:
            raise HttpError("connection closed by the server")
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def post_request(path: str, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    errors: int = 0
    seconds: float = 0.0

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")


async def sequential(port: int, requests: list[bytes], count: int, max_seconds: float) -> LoadResult:
    conn = await Connection.open(port)
    result, start = LoadResult(), time.perf_counter()
    try:
        for i in range(count):
            t0 = time.perf_counter()
            status, _ = await conn.post(requests[i % len(requests)])
            _record(result, status, time.perf_counter() - t0)
            if time.perf_counter() - start > max_seconds:
                break
    finally:
        conn.close()
    result.seconds = time.perf_counter() - start
    return result


async def closed_loop(port: int, requests: list[bytes], concurrency: int, seconds: float,
                      max_requests: int) -> LoadResult:
    result = LoadResult()
    start = time.perf_counter()
    deadline = start + seconds
    sent = 0

    async def worker(k: int) -> None:
        nonlocal sent
        conn = await Connection.open(port)
        try:
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                t0 = time.perf_counter()
                status, _ = await conn.post(requests[(sent + k) % len(requests)])
                _record(result, status, time.perf_counter() - t0)
        finally:
            conn.close()

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    result.seconds = time.perf_counter() - start
    return result


async def open_loop(port: int, requests: list[bytes], rate: float, seconds: float, max_requests: int,
                    poisson: bool = False, pool_size: int = 64, seed: int = 0) -> LoadResult:
    """`rate` arrivals/s for `seconds` (evenly spaced, or Poisson); latency counts from each scheduled start."""
    n = max(1, min(max_requests, int(rate * seconds)))
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, n) if poisson else np.full(n, 1.0 / rate)
    starts = np.cumsum(gaps)
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(pool_size):
        pool.put_nowait(await Connection.open(port))
    result = LoadResult()
    origin = time.perf_counter()

    async def one(i: int) -> None:
        scheduled = origin + starts[i]
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        conn = await pool.get()
        try:
            status, _ = await conn.post(requests[i % len(requests)])
        finally:
            pool.put_nowait(conn)
        _record(result, status, time.perf_counter() - scheduled)

    await asyncio.gather(*(one(i) for i in range(n)))
    result.seconds = time.perf_counter() - origin
    while not pool.empty():
        pool.get_nowait().close()
    return result


def _record(result: LoadResult, status: int, seconds: float) -> None:
    if status == 200:
        result.latencies.append(seconds)
    else:
        result.errors += 1
