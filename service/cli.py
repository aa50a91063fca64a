"""`ranker-serve`: run the ranking server under uvicorn. `ranker-serve --help` lists every setting."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

import uvicorn
from pydantic import ValidationError
from pydantic_settings import CliApp
from pydantic_settings import SettingsError as PydanticSettingsError

from service.app import create_app
from service.logging import configure_logging
from service.metrics import MULTIPROC_ENV
from service.settings import Settings, SettingsError, with_config_file

log = logging.getLogger(__name__)


def app(argv: list[str] | None = None) -> None:
    """Parse settings (CLI > env > config file > defaults) and serve until SIGINT/SIGTERM."""
    try:
        settings = with_config_file(CliApp.run(Settings, cli_args=argv if argv is not None else sys.argv[1:]))
    except (SettingsError, ValidationError, PydanticSettingsError) as e:
        sys.stderr.write(f"ranker-serve: invalid settings: {e}\n")
        raise SystemExit(2) from None
    configure_logging(settings.log_level)
    options = dict(host=settings.host, port=settings.port, log_config=None, log_level=settings.log_level,
                   access_log=False, timeout_graceful_shutdown=10)
    if settings.workers == 1:  # the default: docs/BENCHMARKS.md ("Serving latency") has 1 vs 2 processes
        uvicorn.run(create_app(settings), **options)
        return
    # Each worker is a fresh process that builds its app from RANKER_* and finds the metrics directory
    # in its environment before it imports prometheus_client (service.metrics).
    os.environ.update(settings.to_env())
    os.environ[MULTIPROC_ENV] = metrics_dir(os.environ.get(MULTIPROC_ENV))
    uvicorn.run("service.app:create_app", factory=True, workers=settings.workers, **options)


def metrics_dir(given: str | None) -> str:
    """An empty directory for the workers' metric files: values left by an earlier run would be added in."""
    path = Path(given) if given else Path(tempfile.mkdtemp(prefix="ranker-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    return str(path)


if __name__ == "__main__":
    app()
