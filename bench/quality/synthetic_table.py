"""Ma et al.'s (KDD 2018) synthetic generator (bench/quality/synthetic/data.py) as a Parquet table, so the
peer comparison (bench/quality/baselines.py) runs on it like on any user's data.

One draw at task correlation p = 0.5 (the middle of the paper's range), c = 1, seed 0: 15,000 rows of
x0..x99 (standard normal), and two regression labels task_a, task_b. The table has no categorical
column, and a spec needs one, so `segment` holds one value (what the spec error advises).

    .venv/bin/python -m bench.quality.synthetic_table   # -> data/synthetic/ma_p0.5.parquet
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.quality.common import REPO
from bench.quality.synthetic.config import SynthConfig
from bench.quality.synthetic.data import make_data

CORRELATION = 0.5
OUT = REPO / "data" / "synthetic" / f"ma_p{CORRELATION}.parquet"


def build(cfg: SynthConfig | None = None, p: float = CORRELATION, seed: int = 0) -> pa.Table:
    """One draw of the generator (the synthetic benchmark's SynthConfig by default): train rows, then test rows."""
    data = make_data(p, cfg or SynthConfig(), np.random.default_rng(seed))
    x = np.concatenate([data["x_train"].numpy(), data["x_test"].numpy()])
    y = np.concatenate([data["y_train"].numpy(), data["y_test"].numpy()])
    columns = {f"x{j}": x[:, j] for j in range(x.shape[1])}
    return pa.table({**columns, "segment": pa.array(["all"] * len(x)), "task_a": y[:, 0], "task_b": y[:, 1]})


def write_dataset(out: Path = OUT) -> Path:
    """Build the Parquet file once (reused when it already exists)."""
    out = Path(out)
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    pq.write_table(build(), tmp)
    tmp.rename(out)
    return out


if __name__ == "__main__":
    path = write_dataset()
    print(f"{path}: {pq.read_metadata(path).num_rows} rows")
