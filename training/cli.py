"""`ranker`: the trainer's command line. Each command exits non-zero with a one-line reason on bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.bundle import BundleError
from service.registry import Registry, RegistryError
from training.data import DataError
from training.spec import SpecError, load_spec

app = typer.Typer(help="Train, export and publish multi-task ranking models.", no_args_is_help=True,
                  pretty_exceptions_enable=False)

USER_ERRORS = (SpecError, DataError, BundleError, RegistryError)


def fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@app.command("demo-data")
def demo_data(
    out: Annotated[Path, typer.Argument(help="output directory (one Parquet file per day)")],
    rows: Annotated[int, typer.Option(min=100, help="impressions to generate")] = 200_000,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same data)")] = 0,
    days: Annotated[int, typer.Option(min=1, help="days of traffic")] = 14,
    drift: Annotated[float, typer.Option(min=0.0, help="shift of tastes and catalogue vs. drift 0")] = 0.0,
) -> None:
    """Write a deterministic synthetic impression log (click, watch_time, like, rating)."""
    from training.demo_data import DemoConfig, write_demo

    files = write_demo(out, DemoConfig(rows=rows, seed=seed, days=days, drift=drift))
    typer.echo(f"wrote {rows:,} rows in {len(files)} files under {out}")


@app.command()
def train(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="ranker spec YAML")],
    out: Annotated[Path, typer.Option(help="bundle directory to write")] = Path("runs/bundle"),
    data: Annotated[str | None, typer.Option(help="override data.path of the spec")] = None,
    registry: Annotated[str | None, typer.Option(help="also publish to this registry root and make it CURRENT")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Train on the spec's data, evaluate, export a verified bundle and optionally publish it."""
    from training.export import export_bundle
    from training.train import train as run_training

    try:
        spec = load_spec(spec_path, data_path=data)
        trained = run_training(spec, out_dir=out.parent / f"{out.name}.logs", progress=progress)
        export_bundle(trained, out)
        typer.echo(f"bundle written to {out}")
        if registry:
            version = Registry(registry, spec.name).publish(out)
            typer.echo(f"published {spec.name} version {version} to {registry} (CURRENT)")
    except USER_ERRORS as e:
        fail(str(e))


@app.command()
def publish(
    bundle: Annotated[Path, typer.Argument(help="bundle directory")],
    registry: Annotated[str, typer.Option(help="registry root")],
    current: Annotated[bool, typer.Option(help="make it CURRENT")] = True,
) -> None:
    """Publish an existing bundle as the next version of its model."""
    from service.bundle import load_bundle

    try:
        manifest = load_bundle(bundle).manifest
        version = Registry(registry, manifest.model_name).publish(bundle, make_current=current)
    except USER_ERRORS as e:
        fail(str(e))
    typer.echo(f"published {manifest.model_name} version {version}{' (CURRENT)' if current else ''}")


if __name__ == "__main__":
    app()
