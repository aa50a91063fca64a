"""`ranker`: the trainer's command line. Each command exits non-zero with a one-line reason on bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from service.contract.bundle import read_manifest
from service.registry import Registry
from training.cli_options import USER_ERRORS, fail
from training.compare.cli import compare_command
from training.experiments.cli import experiment_app
from training.features.cli import features_app
from training.logs.cli import logs_app
from training.monitor.cli import monitor_app
from training.nightly.cli import registry_app, retrain_command
from training.profiles.cli import replay_command, tune_command, weights_app
from training.spec import load_spec

app = typer.Typer(help="Train, export and publish multi-task ranking models.", no_args_is_help=True,
                  pretty_exceptions_enable=False)

@app.command("demo-data")
def demo_data(
    out: Annotated[Path, typer.Argument(help="output directory (one Parquet file per day)")],
    rows: Annotated[int, typer.Option(min=100, help="impressions to generate")] = 200_000,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same data)")] = 0,
    days: Annotated[int, typer.Option(min=1, help="days of traffic")] = 14,
    drift: Annotated[float, typer.Option(min=0.0, help="shift of tastes and catalogue vs. drift 0")] = 0.0,
    position_bias: Annotated[float, typer.Option(
        min=0.0, help="eta: an item shown at position p is examined with probability (1+p)^-eta; 0 = no bias; "
                      "true_click_prob keeps the unbiased click probability")] = 0.0,
    ceiling: Annotated[bool, typer.Option(help="print the metrics of the true probabilities (best possible)")] = True,
    features_out: Annotated[Path | None, typer.Option(
        help="also write the item and user feature snapshots here", show_default="OUT-features")] = None,
    shard_rows: Annotated[int, typer.Option(
        min=1000, help="above this many rows, generate and write shard by shard (memory: one shard; "
                       "many files per day; no ceiling)")] = 2_000_000,
) -> None:
    """Write a deterministic synthetic impression log (click, watch_time, like, rating) and its feature snapshots."""
    from training.data.demo import DemoConfig, generate, write_feature_snapshots, write_partitioned
    from training.data.demo import ceiling as true_ceiling
    from training.data.demo_shards import write_sharded

    cfg = DemoConfig(rows=rows, seed=seed, days=days, drift=drift, position_bias=position_bias)
    snapshot_dir = features_out or out.parent / f"{out.name}-features"
    if rows > shard_rows:
        files, snapshots = write_sharded(cfg, out, shard_rows, snapshot_dir)
        ceiling = False  # the ceiling needs every row in memory
    else:
        logs = generate(cfg)
        files = write_partitioned(logs, out)
        snapshots = write_feature_snapshots(logs, snapshot_dir)
    typer.echo(f"wrote {rows:,} rows in {len(files)} files under {out}")
    typer.echo("feature snapshots (for `ranker features publish`): " + ", ".join(map(str, snapshots.values())))
    if ceiling:
        typer.echo("best possible test metrics (true probabilities / expectations, newest 10% of rows):")
        for task, values in true_ceiling(cfg).items():
            typer.echo(f"  {task:<11}" + "  ".join(f"{k} {v:.4f}" for k, v in values.items() if v is not None))


@app.command()
def train(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="ranker spec YAML")],
    out: Annotated[Path, typer.Option(help="bundle directory to write")] = Path("runs/bundle"),
    data: Annotated[str | None, typer.Option(help="override data.path of the spec")] = None,
    registry: Annotated[str | None, typer.Option(help="also publish to this registry root and make it CURRENT")] = None,
    progress: Annotated[bool, typer.Option(help="show progress (a bar on a terminal, log lines otherwise)")] = True,
    eval_test: Annotated[bool, typer.Option(
        "--eval-test", help="also measure the test split, print it and store it in the bundle; off by "
        "default so that picking a model never looks at test (`ranker evaluate` measures it later)")] = False,
    nproc: Annotated[int, typer.Option(min=1, help="train in N processes on this machine (torchrun; gloo on "
                                       "CPU, nccl with CUDA): each reads its own rows, gradients are averaged, "
                                       "process 0 exports and publishes")] = 1,
) -> None:
    """Train on the spec's data, evaluate on validation, export a verified bundle (with report.md) and
    optionally publish it."""
    from training.distributed.launch import relaunch, under_torchrun

    if nproc > 1 and not under_torchrun():
        raise typer.Exit(code=relaunch(nproc))
    from training.distributed.context import Dist

    dist = Dist.from_env()
    try:
        _train(spec_path, out, data, registry, progress, eval_test, dist)
    finally:
        dist.close()


def _train(spec_path: Path, out: Path, data: str | None, registry: str | None, progress: bool, eval_test: bool,
           dist) -> None:
    from training.bundle.export import ExportError, export_bundle
    from training.bundle.metric_tables import run_lambdamart_warnings
    from training.bundle.report import REPORT_FILE, summary_table
    from training.fit.train import train as run_training

    try:
        spec = load_spec(spec_path, data_path=data)
        if eval_test and spec.data.without_test:
            fail("--eval-test: the spec has no test split (test_fraction 0, or no data.test file)")
        trained = run_training(spec, out_dir=out.parent / f"{out.name}.logs", progress=progress, eval_test=eval_test,
                               dist=dist)
        if not dist.is_leader:
            return  # rank 0 alone evaluates, exports and publishes
        if eval_test and trained.prepared.test is None:
            fail("--eval-test: the spec has no test split (test_fraction 0, or no data.test file)")
        metrics = read_manifest(export_bundle(trained, out)).metrics  # measured on the bundle, as `evaluate` does
        for warning in [*trained.warnings(metrics), *run_lambdamart_warnings(metrics, trained.spec)]:
            typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
        typer.echo(summary_table(trained, metrics))
        typer.echo(f"bundle written to {out} (report: {out / REPORT_FILE})")
        if registry:
            version = Registry(registry, spec.name).publish(out)
            typer.echo(f"published {spec.name} version {version} to {registry} (CURRENT)")
    except (*USER_ERRORS, ExportError) as e:
        fail(str(e))


@app.command()
def evaluate(
    bundle_path: Annotated[Path, typer.Argument(metavar="BUNDLE", help="bundle directory")],
    spec_path: Annotated[Path, typer.Option("--spec", help="ranker spec YAML naming the data's columns")],
    data: Annotated[str | None, typer.Option(help="evaluate on all of this data (file, directory or glob) "
                                             "instead of the spec's test split")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the metrics as JSON")] = False,
    baseline: Annotated[bool | None, typer.Option(
        "--baseline/--no-baseline", help="also fit the baselines on the spec's train split and show them beside "
        "the model (the GBDT; LambdaMART too when the data has requests); default: as the spec's eval.baseline "
        "says")] = None,
) -> None:
    """Score a dataset with a bundle (onnxruntime, as served) and print its metrics."""
    from service.contract.bundle import load_bundle
    from training.bundle.metric_tables import lambdamart_warnings
    from training.bundle.report import metrics_table
    from training.data.columns import expand_numeric_patterns
    from training.evaluation.evaluate import evaluate_bundle, load_eval_table

    try:
        spec, _ = expand_numeric_patterns(load_spec(spec_path))
        bundle = load_bundle(bundle_path)
        metrics = evaluate_bundle(bundle, load_eval_table(spec, data), spec, baseline)
    except USER_ERRORS as e:
        fail(str(e))
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
    else:
        version = bundle.manifest.model_version
        where = f"all of {data}" if data else f"the test split of {spec.data.test or spec.data.path}"
        typer.echo(f"{bundle.manifest.model_name} {'unpublished' if version is None else f'version {version}'} on "
                   f"{where}:")
        typer.echo(metrics_table(metrics, spec))
        ranking = lambdamart_warnings(metrics, metrics.get("baseline"), spec, "these rows" if data else "test")
        for warning in [*metrics.get("warnings", []), *ranking]:
            typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)


@app.command()
def publish(
    bundle: Annotated[Path, typer.Argument(help="bundle directory")],
    registry: Annotated[str, typer.Option(help="registry root")],
    current: Annotated[bool, typer.Option(help="make it CURRENT")] = True,
    quantize: Annotated[str | None, typer.Option(
        help="`dynamic` or `static`: publish the bundle's int8 graph instead, only if it passes the int8 gate "
             "on the --spec data's holdout split (else nothing is published)")] = None,
    spec_path: Annotated[Path | None, typer.Option("--spec", help="with --quantize: the spec of the bundle's "
                                                   "training data (its holdout judges, its train rows calibrate)")] = None,
) -> None:
    """Publish an existing bundle as the next version of its model."""
    import tempfile

    from service.contract.bundle import load_bundle

    if quantize is not None and quantize not in ("dynamic", "static"):
        fail(f"--quantize: {quantize!r} is not one of 'dynamic', 'static'")
    if quantize is not None and spec_path is None:
        fail("--quantize needs --spec: the int8 gate judges on the spec's holdout rows")
    try:
        with tempfile.TemporaryDirectory(prefix="ranker-publish-") as tmp:
            if quantize is not None:
                from training.bundle.requantize import QuantizeRefused, quantize_bundle

                try:
                    bundle = quantize_bundle(bundle, load_spec(spec_path), quantize, Path(tmp))
                except QuantizeRefused as e:
                    fail(str(e))
            manifest = load_bundle(bundle).manifest
            version = Registry(registry, manifest.model_name).publish(bundle, make_current=current)
    except USER_ERRORS as e:
        fail(str(e))
    int8 = f" serving its {quantize} int8 graph" if quantize else ""
    typer.echo(f"published {manifest.model_name} version {version}{int8}{' (CURRENT)' if current else ''}")


# Operations (training/nightly/cli.py): the nightly job and the registry commands.
app.command("retrain")(retrain_command)
app.add_typer(registry_app, name="registry")
app.add_typer(features_app, name="features")
# Weights (training/profiles/cli.py): replay, tune, check, diff.
app.command("replay")(replay_command)
app.command("tune")(tune_command)
app.add_typer(weights_app, name="weights")
# Does multi-task help? (training/compare/): the spec's model against single-task models, seed by seed.
app.command("compare")(compare_command)
# Experiments (training/experiments/cli.py): the report of arms and canaries from the joined log.
app.add_typer(experiment_app, name="experiment")
# The loop (training/logs/cli.py): impression log + feedback -> training data.
app.add_typer(logs_app, name="logs")
# Monitoring (training/monitor/cli.py): served rows against the bundle's training distribution.
app.add_typer(monitor_app, name="monitor")

if __name__ == "__main__":
    app()
