"""Would a compact request body pay? Today's JSON (one object per candidate) against candidates as columns
(one array per feature) in JSON and in msgpack, at 500 candidates (issue 25: adopt only for >= 0.3 ms).

Two costs change with the format, measured side by side in one run:
  parse   the server's decoder of today's body (service/contract/request_decoder.py: msgspec, every type
          and range checked, columns built) against the same checks on a columnar body: a msgspec
          struct of one typed list per item column, plus the equal-length check; the best of 5 loops,
          interleaved;
  HTTP    a raw uvicorn ASGI app (this module's `app`) that reads the whole body and answers the
          real response's size, loaded by wrk with one connection, each body in turn, round after
          round: the part of the HTTP cost that moves with the body's bytes.
The encoder reads the same columns either way (a columnar body saves building them: that is in parse).

    python -m bench.serving.wire_format --bundle runs/demo-bundle
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import timeit
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import msgspec
import orjson

from bench.doc_sections import DOC, write_section
from bench.serving.serve_processes import REPO, ServerProcess
from bench.serving.serve_stages import load_serving
from bench.serving.wrk_load import run_wrk
from service.contract.bundle import read_manifest
from service.contract.features import CategoricalEncoder, FeatureEncoders
from service.contract.request_decoder import _CATEGORICAL, _ITEM_ID, _NUMERIC, item_columns
from service.examples import example_request

SECTION = "wire-format"
SIZE = 500
GOAL_MS = 0.3
ROUNDS = 5
RESPONSE = b"x" * int(os.environ.get("WIRE_RESPONSE_BYTES", "67000"))


async def app(scope: dict, receive: Any, send: Any) -> None:
    """Read the whole body, answer RESPONSE: HTTP and nothing else (uvicorn bench.serving.wire_format:app)."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(RESPONSE)).encode())]})
    await send({"type": "http.response.body", "body": RESPONSE})


class ColumnarDecoder:
    """Today's checks on a columnar body: each item column one typed list, every list of one length."""

    def __init__(self, features: FeatureEncoders, max_candidates: int, protocol: str) -> None:
        names = item_columns(features)
        kinds = {f.name: _CATEGORICAL if isinstance(f, CategoricalEncoder) else _NUMERIC for f in features.all()}
        length = msgspec.Meta(min_length=1, max_length=max_candidates)
        fields = [("f0", Annotated[list[_ITEM_ID], length])] + [
            (f"f{k}", Annotated[list[kinds[n]], length]) for k, n in enumerate(names) if k]
        columns = msgspec.defstruct("Columns", fields, rename={f"f{k}": n for k, n in enumerate(names)},
                                    forbid_unknown_fields=True)
        body = msgspec.defstruct("ColumnarBody", [("user", dict), ("candidates", columns),
                                                  ("context", dict, {}), ("top_k", int | None, None)],
                                 forbid_unknown_fields=True)
        self.names = names
        module = msgspec.json if protocol == "json" else msgspec.msgpack
        self._decoder = module.Decoder(body)

    def decode(self, raw: bytes) -> dict[str, list]:
        body = self._decoder.decode(raw)
        items = {name: getattr(body.candidates, f"f{k}") for k, name in enumerate(self.names)}
        n = len(items[self.names[0]])
        if any(len(v) != n for v in items.values()):
            raise ValueError("candidates: every column must have one value per candidate")
        return items


@dataclass
class WireResult:
    bytes: dict[str, int]
    parse_us: dict[str, float]
    http_ms: dict[str, float]  # wrk p50, median over the rounds


def bodies(manifest) -> dict[str, bytes]:
    request = example_request(manifest, SIZE, seed=0)
    columns = {k: [c.get(k) for c in request["candidates"]] for k in request["candidates"][0]}
    columnar = {**request, "candidates": columns}
    return {"today (JSON, an object per candidate)": orjson.dumps(request),
            "columns in JSON": orjson.dumps(columnar), "columns in msgpack": msgspec.msgpack.encode(columnar)}


