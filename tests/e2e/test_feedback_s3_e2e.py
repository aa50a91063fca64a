"""Feedback to an S3-compatible server (moto, 127.0.0.1): the 200 means fsynced in the local spool,
and the roll uploads the batch's Parquet under feedback/ with one PUT."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
import s3fs
from moto_s3 import S3Server

from service.contract.feedback import FEEDBACK_SCHEMA

pytestmark = pytest.mark.slow


def test_feedback_goes_to_the_bucket(s3: S3Server, deploy, tmp_path: Path) -> None:
    url = s3.make_bucket("feedback-log") + "/logs"
    spool = tmp_path / "spool"
    d = deploy(RANKER_LOG_DIR=url, RANKER_LOG_SPOOL_DIR=str(spool), RANKER_LOG_FLUSH_SECONDS="0.2",
               RANKER_REPLICA="s3-test")
    events = [{"request_id": "r1", "item_id": f"i{n}", "event": "rating", "value": n / 2, "event_id": f"e{n}"}
              for n in range(7)]
    r = d.client.post("/v1/feedback", content=orjson.dumps({"events": events}))
    assert r.status_code == 200 and r.json()["accepted"] == 7, r.text
    assert list(spool.rglob("feedback/date=*/hour=*/.part-*.arrows"))  # durable in the spool before the upload
    d.stop()
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    files = fs.glob("feedback-log/logs/feedback/date=*/hour=*/*.parquet")
    assert len(files) == 1 and not list(spool.rglob(".part-*"))
    table = pq.read_table(files[0], filesystem=fs)
    assert table.schema.equals(FEEDBACK_SCHEMA)
    assert table.column("value").to_pylist() == [n / 2 for n in range(7)]
