"""Id-only rows of bench/serving/serve_latency.py: the same candidates sent with every feature inline, or as
ids only with the features looked up in the embedded store or in Redis on 127.0.0.1.

The four variants are measured interleaved (a chunk of sequential requests each, round after
round), so a busy moment of the shared machine hits all of them alike; the budgets compare p50s
measured on the same server process (full-feature requests make no store call).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import redis

from bench.serving.http_load import LoadResult, post_request, sequential
from bench.serving.serve_processes import free_port
from service.contract.bundle import Manifest
from service.examples import example_request, ids_only
from service.feature_store.embedded import EmbeddedStore
from service.feature_store.lookup import FeatureLookup
from service.feature_store.metrics import FeatureStoreMetrics
from service.feature_store.redis_loader import load_into_redis
from service.feature_store.redis_store import RedisStore
from service.feature_store.snapshots import model_kinds, publish_snapshot, snapshot_registry
from service.registry import Registry

CHUNK = 20  # sequential requests per variant per round
BUDGETS_MS = {"embedded": 0.3, "redis": 1.5}
MIN_BYTES_RATIO = 5.0


class RedisProcess:
    """redis-server on 127.0.0.1 and a free port, nothing on disk."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            sys.exit("redis-server is not installed: run scripts/install_redis.sh (as root)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(workdir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)


def snapshot_files(features_dir: Path) -> dict[str, Path]:
    files = {"item": features_dir / "items.parquet", "user": features_dir / "users.parquet"}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        sys.exit(f"no feature snapshots {missing}; `ranker demo-data data/demo` writes them (or pass --features)")
    return files


def prepare_stores(registry: Registry, manifest: Manifest, files: dict[str, Path], redis_url: str) -> None:
    """Publish the snapshots next to the model (embedded) and load them into Redis."""
    client = redis.Redis.from_url(redis_url, socket_timeout=30)
    for entity, path in files.items():
        if entity in manifest.lookups:
            publish_snapshot(path, snapshot_registry(registry.root, manifest.model_name, entity), entity, manifest)
            load_into_redis(path, client, manifest.model_name, entity, model_kinds(manifest, entity))


def bodies(manifest: Manifest, files: dict[str, Path], size: int, count: int) -> tuple[list[bytes], list[bytes]]:
    """(full-feature bodies, id-only bodies) for the same candidates; full ones carry the stored values."""
    stored = {e: {r.pop(f"{e}_id"): r for r in pq.read_table(p).to_pylist()} for e, p in files.items()}
    full, ids = [], []
    for seed in range(count):
        request = ids_only(example_request(manifest, size, seed=seed))
        user = {**stored["user"].get(request["user"].get("user_id"), {}), **request["user"]}
        cands = [{**stored["item"].get(c["item_id"], {}), **c} for c in request["candidates"]]
        full.append(orjson.dumps({**request, "user": user, "candidates": cands}))
        ids.append(orjson.dumps(request))
    return full, ids


@dataclass
class IdOnlyResult:
    size: int
    bytes_full: float  # request bytes per candidate
    bytes_ids: float
    latency: dict[str, LoadResult] = field(default_factory=dict)
    in_process_us: dict[str, float] = field(default_factory=dict)  # median lookup.fill per request


