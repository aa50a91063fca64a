"""A real Prometheus on 127.0.0.1 and a free port, for the alert-rule tests.

`scripts/install_prometheus.sh` (run by `make test`) installs Debian's prometheus package (which brings
promtool) when it is missing. The server keeps its data in a temp directory and is stopped by the test.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from server_helpers import REPO, free_port

if str(REPO) not in sys.path:  # the generator, scripts/monitoring/, is not an installed package
    sys.path.insert(0, str(REPO))


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: run scripts/install_prometheus.sh (make test does)")
    return found


def promtool() -> str:
    return _binary("promtool")


class PrometheusServer:
    """One prometheus process scraping `targets` (job `ranker`) every `interval`, with `rules` loaded."""

    def __init__(self, workdir: Path, targets: list[str], rules: dict, interval: str = "1s") -> None:
        self.binary = _binary("prometheus")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        (workdir / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
        config = {"global": {"scrape_interval": interval, "evaluation_interval": interval,
                             "scrape_timeout": interval},
                  "rule_files": [str(workdir / "rules.yml")],
                  "scrape_configs": [{"job_name": "ranker", "static_configs": [{"targets": targets}]}]}
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout: float = 20.0) -> PrometheusServer:
        cmd = [self.binary, f"--config.file={self.workdir / 'prometheus.yml'}",
               f"--storage.tsdb.path={self.workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"]
        self._log = open(self.workdir / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"prometheus did not start:\n{(self.workdir / 'prometheus.log').read_text()[-3000:]}")

    def alerts(self) -> list[dict]:
        """Every pending or firing alert (GET /api/v1/alerts)."""
        body = httpx.get(f"{self.url}/api/v1/alerts", timeout=5.0).json()
        return body["data"]["alerts"]

    def query(self, expr: str) -> list[dict]:
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5.0).json()
        return body["data"]["result"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
