"""Reading an impression log directory the way a joiner does, for the tests."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def parquet_files(root: Path) -> list[Path]:
    return sorted((root / "impressions").glob("date=*/hour=*/*.parquet"))


def read_log(root: Path) -> pa.Table:
    """Every published file (each must read whole), one table (columns of all layouts)."""
    tables = [pq.read_table(p) for p in parquet_files(root)]
    return pa.concat_tables(tables, promote_options="default") if tables else pa.table({})


def metric(text: str, name: str, **labels: str) -> float:
    """A sample's value from a /metrics page (0 when absent)."""
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
