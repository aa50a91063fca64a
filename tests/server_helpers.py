"""Helpers shared by the server tests: waiting, free ports, a real uvicorn subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
ADMIN_TOKEN = "test-admin-token-0123456789"


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def wait_ready(client, timeout: float = 20.0) -> None:
    """Until GET /v2/health/ready is 200 (client: TestClient or httpx.Client)."""
    if not wait_until(lambda: _status(client, "/v2/health/ready") == 200, timeout):
        raise TimeoutError(f"server not ready after {timeout}s: {client.get('/v2/health/ready').text}")


def _status(client, path: str) -> int:
    try:
        return client.get(path).status_code
    except httpx.TransportError:
        return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python -m service.cli` on 127.0.0.1 and a free port, configured by RANKER_* variables.

    Logs go to `log_path`; `stop()` sends SIGTERM (graceful) and kills after a timeout.
    """

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("RANKER_")}
        full_env.update({"RANKER_HOST": "127.0.0.1", "RANKER_PORT": str(self.port), **env})
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "service.cli"], env=full_env, cwd=REPO,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 30.0) -> ServerProcess:
        with httpx.Client(base_url=self.url, timeout=2.0) as c:
            ok = wait_until(lambda: self.proc.poll() is None and _status(c, "/v2/health/ready") == 200, timeout, 0.1)
        if not ok:
            self.stop()
            raise RuntimeError(f"server did not become ready; log:\n{self.log_path.read_text()[-4000:]}")
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def logs(self) -> str:
        return self.log_path.read_text()


def published_settings(bundle: Path, tmp: Path, weights: Path):
    """Settings of an app serving `bundle` from a fresh registry under tmp, with a copy of `weights`."""
    import shutil

    from service.contract.bundle import read_manifest
    from service.registry import Registry
    from service.settings import Settings

    reg = Registry(tmp / "registry", read_manifest(bundle).model_name)
    reg.publish(bundle)
    copied = tmp / "weights.yaml"
    shutil.copy(weights, copied)
    return Settings(registry_root=str(reg.root), model_name=reg.model_name, weights_path=copied,
                    poll_interval=0.1, weights_poll_interval=0.1)
