"""Server subprocesses for the benchmarks: 127.0.0.1, a free port, waited for, stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A command serving HTTP on 127.0.0.1.

    Args:
        cmd: the command; the port goes into RANKER_PORT, and also as `--port N` when port_flag.
        env: extra environment variables.
        log_path: stdout and stderr of the process.
        ready_path: GET path that answers 200 once the server can take requests.
    """

    def __init__(self, cmd: list[str], env: dict[str, str], log_path: Path, ready_path: str,
                 port_flag: bool = False) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.ready_url = f"http://127.0.0.1:{self.port}{ready_path}"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("RANKER_")}
        full_env.update({**env, "RANKER_HOST": "127.0.0.1", "RANKER_PORT": str(self.port)})
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
        if port_flag:
            cmd = [*cmd, "--port", str(self.port)]
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=full_env, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if urllib.request.urlopen(self.ready_url, timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.ready_url} not ready; log:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
