"""Embedded feature store at catalogue scale: load time, memory per million items, lookup time.

Writes a synthetic item snapshot of N items (the demo model's item features, ids `i0..i{N-1}`),
publishes it through the same validation as `ranker features publish`, then, in a fresh process,
loads it as a server does (sha256, Parquet read, checks, id index) and looks up 500 random ids (5%
unknown) many times. Memory is that process's RSS growth over the load, its peak RSS growth
during the load, and the snapshot's own arrays; all per million items too.

    python -m bench.serving.feature_store_scale --bundle runs/demo-bundle --items 5000000
    python -m bench.serving.feature_store_scale --bundle B --items 100000 --no-doc     # smoke
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.doc_sections import DOC, write_section
from service.contract.bundle import read_manifest
from service.feature_store.snapshots import load_version, model_kinds, publish_snapshot, snapshot_registry

REPO = Path(__file__).resolve().parents[2]

SECTION = "feature-store-scale"
LOOKUP_IDS = 500


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RssSampler:
    """The highest RSS seen every 5 ms while the block runs."""

    def __init__(self) -> None:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def write_items(path: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)  # not sorted on disk: the load sorts
    table = pa.table({
        "item_id": pa.array(np.char.add("i", order.astype(str))),
        "item_category": pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, 24, n).astype(np.int32)),
                                                        pa.array([f"c{k}" for k in range(24)])),
        "item_popularity": rng.pareto(1.5, n),
        "item_age_days": rng.exponential(120, n),
        "title_caps_ratio": rng.uniform(0, 1, n),
    })
    pq.write_table(table, path, row_group_size=1_000_000)


def measure(args: argparse.Namespace, tmp: Path) -> dict:
    manifest = read_manifest(args.bundle)
    path = tmp / "items.parquet"
    write_items(path, args.items)
    registry = snapshot_registry(tmp / "registry", manifest.model_name, "item")
    t1 = time.perf_counter()
    publish_snapshot(path, registry, "item", manifest)
    publish_seconds = time.perf_counter() - t1
    # A fresh interpreter loads it, as a server does: this process's freed memory does not flatter the numbers.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        served = pool.apply(load_and_look_up, (str(tmp / "registry"), args.bundle, args.items, args.lookups))
    return {"items": args.items, "file_mb": path.stat().st_size / 2**20, "publish_s": publish_seconds, **served}


def load_and_look_up(root: str, bundle: Path, items: int, lookups: int) -> dict:
    manifest = read_manifest(bundle)
    kinds = model_kinds(manifest, "item")
    registry = snapshot_registry(root, manifest.model_name, "item")
    before = rss_bytes()
    with RssSampler() as sampler:  # ru_maxrss would carry the parent's high-water mark across fork + exec
        t0 = time.perf_counter()
        snapshot = load_version(registry, "item", 1, kinds)
        load_seconds = time.perf_counter() - t0
    grown = rss_bytes() - before
    peak = sampler.peak - before
    rng = np.random.default_rng(1)
    times = []
    for _ in range(lookups):
        ids = np.char.add("i", rng.integers(0, int(items * 1.05), LOOKUP_IDS).astype(str)).tolist()
        t = time.perf_counter()
        found = snapshot.lookup(ids, kinds)
        times.append(time.perf_counter() - t)
    return {"load_s": load_seconds, "rss_mb": grown / 2**20, "peak_mb": max(peak, grown) / 2**20,
            "arrays_mb": snapshot.nbytes / 2**20, "lookup_p50_us": statistics.median(times) * 1e6,
            "lookup_p99_us": float(np.percentile(times, 99)) * 1e6, "found_share": float(found.found.mean()),
            "probes": snapshot.index.max_probes}


def render(r: dict, argv: list[str]) -> str:
    per_m = r["items"] / 1e6
    cmd = " ".join(["python -m bench.serving.feature_store_scale", *argv])
    return "\n".join([
        f"Measured by `{cmd}` on {date.today().isoformat()}, on a shared 2-core machine (timings are noisy; "
        "memory and sizes are not).", "",
        "| items | Parquet MB | publish s (validate + copy) | load s (sha256, read, checks, index) "
        "| RSS growth MB (per million) | peak during load MB (per million) | arrays MB | 500-id lookup p50 µs | p99 µs |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {r['items']:,} | {r['file_mb']:.0f} | {r['publish_s']:.1f} | {r['load_s']:.1f} "
        f"| {r['rss_mb']:.0f} ({r['rss_mb'] / per_m:.0f}) | {r['peak_mb']:.0f} ({r['peak_mb'] / per_m:.0f}) "
        f"| {r['arrays_mb']:.0f} | {r['lookup_p50_us']:.0f} | {r['lookup_p99_us']:.0f} |", "",
        f"Ids are `i0`..`i{r['items'] - 1}`, with the demo model's four item features (one categorical, three "
        "numeric). The arrays are the Arrow columns, the ids, and the hash index (8 bytes of hash per id, 4 per "
        f"slot at a load factor of at most 0.5; longest probe sequence at build: {r['probes']}). Lookups draw 500 ids "
        f"of which ~5% are unknown (found: {r['found_share']:.1%}). A swap holds the old and the new snapshot "
        "while the new one loads, so plan for the peak plus one snapshot's RSS per entity.",
    ])


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", type=Path, default=REPO / "runs" / "demo-bundle")
    p.add_argument("--items", type=int, default=5_000_000)
    p.add_argument("--lookups", type=int, default=300)
    p.add_argument("--doc", type=Path, default=DOC)
    p.add_argument("--no-doc", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="feature-scale-") as tmp:
        result = measure(args, Path(tmp))
    text = render(result, argv)
    print(text)
    if not args.no_doc:
        write_section(SECTION, f"## Feature store at scale (`bench/serving/feature_store_scale.py`)\n\n{text}", args.doc)


if __name__ == "__main__":
    main()
