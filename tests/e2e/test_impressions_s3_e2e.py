"""The impression log on a real S3-compatible server (moto, 127.0.0.1): segments spool locally, each
Parquet file is one PUT; with the store down requests still answer and the files wait in the spool."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
import s3fs
from moto_s3 import S3Server, free_port

from service.examples import example_request

pytestmark = pytest.mark.slow


def rank_all(d, manifest, n: int) -> None:
    for s in range(n):
        r = d.client.post("/v1/rank", content=orjson.dumps(example_request(manifest, 5, seed=s)))
        assert r.status_code == 200, r.text


def test_files_go_to_the_bucket_and_wait_out_an_outage(s3: S3Server, deploy, tmp_path: Path, manifest) -> None:
    url = s3.make_bucket("impressions-log") + "/logs"
    spool = tmp_path / "spool"
    env = {"RANKER_LOG_DIR": url, "RANKER_LOG_SPOOL_DIR": str(spool), "RANKER_LOG_FLUSH_SECONDS": "0.2",
           "RANKER_REPLICA": "s3-test"}
    # The store is down (nothing listens at the endpoint): requests answer, the file waits in the spool.
    down = deploy(**env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", AWS_MAX_ATTEMPTS="1")
    rank_all(down, manifest, 6)
    down.stop()
    waiting = list(spool.rglob(".part-*.ready"))
    assert len(waiting) == 1 and pq.read_table(waiting[0]).num_rows == 6 * 5
    assert sum('"store_error"' in line for line in down.server.logs().splitlines()) == 1
    # Back up: the next process of this replica publishes what waited, then its own file.
    up = deploy(**env)
    rank_all(up, manifest, 4)
    up.stop()
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    files = fs.glob("impressions-log/logs/impressions/date=*/hour=*/*.parquet")
    assert len(files) == 2 and not list(spool.rglob(".part-*"))
    assert sum(pq.read_table(f, filesystem=fs).num_rows for f in files) == (6 + 4) * 5
