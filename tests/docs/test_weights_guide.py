"""docs/WEIGHTS.md: every command of the operator's guide runs, in order, as written.

The guide's ```bash blocks run as one bash script in a directory laid out as `make run` leaves it
(runs/demo-bundle, data/demo, registry/, configs/, .venv, bench/), with a real server on a free port
in place of localhost:8000, reading that weights file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from server_helpers import ServerProcess

from service.registry import Registry

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "WEIGHTS.md"


def guide_script() -> str:
    blocks = re.findall(r"```bash\n(.*?)```", GUIDE.read_text(), flags=re.S)
    assert len(blocks) >= 6, "the guide's command blocks"
    return "\n".join(blocks)


@pytest.fixture
def workdir(tmp_path: Path, bundle_dir: Path, tiny_dir: Path) -> Path:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "demo-bundle").symlink_to(bundle_dir)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "demo").symlink_to(tiny_dir)
    (tmp_path / "configs").mkdir()
    for name in ("weights.yaml", "demo.yaml"):
        shutil.copy(REPO / "configs" / name, tmp_path / "configs" / name)
    for name in (".venv", "bench"):  # the guide's `.venv/bin/python -m bench...` runs from the repository root
        (tmp_path / name).symlink_to(REPO / name)
    Registry(tmp_path / "registry", "demo").publish(bundle_dir)
    return tmp_path


@pytest.mark.slow
def test_every_command_of_the_weights_guide_runs(workdir: Path) -> None:
    env = {"RANKER_REGISTRY_ROOT": str(workdir / "registry"), "RANKER_MODEL_NAME": "demo",
           "RANKER_WEIGHTS_PATH": str(workdir / "configs" / "weights.yaml"), "RANKER_WEIGHTS_POLL_INTERVAL": "0.1"}
    server = ServerProcess(env, workdir / "serve.log").wait_ready()
    try:
        script = guide_script().replace("localhost:8000", f"127.0.0.1:{server.port}")
        path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=workdir, capture_output=True, text=True,
                              env={**os.environ, "PATH": path}, timeout=600)
    finally:
        server.stop()
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert out.count("ok: ") == 6  # every `weights check` passed
    assert "tuned_satisfaction" in out and "Kendall tau" in out and "(default)" in out
    assert '"tuned_satisfaction": 0.1' in out  # /v1/models shows the experiment the server reloaded
    assert '"arm":' in out and '"contributions":' in out
    assert (workdir / "runs" / "tune" / "weights.png").stat().st_size > 10_000
    assert "default_profile: tuned_satisfaction" in (workdir / "configs" / "weights.yaml").read_text()
