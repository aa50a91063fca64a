"""serve_profile's attribution: a sample goes to the category of its innermost frame that names one, and
waiting threads are left out."""

from __future__ import annotations

from pathlib import Path

from bench.serving.serve_profile import category, read_samples

ROOT = "_run_module_as_main (<frozen runpy>:198);Runner.run (asyncio/runners.py:118)"
WORKER = "Thread._bootstrap (threading.py:1002);WorkerThread.run (anyio/_backends/_asyncio.py:1124)"


def test_the_innermost_named_frame_decides() -> None:
    numpy_in_encoder = f"{WORKER};rank (service/live/pipeline.py:83);encode (service/live/model.py:88);" \
                       "CategoricalEncoder.encode (service/contract/features.py:89);_wrapfunc (numpy/_core/x.py:54)"
    metrics_in_pipeline = f"{WORKER};rank (service/live/pipeline.py:98);inc (prometheus_client/values.py:28)"
    assert category(numpy_in_encoder.split(";"))[0] == "encode"
    assert category(metrics_in_pipeline.split(";"))[0].startswith("metrics")
    assert category(f"{WORKER};run (onnxruntime/capi/x.py:406)".split(";"))[0] == "session.run (onnxruntime)"
    assert category(["main (somewhere/else.py:1)"]) == ("other", "main (somewhere/else.py:1)")


def test_waiting_threads_are_idle_and_counts_add_up(tmp_path: Path) -> None:
    stacks = tmp_path / "stacks.txt"
    stacks.write_text("\n".join([
        f"{WORKER};Condition.wait (threading.py:327) 40",
        f"{ROOT} 10",  # the event loop in epoll
        f"{WORKER};response_body (service/live/response.py:54) 30",
        f"{WORKER};response_body (service/live/response.py:53) 10",
        f"{ROOT};send (uvicorn/protocols/http/httptools_impl.py:522) 20",
    ]) + "\n")
    busy, frames, idle = read_samples(stacks)
    assert idle == 50
    assert busy == {"response body (orjson)": 40, "HTTP (uvicorn, httptools)": 20}
    assert frames["response body (orjson)"].most_common(1)[0] == ("response_body (service/live/response.py:54)", 30)
