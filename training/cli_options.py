"""What every `ranker` command shares: the registry options, the user errors, and one way to fail.

Each sub-app (nightly/, features/, logs/, monitor/, profiles/, experiments/) takes these from here, so
no sub-app imports another one or the assembling training/cli.py.
"""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer

from service.contract.bundle import BundleError
from service.profiles import WeightsError
from service.registry import Registry, RegistryError
from training.data import DataError
from training.spec import SpecError

EXIT_ERROR = 2  # bad input: a one-line reason on stderr

# The errors a user's input can cause: a command reports them in one line and exits EXIT_ERROR.
USER_ERRORS: tuple[type[Exception], ...] = (SpecError, DataError, BundleError, RegistryError, WeightsError)

RegistryOpt = Annotated[str, typer.Option("--registry", envvar="RANKER_REGISTRY_ROOT",
                                          help="registry root: a path or s3://bucket/prefix")]
ModelOpt = Annotated[str | None, typer.Option("--model", envvar="RANKER_MODEL_NAME",
                                              help="model name (default: the only model under a local root)")]


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print `error: message` in red on stderr and exit with `code`."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=code)


def open_registry(root: str, model: str | None, keep: int = 5) -> Registry:
    """The registry of `model` under `root`; without a model name, the root's only model (else fail)."""
    if model is None:
        models = Registry.models(root)
        if len(models) != 1:
            fail(f"name the model with --model (models under {root}: {models or 'none'})")
        model = models[0]
    return Registry(root, model, keep=keep)
