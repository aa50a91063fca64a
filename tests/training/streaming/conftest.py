"""The tiny demo data read both ways: in memory and streamed (row groups of a few hundred rows)."""

from __future__ import annotations

import pytest

from training.spec import RankerSpec


def streamed(spec: RankerSpec, **streaming) -> RankerSpec:
    """A copy of `spec` that streams, small record batches so that every row group is read in pieces."""
    spec = spec.model_copy(deep=True)
    spec.train.threads = 1
    spec.data.streaming = spec.data.streaming.model_copy(update={"mode": "stream", "read_batch_rows": 200, **streaming})
    return spec


@pytest.fixture(scope="session")
def as_streamed():
    """`streamed`, for tests."""
    return streamed


@pytest.fixture(scope="session")
def stream_trained(tiny_spec: RankerSpec):
    """The `trained` fixture's run, streamed (a shuffle buffer of 2,000 rows, under a quarter of train)."""
    from training.fit.train import train

    return train(streamed(tiny_spec, shuffle_buffer=2_000), progress=False, eval_test=True)
