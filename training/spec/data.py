"""The spec's `data:` section: where the rows are, which columns play which role, how they are split.

Two ways to name the rows:
    path                   one dataset, split into train/valid/test by `split` or `split_column`
    train [+ valid, test]  pre-split files; without `valid`, valid_fraction of train is held out

Only the data path is required. `timestamp`, `request_id` and `item_id` are optional: without a
timestamp the split is random (seeded); without a request_id there are no requests, so ranking
metrics (NDCG) are n/a.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SPLIT_NAMES = ("train", "valid", "test")


class StreamingConfig(BaseModel):
    """How the rows reach the trainer: read into memory, or streamed a record batch at a time."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["auto", "memory", "stream"] = Field(
        "auto", description="`memory` reads every split into memory (fastest for data that fits); `stream` "
        "reads Parquet record batches in two passes (statistics, then training through a shuffle buffer), so "
        "memory is bounded by the buffer, not the data; `auto` streams above `max_memory_rows`",
        examples=["stream"])
    max_memory_rows: int = Field(
        5_000_000, ge=1, description="`auto`: stream when the data has more rows than this (from the Parquet "
        "metadata, before the start/end window)", examples=[20_000_000])
    shuffle_buffer: int = Field(
        1_000_000, ge=1, description="streaming: encoded training rows mixed in memory; row groups are also "
        "read in a new random order every epoch", examples=[250_000])
    read_batch_rows: int = Field(65_536, ge=1, description="streaming: rows per record batch read from Parquet",
                                 examples=[131_072])


class DataConfig(BaseModel):
    """Where the rows are, which columns play which role, and how the rows are split."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        None, description="one Parquet dataset (a file, a directory with hive partitions allowed, or a glob), "
        "split into train/valid/test by `split` or `split_column`; relative to the spec's folder",
        examples=["../data/impressions/"])
    train: str | None = Field(
        None, description="pre-split training rows, instead of `path` (file, directory or glob)",
        examples=["data/train.parquet"])
    valid: str | None = Field(
        None, description="pre-split validation rows (early stopping, reported metrics); without it, "
        "`valid_fraction` of the train rows are held out by `split`", examples=["data/valid.parquet"])
    test: str | None = Field(
        None, description="pre-split test rows; optional: without them the run has no test split",
        examples=["data/test.parquet"])
    timestamp: str | None = Field(
        None, description="event time column (a Parquet timestamp): enables the time split and the "
        "`start`/`end` window; without it the split is random", examples=["ts"])
    request_id: str | None = Field(
        None, description="the rows with equal values form one ranking request, wherever they lie; NDCG "
        "is computed per request. Without it ranking metrics are n/a", examples=["request_id"])
    item_id: str | None = Field(
        None, description="the candidate's id column. When it is also a categorical `item` feature, the "
        "server feeds each candidate's `item_id` into that feature", examples=["movie_id"])
    start: str | None = Field(
        None, description="keep rows with timestamp >= start (ISO date/time; naive = UTC)", examples=["2024-05-01"])
    end: str | None = Field(
        None, description="keep rows with timestamp < end (ISO date/time; naive = UTC)", examples=["2024-05-15"])
    split: Literal["time", "random"] | None = Field(
        None, description="how `path` (or `train` without `valid`) is split: `time` = oldest rows train, "
        "newest test (needs `timestamp`); `random` = whole requests (or rows, without `request_id`) "
        "shuffled with `seed`. Default: time with a timestamp, else random", examples=["random"])
    split_column: str | None = Field(
        None, description="a column whose values `train`, `valid` and `test` (optional) assign each row "
        "to a split, instead of `split` and the fractions", examples=["fold"])
    valid_fraction: float = Field(0.1, gt=0, lt=0.5, description="share of rows held out for validation",
                                  examples=[0.1])
    test_fraction: float = Field(0.1, ge=0, lt=0.5, description="share of rows held out for testing with "
                                 "`path`; 0 = no test split", examples=[0.0])
    seed: int = Field(0, description="seed of the random split; separate from `train.seed`, so runs with "
                      "different training seeds see the same split", examples=[7])
    streaming: StreamingConfig = Field(
        default_factory=StreamingConfig, description="in memory or streamed (and the stream's shuffle buffer)",
        examples=[{"mode": "stream", "shuffle_buffer": 500_000}])

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if (self.path is None) == (self.train is None):
            raise ValueError("give either path (one dataset, split by `split`) or train (pre-split files, "
                             "with optional valid and test)")
        if self.train is None and (self.valid or self.test):
            raise ValueError("valid and test files go with a train file; with path, the split makes them")
        if self.train is not None and "test_fraction" in self.model_fields_set:
            raise ValueError("test_fraction splits `path`; with pre-split files the test rows are `test`")
        if self.split_column and (self.split or self.train):
            raise ValueError("split_column assigns every row of `path` to a split; it does not go with "
                             "`split` or pre-split files")
        if self.timestamp is None:
            if self.split == "time":
                raise ValueError("split: time needs a timestamp column (data.timestamp)")
            if self.start or self.end:
                raise ValueError("start/end select rows by time and need data.timestamp")
        return self

    @property
    def carve_method(self) -> Literal["time", "random"]:
        """How fractions are cut from one table: `split`, else time with a timestamp, else random."""
        return self.split or ("time" if self.timestamp else "random")

    @property
    def without_test(self) -> bool:
        """True when the spec itself rules out a test split (a split column may still lack test rows)."""
        return self.test is None if self.train is not None else (not self.split_column and self.test_fraction == 0)

    def sources(self) -> dict[str, str]:
        """The data paths named in the spec: {"path": ...} or {"train": ..., "valid": ..., "test": ...}."""
        names = ("path",) if self.path is not None else SPLIT_NAMES
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}