def measure(args: argparse.Namespace) -> WireResult:
    manifest = read_manifest(args.bundle)
    model = load_serving(args.bundle, args.weights).model
    raw = bodies(manifest)
    today, json_cols, msgpack_cols = raw
    decoders = {today: model.parse,
                json_cols: ColumnarDecoder(manifest.features, SIZE, "json").decode,
                msgpack_cols: ColumnarDecoder(manifest.features, SIZE, "msgpack").decode}
    assert decoders[json_cols](raw[json_cols]) == decoders[msgpack_cols](raw[msgpack_cols]) == model.parse(
        raw[today]).items, "the three bodies must decode to the same columns"
    parse = {name: float("inf") for name in raw}
    for _ in range(ROUNDS):
        for name, body in raw.items():
            decode = decoders[name]
            parse[name] = min(parse[name], min(timeit.repeat(lambda: decode(body), number=100, repeat=3)) / 100)  # noqa: B023
    http: dict[str, list[float]] = {name: [] for name in raw}
    with tempfile.TemporaryDirectory(prefix="wire-") as tmp:
        server = ServerProcess([sys.executable, "-m", "uvicorn", "bench.serving.wire_format:app", "--host", "127.0.0.1",
                                "--no-access-log", "--log-level", "warning"], {}, Path(tmp) / "uvicorn.log", "/",
                               port_flag=True)
        try:
            server.wait_ready()
            for _ in range(ROUNDS):
                for name, body in raw.items():
                    http[name].append(run_wrk(server.port, body, 1, args.seconds, path="/").p50)
        finally:
            server.stop()
    return WireResult({n: len(b) for n, b in raw.items()}, {n: s * 1e6 for n, s in parse.items()},
                      {n: statistics.median(v) * 1000 for n, v in http.items()})


def render(r: WireResult, command: str) -> str:
    today = next(iter(r.bytes))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    rows = [f"Produced by `{command}` on {date.today()} at commit `{commit.stdout.strip()}`, {platform.machine()} "
            f"with {os.cpu_count()} cores (1-minute load average {os.getloadavg()[0]:.1f} at the end).", "",
            f"The demo model's request at {SIZE} candidates in three encodings. Parse: the best of {ROUNDS} rounds of "
            "timed loops, interleaved; HTTP: wrk's p50 against a raw uvicorn app that reads the body and answers "
            f"{len(RESPONSE):,} bytes (the real response's size), median of {ROUNDS} interleaved rounds.", "",
            "| body | bytes | parse + validate (µs) | HTTP p50 (ms) | gain over today (ms) |", "|---|---:|---:|---:|---:|"]
    gains = {}
    for name in r.bytes:
        gains[name] = (r.parse_us[today] - r.parse_us[name]) / 1000 + (r.http_ms[today] - r.http_ms[name])
        rows.append(f"| {name} | {r.bytes[name]:,} | {r.parse_us[name]:.0f} | {r.http_ms[name]:.3f} | "
                    f"{gains[name]:+.3f} |")
    best = max((n for n in gains if n != today), key=gains.get)
    verdict = "adopt it" if gains[best] >= GOAL_MS else "keep today's JSON only"
    rows += ["", f"- The best compact body, {best}, saves {gains[best]:.3f} ms per request (goal for adopting one: "
             f">= {GOAL_MS} ms) -> **{verdict}**. An upper bound: the columnar decoders here skip the user and "
             "context validation (pydantic TypedDicts) that today's parse includes."]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--weights", type=Path, default=REPO / "configs" / "weights.yaml")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds of wrk per body and round")
    p.add_argument("--no-doc", action="store_true", help="print only; do not write docs/BENCHMARKS.md")
    args = p.parse_args(argv)
    text = render(measure(args), "python -m bench.serving.wire_format --bundle runs/demo-bundle")
    print(text)
    if not args.no_doc:
        write_section(SECTION, f"## A compact request body? (`bench/serving/wire_format.py`)\n\n{text}", DOC)


if __name__ == "__main__":
    main()
