"""`ranker-serve`: run the ranking server under uvicorn. `ranker-serve --help` lists every setting."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError
from pydantic_settings import CliApp
from pydantic_settings import SettingsError as PydanticSettingsError

from service.app import create_app
from service.logging import configure_logging
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
    # One process per server: the model is ~1 ms of a request, onnxruntime releases the GIL, and
    # Prometheus counters stay exact. Scale out with replicas (see docs/BENCHMARKS.md).
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_config=None,
        log_level=settings.log_level, access_log=False, timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    app()
