"""What `"explain": true` costs a /v1/rank request, and that it costs nothing when off.

One process, the real ranking path (`service.live.pipeline.rank`: parse, encode, session.run,
combine, sort, serialize) on the same 500-candidate body, explain off and on interleaved so both
see the same machine load. Also the two steps explain changes, alone: combining the heads
(`CompiledProfile.combine` vs `.explain`) and writing the response body.

    .venv/bin/python -m bench.serving.explain_cost --bundle runs/weights-tuning/bundle
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import orjson

from bench.doc_sections import write_section
from bench.quality.common import provenance
from service.contract.bundle import SessionConfig
from service.examples import example_request
from service.live.model import load_model
from service.live.pipeline import rank, response_body, top_k_order
from service.live.state import Serving
from service.profiles import compile_weights, parse_weights

REPO = Path(__file__).resolve().parents[2]
SECTION = "explain-cost"
WEIGHTS = REPO / "configs" / "weights.yaml"
PROFILE = "balanced"  # four heads, each a weighted, z-scored term: what an explanation has to add up


def timed(fn, reps: int) -> np.ndarray:
    out = np.empty(reps)
    for i in range(reps):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out


def interleaved(fns: dict, reps: int) -> dict[str, np.ndarray]:
    """`reps` timings of each function, alternating call by call, so load drifts hit all of them alike."""
    samples: dict[str, list] = {k: [] for k in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            samples[name].append(timed(fn, 1))
    return {k: np.concatenate(v) for k, v in samples.items()}


def measure(bundle: Path, candidates: int, reps: int) -> dict:
    model = load_model(bundle, 1, SessionConfig(), max(candidates, 1000))
    weights = compile_weights(parse_weights(WEIGHTS.read_bytes()), model.tasks)
    serving = Serving(model, weights)
    body = example_request(model.manifest, candidates, seed=0)
    plain, explained = orjson.dumps(body), orjson.dumps({**body, "explain": True})
    for raw in (plain, explained):
        rank(serving, raw)  # warm-up
    heads = model.predict(model.encode(model.parse(plain)))
    profile = weights.profile(PROFILE)
    scores, parts = profile.explain(heads)
    order = top_k_order(scores, None)
    header = {"request_id": "x"}
    req = interleaved({"off": lambda: rank(serving, plain), "on": lambda: rank(serving, explained)}, reps)
    step = interleaved({"combine": lambda: profile.combine(heads), "explain": lambda: profile.explain(heads),
                        "body": lambda: response_body(header, body["candidates"], scores, heads, order),
                        "body+contributions": lambda: response_body(header, body["candidates"], scores, heads,
                                                                    order, parts)}, reps)
    return {"candidates": candidates, "reps": reps, "terms": len(profile.terms),
            "bytes_off": len(rank(serving, plain).body), "bytes_on": len(rank(serving, explained).body),
            **{f"{k}_us": float(np.median(v) * 1e6) for k, v in {**req, **step}.items()}}


def section(m: dict, made_by: str) -> str:
    ratio = m["on_us"] / m["off_us"]
    return "\n".join([
        "## Explanations: the cost of `\"explain\": true`", "",
        f"{made_by} One process, the whole ranking path of one request (`service.live.pipeline.rank`), "
        f"{m['candidates']} candidates, the `{PROFILE}` profile ({m['terms']} terms), explain off and on "
        f"alternating request by request, {m['reps']} each; medians. The machine was shared with other work: read "
        "the ratios, not the absolute times.", "",
        "| | explain off | explain on | on / off |", "|---|---|---|---|",
        f"| whole request (µs) | {m['off_us']:.0f} | {m['on_us']:.0f} | {ratio:.2f}× |",
        f"| combine the heads (µs) | {m['combine_us']:.1f} (`combine`) | {m['explain_us']:.1f} (`explain`) | "
        f"{m['explain_us'] / m['combine_us']:.2f}× |",
        f"| write the response (µs) | {m['body_us']:.0f} | {m['body+contributions_us']:.0f} | "
        f"{m['body+contributions_us'] / m['body_us']:.2f}× |",
        f"| response bytes | {m['bytes_off']:,} | {m['bytes_on']:,} | {m['bytes_on'] / m['bytes_off']:.2f}× |", "",
        "When off, the request runs exactly the code it ran before explanations existed (`combine`, and a "
        "response writer that skips its one `if`): explain adds no work to it. When on, the extra time is "
        "the per-item `contributions` objects in the JSON, not the arithmetic: `explain` and `combine` do the "
        "same array operations, and their difference of a few µs either way is timer noise on this machine.", ""])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=REPO / "runs" / "weights-tuning" / "bundle")
    ap.add_argument("--candidates", type=int, default=500)
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    ns = ap.parse_args(argv)
    shown = ns.bundle.resolve().relative_to(REPO) if ns.bundle.resolve().is_relative_to(REPO) else ns.bundle
    made_by = provenance(f".venv/bin/python -m bench.serving.explain_cost --bundle {shown}")
    text = section(measure(ns.bundle, ns.candidates, ns.reps), made_by)
    print(text)
    if not ns.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
