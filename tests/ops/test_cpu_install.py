"""`make setup` installs the CPU build of torch: the running venv's `pip list` has the torch that
constraints.txt pins (`2.13.0+cpu`) and no CUDA runtime (`nvidia-*` packages, `triton`). With CUDA
the venv was 5.7 GB instead of 2 GB; constraints.txt says why pip fell back to it.

Only a pin that names a CUDA build (`+cu130`, docs/DEVELOPMENT.md "CPU torch by default") lifts the CPU check: a bare
`torch==2.13.0` also matches PyPI's CUDA build, which is the bug this guards against."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

CONSTRAINTS = Path(__file__).resolve().parents[2] / "constraints.txt"


@pytest.fixture(scope="module")
def installed() -> dict[str, str]:
    """{normalized name: version} of every distribution in the venv running the tests."""
    listing = subprocess.run([sys.executable, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
                             capture_output=True, text=True, timeout=120, check=True)
    return {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(listing.stdout)}


@pytest.fixture(scope="module")
def torch_pin() -> str:
    pins = re.findall(r"^torch==(\S+)", CONSTRAINTS.read_text(), flags=re.MULTILINE)
    assert len(pins) == 1, f"constraints.txt must pin torch exactly once, found {pins}"
    return pins[0]


def test_torch_is_the_pinned_build(installed: dict[str, str], torch_pin: str) -> None:
    assert "torch" in installed, "torch is not installed: run make setup"
    assert installed["torch"] == torch_pin, f"torch {installed['torch']} installed, constraints.txt pins {torch_pin}"


def test_cpu_torch_and_no_cuda_packages(installed: dict[str, str], torch_pin: str) -> None:
    if "+cu" in torch_pin:
        pytest.skip(f"constraints.txt pins a CUDA build (torch {torch_pin})")
    assert installed.get("torch", "").endswith("+cpu"), f"torch {installed.get('torch')} is not the +cpu build"
    cuda = sorted(n for n in installed if n.startswith("nvidia-") or n == "triton")
    assert not cuda, f"CUDA packages in the venv: {cuda}"