def measure(ports: dict[str, int], full: list[bytes], ids: list[bytes], size: int, requests: int,
            max_seconds: float) -> IdOnlyResult:
    """Interleaved sequential latency of the four variants (requests each at most)."""
    variants = {"full, embedded server": (ports["embedded"], full), "ids only, embedded store": (ports["embedded"], ids),
                "full, redis server": (ports["redis"], full), "ids only, Redis": (ports["redis"], ids)}
    result = IdOnlyResult(size, statistics.mean(map(len, full)) / size, statistics.mean(map(len, ids)) / size,
                          {name: LoadResult() for name in variants})
    for port, bs in variants.values():  # warm-up: connections, caches, allocators
        asyncio.run(sequential(port, [post_request("/v1/rank", b) for b in bs], CHUNK, max_seconds))
    start = time.perf_counter()
    for _ in range(max(1, requests // CHUNK)):
        for name, (port, bs) in variants.items():
            r = asyncio.run(sequential(port, [post_request("/v1/rank", b) for b in bs], CHUNK, max_seconds))
            if r.errors:
                raise RuntimeError(f"{name}: {r.errors} failed requests")
            result.latency[name].latencies += r.latencies
            result.latency[name].seconds += r.seconds
        if time.perf_counter() - start > 4 * max_seconds:
            break
    return result


def in_process(registry: Registry, manifest: Manifest, redis_url: str, body: bytes, iterations: int) -> dict[str, float]:
    """Median µs of the lookup step alone (service.feature_store.lookup.fill) for one id-only request."""
    from prometheus_client import CollectorRegistry

    from service.contract.request import RequestParser

    metrics = FeatureStoreMetrics(CollectorRegistry())
    embedded = EmbeddedStore(registry.root, registry.model_name, metrics, lambda: manifest)
    embedded.check()
    stores = {"embedded": embedded, "redis": RedisStore(redis_url, manifest.model_name, timeout=1.0)}
    request = RequestParser(manifest.features, 100_000, "user_id").parse(body)
    out = {}
    for name, store in stores.items():
        lookup = FeatureLookup(store, metrics)
        times = []
        for _ in range(iterations):
            t0 = time.perf_counter()
            lookup.fill(manifest, request)
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times) * 1e6
    return out


def render(r: IdOnlyResult) -> list[str]:
    def p(name: str, q: float) -> float:
        return r.latency[name].percentile(q) * 1000

    lines = [f"Id-only requests, {r.size} candidates: the same candidates with every feature inline (the stored "
             "values) or as ids only, measured interleaved in one run (client-side ms, one request at a time).", "",
             "| request | server's store | bytes/candidate | p50 | p99 | requests |", "|---|---|---:|---:|---:|---:|"]
    for name, res in r.latency.items():
        bytes_ = r.bytes_ids if name.startswith("ids") else r.bytes_full
        lines.append(f"| {name.split(',')[0]} | {name.split(', ')[1]} | {bytes_:.0f} | {p(name, 50):.2f} "
                     f"| {p(name, 99):.2f} | {len(res.latencies)} |")
    embedded = p("ids only, embedded store", 50) - p("full, embedded server", 50)
    redis_add = p("ids only, Redis", 50) - p("full, redis server", 50)
    ratio = r.bytes_full / r.bytes_ids
    lines += ["", "Budgets (p50 of id-only minus p50 of full-feature requests on the same server):", "",
              f"- embedded lookup adds {embedded:+.2f} ms (budget <= {BUDGETS_MS['embedded']} ms) -> "
              f"{'PASS' if embedded <= BUDGETS_MS['embedded'] else 'FAIL'}",
              f"- Redis lookup adds {redis_add:+.2f} ms (budget <= {BUDGETS_MS['redis']} ms) -> "
              f"{'PASS' if redis_add <= BUDGETS_MS['redis'] else 'FAIL'}",
              f"- request bytes per candidate drop {ratio:.1f}x ({r.bytes_full:.0f} -> {r.bytes_ids:.0f}; budget >= "
              f"{MIN_BYTES_RATIO:.0f}x) -> {'PASS' if ratio >= MIN_BYTES_RATIO else 'FAIL'}"]
    if r.in_process_us:
        lines.append("- the lookup step alone, in-process (`FeatureLookup.fill`, median): " + ", ".join(
            f"{k} {v:.0f} µs" for k, v in r.in_process_us.items()) + "; an id-only body is also smaller to parse, "
            "which is why the end-to-end difference can be below the lookup's own time")
    return lines
