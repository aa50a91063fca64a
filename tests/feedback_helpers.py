"""Reading a feedback log directory (what `ranker logs join` reads), for the tests."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from service.contract.feedback import FEEDBACK_SCHEMA


def feedback_files(root: Path) -> list[Path]:
    return sorted((root / "feedback").glob("date=*/hour=*/*.parquet"))


def read_feedback(root: Path) -> pa.Table:
    """Every published feedback file (each must read whole, with FEEDBACK_SCHEMA), one table."""
    tables = [pq.read_table(p) for p in feedback_files(root)]
    for t in tables:
        assert t.schema.equals(FEEDBACK_SCHEMA), t.schema
    return pa.concat_tables(tables) if tables else FEEDBACK_SCHEMA.empty_table()
