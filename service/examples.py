"""Example /v1/rank bodies built from a bundle's manifest (for the demo, benchmarks and tests).

`python -m service.examples BUNDLE_DIR --candidates 20` prints one. User and context come from a
real row of the manifest's parity sample; candidates are distinct items of the model's vocabulary
with item features taken from the parity rows. `--ids-only` prints the request a frontend sends
when the server looks features up by id: the candidates' `item_id`s, the `user_id` and the context.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from service.contract.bundle import Manifest, read_manifest
from service.contract.lookups import ENTITY_KEY
from service.contract.request import ITEM_ID


def example_request(manifest: Manifest, candidates: int, seed: int = 0, **extra: Any) -> dict[str, Any]:
    """A valid request body with `candidates` distinct items (unknown ids once the vocabulary runs out)."""
    rng = np.random.default_rng(seed)
    rows = manifest.parity_sample.rows
    feats = manifest.features
    first = rows[int(rng.integers(len(rows)))]
    user = {n: first.get(n) for n in feats.by_source("user")}
    context = {n: first.get(n) for n in feats.by_source("context")}
    item_feature = feats.item_id_feature or ITEM_ID
    vocab = next((f.vocab for f in feats.categorical if f.name == item_feature), [])
    picked = rng.permutation(len(vocab))[:candidates].tolist()
    ids = [vocab[i] for i in picked] + [f"new-{i}" for i in range(candidates - len(picked))]
    item_features = [f for f in feats.by_source("item") if f not in (ITEM_ID, item_feature)]
    items = []
    for item_id in ids:
        row = rows[int(rng.integers(len(rows)))]
        items.append({ITEM_ID: item_id, **{n: row.get(n) for n in item_features}})
    return {"user": user, "context": context, "candidates": items, **extra}


def ids_only(request: dict[str, Any]) -> dict[str, Any]:
    """The same request with the looked-up entities reduced to their ids (context kept)."""
    user_key = ENTITY_KEY["user"]
    user = {user_key: request["user"][user_key]} if request["user"].get(user_key) is not None else {}
    return {**request, "user": user, "candidates": [{ITEM_ID: c[ITEM_ID]} for c in request["candidates"]]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m service.examples", description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="bundle directory (holding manifest.json)")
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--profile", default=None)
    parser.add_argument("--ids-only", action="store_true",
                        help="candidates as item ids and the user as a user_id (features from the feature store)")
    args = parser.parse_args(argv)
    extra = {k: v for k, v in (("top_k", args.top_k), ("profile", args.profile)) if v is not None}
    body = example_request(read_manifest(args.bundle), args.candidates, args.seed, **extra)
    if args.ids_only:
        body = ids_only(body)
    sys.stdout.buffer.write(orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n")


if __name__ == "__main__":
    main()
