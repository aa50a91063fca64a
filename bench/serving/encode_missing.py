"""What counting defaulted features costs the encoding of one request (service.contract.missing).

Three ways to encode the same 500-candidate request, interleaved round by round so that a busy
machine slows them alike; the best round of each is reported, as a ratio to plain encoding:

    plain      FeatureEncoders.encode_columns (encode_split for a split bundle): no counting
    counted    OnnxRankingModel.encode: counts from the lists the encoder gathers (what serves)
    separate   a counting pass over the request's columns, then plain encoding

    .venv/bin/python -m bench.serving.encode_missing --bundle runs/demo-bundle     # rewrites its section of docs/BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import subprocess
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bench.doc_sections import write_section
from service.contract.bundle import SessionConfig, load_bundle
from service.contract.features import missing_values
from service.contract.layout import encode_split
from service.contract.missing import check_defaulted
from service.contract.request import RequestParser
from service.examples import example_request
from service.live.model import OnnxRankingModel


def contenders(bundle: Path, candidates: int) -> dict[str, Callable[[], object]]:
    loaded = load_bundle(bundle, SessionConfig())
    model = OnnxRankingModel(version=1, bundle=loaded, parser=RequestParser(loaded.manifest.features, candidates))
    request = model.parse(orjson.dumps(example_request(loaded.manifest, candidates, seed=1)))
    features = loaded.manifest.features

    def plain() -> object:
        columns = features.request_columns(request.user, request.context, request.items, candidates)
        if loaded.manifest.input_layout == "split":  # the inputs the served graph takes (user/context once)
            return encode_split(features, columns, candidates)
        return features.encode_columns(columns, candidates)

    def separate() -> object:
        columns = features.request_columns(request.user, request.context, request.items, candidates)
        check_defaulted(features, missing_values(columns), columns)
        return plain()

    return {"plain": plain, "counted": lambda: model.encode(request), "separate": separate}


def best_seconds(fns: dict[str, Callable[[], object]], rounds: int, number: int = 20) -> dict[str, float]:
    """Best per-call seconds of each function over `rounds` interleaved rounds."""
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], min(timeit.repeat(fn, number=number, repeat=5)) / number)
    return best


def section(best: dict[str, float], bundle: Path, candidates: int, rounds: int) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    rows = "\n".join(f"| {name} | {s * 1e6:.0f} | {s / best['plain']:.2f}× |" for name, s in best.items())
    return f"""## Counting defaulted features while encoding (`bench/serving/encode_missing.py`)

`.venv/bin/python -m bench.serving.encode_missing --bundle {bundle} --candidates {candidates} --rounds {rounds}`
({datetime.now(UTC):%Y-%m-%d}, commit {commit}; a shared 2-core machine: read the ratios, not the µs).

Encoding one request of {candidates} candidates: `plain` is the encoder alone, `counted` what the server runs
(missing values counted from the lists the encoder gathers anyway), `separate` a counting pass of
its own before encoding. Best of {rounds} interleaved rounds.

| encode | µs (best) | vs plain |
|---|---|---|
{rows}
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, required=True, help="a bundle directory, e.g. runs/demo-bundle")
    ap.add_argument("--candidates", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--no-doc", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = ap.parse_args(argv)
    best = best_seconds(contenders(args.bundle, args.candidates), args.rounds)
    text = section(best, args.bundle, args.candidates, args.rounds)
    print(text)
    if not args.no_doc:
        write_section("encode-missing", text)


if __name__ == "__main__":
    main()
