"""The loop's join on what a real server wrote: the demo bundle ranks requests with RANKER_LOG_DIR set,
the test answers with feedback files (FEEDBACK_SCHEMA), `ranker logs join` labels the impressions,
and `ranker train` trains on the output as on any dataset."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from impressions_helpers import read_log
from typer.testing import CliRunner

from service.contract.bundle import read_manifest
from service.contract.feedback import FEEDBACK_SCHEMA
from service.examples import example_request
from training.cli import app
from training.data.tables import dataset

REPO = Path(__file__).resolve().parents[2]
REQUESTS = 24
CANDIDATES = 30


def rank(client: httpx.Client, body: dict) -> dict:
    r = client.post("/v1/rank", content=orjson.dumps(body))
    assert r.status_code == 200, r.text
    return r.json()


def expected(p: int) -> dict[str, float | None]:
    """The labels the events below give the candidate served at position p (demo rules, 1 h window)."""
    clicked = p % 3 == 1
    return {"click": 1.0 if clicked else 0.0, "watch_time": 2.0 * p if clicked else None,
            "like": (1.0 if p % 2 else 0.0) if clicked else None, "rating": float(p % 5) if p % 4 == 0 else None}


def events_for(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        p, at = r["position"], r["ts"]

        def ev(name: str, value: float | None, seconds: float, eid: str | None, r=r, at=at) -> dict:
            return {"request_id": r["request_id"], "item_id": r["item_id"], "event": name, "value": value,
                    "ts": at + timedelta(seconds=seconds), "event_id": eid}

        key = f"{r['request_id']}/{r['item_id']}"
        if p % 3 == 1:
            out += [ev("click", None, 60, f"c-{key}"), ev("watch_seconds", 2.0 * p, 120, f"w-{key}"),
                    ev("watch_seconds", 2.0 * p, 121, f"w-{key}"),  # a retried batch: same event_id
                    ev("like", 1.0 if p % 2 else 0.0, 150, None)]
        if p % 4 == 0:
            out.append(ev("rating", float(p % 5), 200, f"r-{key}"))
    return out


@pytest.mark.slow  # a server, the join and a short training run (about 15 s)
def test_join_what_the_server_logged_then_train_on_it(deploy, tmp_path: Path, manifest, bundle_dir: Path) -> None:
    logs = tmp_path / "logs"
    d = deploy(RANKER_LOG_DIR=str(logs), RANKER_LOG_FLUSH_SECONDS="0.2")
    for s in range(REQUESTS):
        rank(d.client, example_request(manifest, CANDIDATES, seed=s, request_id=f"req-{s}"))
    d.stop()  # drains and publishes the log
    served = read_log(logs).to_pylist()
    assert len(served) == REQUESTS * CANDIDATES
    events = events_for(served)
    first = min(served, key=lambda r: (r["request_id"], r["position"]))  # req-0's top item: clicked
    second = next(r for r in served if r["request_id"] == first["request_id"] and r["position"] == 2)
    unclicked = next(r for r in served if r["request_id"] == "req-1" and r["position"] == 2)
    events += [
        {**events[0], "request_id": second["request_id"], "item_id": second["item_id"],
         "ts": second["ts"] + timedelta(seconds=3700), "event_id": "late"},  # after the 1 h window
        {"request_id": "never-served", "item_id": "x", "event": "click", "value": None,
         "ts": first["ts"], "event_id": "orphan"},
        {"request_id": unclicked["request_id"], "item_id": unclicked["item_id"], "event": "watch_seconds",
         "value": 99.0, "ts": unclicked["ts"] + timedelta(seconds=30), "event_id": "no-click"},  # if click: no label
    ]
    feedback = tmp_path / "frontend-events"
    feedback.mkdir()
    pq.write_table(pa.Table.from_pylist(events, schema=FEEDBACK_SCHEMA), feedback / "events.parquet")

    out = tmp_path / "joined"
    end = max(r["ts"] for r in served) + timedelta(hours=2)
    result = CliRunner().invoke(app, ["logs", "join", "--impressions", str(logs / "impressions"), "--feedback",
                                      str(feedback), "--spec", str(REPO / "configs" / "demo.yaml"),
                                      "--out", str(out), "--end", end.isoformat()])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "_join_report.json").read_text())
    clicked = sum(1 for r in served if r["position"] % 3 == 1)
    assert (report["impressions_read"], report["labelled_rows"], report["pending"]) == (len(served), len(served), 0)
    assert (report["events_read"], report["duplicate_events"]) == (len(events), clicked)
    assert report["events"] == {"counted": len(events) - clicked - 2, "late": 1, "orphan": 1}

    table = dataset(str(out)).to_table()
    joined = {(r["request_id"], r["item_id"]): r for r in table.to_pylist()}
    assert len(joined) == len(served)
    for r in served:
        row = joined[r["request_id"], r["item_id"]]
        assert {k: row[k] for k in ("click", "watch_time", "like", "rating")} == expected(r["position"]), row
        assert (row["position"], row["model_version"], row["ts"]) == (r["position"], r["model_version"], r["ts"])
    assert {c.name for c in manifest.features.all()} <= set(table.schema.names)

    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    raw["data"]["path"] = str(out)
    raw["train"].update(epochs=1, threads=1, parity_rows=50, batch_size=128)
    raw["eval"].pop("weights", None)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    trained = CliRunner().invoke(app, ["train", str(spec), "--out", str(tmp_path / "bundle"), "--no-progress"])
    assert trained.exit_code == 0, trained.output
    # The logged canonical strings are the vocabulary the served model was trained on: not out-of-vocabulary.
    before = {f.name: set(f.vocab) for f in manifest.features.categorical}
    after = read_manifest(tmp_path / "bundle").features.categorical
    for f in after:
        assert f.vocab and set(f.vocab) <= before[f.name], f.name
