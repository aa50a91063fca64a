"""`ranker logs join` on hand-written impression and event files: every rule aggregate, the window's
edges, the dedupes, pending, late, early, orphan and shadow rows, the report and the CLI's errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from service.contract.feedback import FEEDBACK_SCHEMA
from training.cli import app
from training.data.tables import dataset
from training.logs.join import run_join
from training.spec import load_spec

REPO = Path(__file__).resolve().parents[3]
T = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
END = T + timedelta(hours=3)  # the demo's window is 1 h: impressions after END - 1 h are pending
EXTRA_LABELS = {"n_clicks": "count(click)", "min_w": "min(watch_seconds)", "max_w": "max(watch_seconds)",
                "mean_w": "mean(watch_seconds)", "first_w": "first(watch_seconds)",
                "first_rating": "first(rating)", "like_or_zero": "last(like) if click else 0"}


def s(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def write_spec(tmp: Path, **data: str) -> Path:
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    raw["feedback"]["labels"].update(EXTRA_LABELS)
    raw["data"].update(data)
    raw["eval"].pop("weights", None)
    path = tmp / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def write_impressions(root: Path, rows: list[tuple]) -> None:
    """rows: (request_id, item_id, ts, position, model_role)."""
    n = len(rows)
    table = pa.table({
        "request_id": [r[0] for r in rows], "ts": pa.array([r[2] for r in rows], pa.timestamp("ms", tz="UTC")),
        "model_version": [3] * n, "arm": ["control"] * n, "model_role": [r[4] for r in rows],
        "item_id": [r[1] for r in rows], "position": pa.array([r[3] for r in rows], pa.int32()),
        "score": [0.5] * n, "head_click": [0.1] * n, "user_id": ["u1"] * n, "device": ["ios"] * n,
        "item_category": ["c1"] * n, "hour": [10.0] * n, "feature_score": [1.0] * n,
    })
    part = root / "date=2026-12-01" / "hour=10"
    part.mkdir(parents=True)
    pq.write_table(table, part / "a.parquet")


def write_events(root: Path, rows: list[tuple], name: str = "f.parquet") -> None:
    """rows: (request_id, item_id, event, value, ts, event_id)."""
    cols = list(zip(*rows, strict=True))
    table = pa.Table.from_arrays([pa.array(c, f.type) for c, f in zip(cols, FEEDBACK_SCHEMA, strict=True)],
                                 schema=FEEDBACK_SCHEMA)
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, root / name)


IMPRESSIONS = [
    ("r1", "a", s(0), 1, "current"),
    ("r1", "a", s(10), 5, "current"),  # the request logged twice: the first by ts is kept
    ("r1", "a", s(-1), 9, "shadow"),  # scored by a shadow model, never shown
    ("r1", "b", s(0), 2, "current"),
    ("r3", "a", s(7200), 1, "current"),  # ts + window == END: labelled
    ("r2", "a", s(9000), 1, "current"),  # ts + window > END: pending
]
EVENTS = [
    ("r1", "a", "click", None, s(60), "e1"),
    ("r1", "a", "click", None, s(61), "e1"),  # a retried batch: the same event_id
    ("r1", "a", "click", None, s(3600), "e2"),  # the window's far edge counts
    ("r1", "a", "watch_seconds", 30.0, s(120), "e3"),
    ("r1", "a", "watch_seconds", 20.0, s(3540), "e4"),
    ("r1", "a", "watch_seconds", 100.0, s(3601), "e5"),  # late
    ("r1", "b", "watch_seconds", 7.0, s(300), "e6"),
    ("r1", "b", "rating", 4.0, s(180), "e7"),
    ("r1", "b", "rating", 2.0, s(240), "e8"),
    ("r3", "a", "click", None, s(7200 - 3), "e9"),  # 3 s before its impression: inside the 5 s skew
    ("r3", "a", "click", None, s(7200 - 10), "e10"),  # early
    ("r3", "a", "click", None, s(7300), None),  # no event_id: both kept
    ("r3", "a", "click", None, s(7300), None),
    ("r2", "a", "click", None, s(9060), "e11"),  # its impression is pending
    ("r9", "z", "click", None, s(100), "e12"),  # orphan: never logged
]


@pytest.fixture
def joined(tmp_path: Path):
    write_impressions(tmp_path / "imp", IMPRESSIONS)
    write_events(tmp_path / "fb", EVENTS)
    spec = load_spec(write_spec(tmp_path))
    report = run_join(str(tmp_path / "imp"), str(tmp_path / "fb"), spec, tmp_path / "out", end=END)
    rows = {(r["request_id"], r["item_id"]): r for r in dataset(str(tmp_path / "out")).to_table().to_pylist()}
    return report, rows, tmp_path


def test_labels_follow_each_rule(joined) -> None:
    _, rows, _ = joined
    assert set(rows) == {("r1", "a"), ("r1", "b"), ("r3", "a")}
    a, b, c = rows["r1", "a"], rows["r1", "b"], rows["r3", "a"]
    assert (a["click"], a["n_clicks"], a["watch_time"]) == (1.0, 2.0, 50.0)
    assert (a["min_w"], a["max_w"], a["mean_w"], a["first_w"]) == (20.0, 30.0, 25.0, 30.0)
    assert (a["like"], a["rating"], a["like_or_zero"]) == (None, None, None)  # clicked, no like: last() empty
    assert (b["click"], b["n_clicks"], b["watch_time"], b["like_or_zero"]) == (0.0, 0.0, None, 0.0)
    assert (b["min_w"], b["first_w"], b["rating"], b["first_rating"]) == (7.0, 7.0, 2.0, 4.0)
    assert (c["click"], c["n_clicks"], c["watch_time"], c["min_w"]) == (1.0, 3.0, 0.0, None)


def test_kept_columns_and_types(joined) -> None:
    _, rows, tmp = joined
    a = rows["r1", "a"]
    assert (a["position"], a["model_version"], a["arm"], a["model_role"]) == (1, 3, "control", "current")
    assert a["ts"] == T and a["head_click"] == 0.1 and a["user_id"] == "u1" and a["feature_score"] == 1.0
    schema = pq.read_schema(next((tmp / "out" / "date=2026-12-01").glob("*.parquet")))
    assert schema.field("position").type == pa.int32()
    assert all(schema.field(c).type == pa.float64() for c in ("click", "n_clicks", "watch_time", "like"))


def test_report_counts_every_row_and_event(joined) -> None:
    report, _, tmp = joined
    assert (report.impressions_read, report.shadow_excluded, report.duplicate_impressions) == (6, 1, 1)
    assert (report.labelled_rows, report.pending) == (3, 1)
    assert (report.events_read, report.duplicate_events) == (15, 1)
    assert report.events == {"counted": 10, "late": 1, "early": 1, "pending": 1, "orphan": 1}
    assert report.events_by_name["watch_seconds"] == {"counted": 3, "late": 1}
    assert report.partitions == ["2026-12-01"]
    assert json.loads((tmp / "out" / "_join_report.json").read_text())["events"]["late"] == 1


def test_a_rerun_replaces_its_partitions(joined) -> None:
    _, rows, tmp = joined
    spec = load_spec(write_spec(tmp))
    run_join(str(tmp / "imp"), str(tmp / "fb"), spec, tmp / "out", end=END)
    assert dataset(str(tmp / "out")).to_table().num_rows == len(rows)
    assert sorted(p.name for p in (tmp / "out").iterdir()) == ["_join_report.json", "date=2026-12-01"]


def test_the_window_closes_later_and_start_skips_earlier_days(tmp_path: Path) -> None:
    write_impressions(tmp_path / "imp", IMPRESSIONS)
    write_events(tmp_path / "fb", EVENTS)
    spec = load_spec(write_spec(tmp_path))
    later = run_join(str(tmp_path / "imp"), str(tmp_path / "fb"), spec, tmp_path / "out", end=END + timedelta(hours=1))
    assert (later.labelled_rows, later.pending, later.events["counted"]) == (4, 0, 11)
    nothing = run_join(str(tmp_path / "imp"), str(tmp_path / "fb"), spec, tmp_path / "out2",
                       start=T + timedelta(days=1), end=END + timedelta(days=1))
    assert (nothing.labelled_rows, nothing.impressions_read, nothing.events.get("counted", 0)) == (0, 0, 0)
    assert nothing.events["before_start"] == len(EVENTS) - 1  # an earlier run's events, not orphans


def test_spec_keys_name_the_output_columns(tmp_path: Path) -> None:
    write_impressions(tmp_path / "imp", IMPRESSIONS)
    write_events(tmp_path / "fb", EVENTS)
    spec = load_spec(write_spec(tmp_path, request_id="rid", timestamp="time", item_id="item"))
    run_join(str(tmp_path / "imp"), str(tmp_path / "fb"), spec, tmp_path / "out", end=END)
    names = set(dataset(str(tmp_path / "out")).schema.names)
    assert {"rid", "time", "item", "click", "date"} <= names and not {"request_id", "ts", "item_id"} & names


def test_no_feedback_files_means_negatives(tmp_path: Path) -> None:
    write_impressions(tmp_path / "imp", IMPRESSIONS)
    spec = load_spec(write_spec(tmp_path))
    report = run_join(str(tmp_path / "imp"), str(tmp_path / "none"), spec, tmp_path / "out", end=END)
    clicks = dataset(str(tmp_path / "out")).to_table().column("click").to_pylist()
    assert report.labelled_rows == 3 and clicks == [0.0, 0.0, 0.0] and report.events_read == 0


def invoke(*args: str):
    return CliRunner().invoke(app, ["logs", "join", *args])


def test_cli_prints_the_report_and_refuses_bad_inputs(tmp_path: Path) -> None:
    write_impressions(tmp_path / "imp", IMPRESSIONS)
    write_events(tmp_path / "fb", EVENTS)
    spec = str(write_spec(tmp_path))
    base = ["--impressions", str(tmp_path / "imp"), "--feedback", str(tmp_path / "fb"), "--spec", spec]
    ok = invoke(*base, "--out", str(tmp_path / "out"), "--end", END.isoformat())
    assert ok.exit_code == 0, ok.output
    assert "1 shadow excluded" in ok.output and "late 1" in ok.output and "orphan 1" in ok.output
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model.onnx").write_text("x")
    refused = invoke(*base, "--out", str(tmp_path / "other"))
    assert refused.exit_code == 2 and "model.onnx" in refused.output
    broken = tmp_path / "broken"
    broken.mkdir()
    pq.write_table(pa.table({"request_id": ["r1"], "item_id": ["a"], "event": ["click"], "value": [None],
                             "ts": pa.array([T], pa.timestamp("ms", tz="UTC"))}), broken / "f.parquet")
    missing = invoke("--impressions", str(tmp_path / "imp"), "--feedback", str(broken), "--spec", spec,
                     "--out", str(tmp_path / "out3"))
    assert missing.exit_code == 2 and "'event_id'" in missing.output
    both = invoke(*base, "--out", str(tmp_path / "out5"), "--start", "2026-12-01", "--last-days", "2")
    assert both.exit_code == 2 and "--last-days" in both.output
    recent = invoke(*base, "--out", str(tmp_path / "out6"), "--last-days", "1")  # 2026-12-01 is long before
    assert recent.exit_code == 0 and "0 labelled rows written" in recent.output, recent.output
    empty = invoke("--impressions", str(tmp_path / "nothing"), "--feedback", str(broken), "--spec", spec,
                   "--out", str(tmp_path / "out4"))
    assert empty.exit_code == 2 and "--impressions" in empty.output


def test_print_sql_in_both_dialects(tmp_path: Path) -> None:
    write_impressions(tmp_path / "imp", IMPRESSIONS)
    spec = str(write_spec(tmp_path))
    duck = invoke("--impressions", str(tmp_path / "imp"), "--spec", spec, "--print-sql", "--end", END.isoformat())
    spark = invoke("--impressions", str(tmp_path / "imp"), "--spec", spec, "--print-sql", "--dialect", "spark",
                   "--end", END.isoformat())
    assert duck.exit_code == 0 and spark.exit_code == 0, duck.output + spark.output
    assert "CREATE OR REPLACE TABLE imp_keys AS" in duck.output and "CACHE TABLE ev_class AS" in spark.output
    assert "ROW_NUMBER() OVER (PARTITION BY i.request_id, i.item_id" in duck.output and "max_by(" in duck.output
    assert "`model_role`" in spark.output and '"model_role"' not in spark.output
    assert "TIMESTAMP '2026-12-01 13:00:00.000'" in spark.output
