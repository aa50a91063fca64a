"""`ranker features publish|load-redis`: feature snapshots for requests that carry ids only.

Both validate the Parquet file against the model's looked-up features (the spec's `lookup`
section, recorded in the manifest): the CURRENT model of the registry, or `--bundle`. A missing
column, a wrong type, a repeated or null id, or an infinite value exits 2 naming the column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from service.contract.bundle import BundleError, Manifest, read_manifest
from service.feature_store.snapshot import SnapshotError
from service.registry import Registry, RegistryError
from training.cli_options import RegistryOpt, fail

features_app = typer.Typer(help="Feature snapshots: publish to the registry (embedded store) or load into Redis.",
                           no_args_is_help=True, pretty_exceptions_enable=False)

EntityOpt = Annotated[Literal["item", "user"], typer.Option(help="whose features: item (by item_id) or user (by user_id)")]
ModelName = Annotated[str, typer.Option("--model", envvar="RANKER_MODEL_NAME", help="model name in the registry")]
BundleOpt = Annotated[Path | None, typer.Option(help="validate against this bundle instead of the registry's CURRENT")]
USER_ERRORS = (SnapshotError, RegistryError, BundleError, OSError)


def model_manifest(registry: str | None, model: str, bundle: Path | None) -> Manifest:
    """The manifest a snapshot is validated against: --bundle, else CURRENT of the registry."""
    if bundle is not None:
        return read_manifest(bundle)
    if registry is None:
        fail("give --registry (validated against its CURRENT model) or --bundle")
    reg = Registry(registry, model)
    current = reg.current()
    if current is None:
        raise RegistryError(f"{reg.location} has no CURRENT model to validate the snapshot against; "
                            "publish the model first or pass --bundle")
    return read_manifest(reg.bundle_dir(current))


@features_app.command("publish")
def publish(
    path: Annotated[Path, typer.Argument(help="Parquet file: one row per id, the key column and feature columns")],
    registry: RegistryOpt,
    entity: EntityOpt,
    model: ModelName = "demo",
    bundle: BundleOpt = None,
    current: Annotated[bool, typer.Option(help="make it the snapshot servers load")] = True,
) -> None:
    """Validate a snapshot against the model and publish it as the entity's next version (servers follow CURRENT)."""
    from service.feature_store.snapshots import publish_snapshot, snapshot_registry

    try:
        manifest = model_manifest(registry, model, bundle)
        reg = snapshot_registry(registry, manifest.model_name, entity)
        version = publish_snapshot(path, reg, entity, manifest, make_current=current)
    except USER_ERRORS as e:
        fail(str(e))
    typer.echo(f"published {entity} snapshot version {version} of {manifest.model_name} to {reg.location}"
               f"{' (CURRENT)' if current else ''}")


@features_app.command("load-redis")
def load_redis(
    path: Annotated[Path, typer.Argument(help="Parquet file: a whole snapshot, or the rows that changed")],
    entity: EntityOpt,
    redis_url: Annotated[str, typer.Option(envvar="RANKER_REDIS_URL", help="redis://host:port/db")],
    registry: Annotated[str | None, typer.Option("--registry", envvar="RANKER_REGISTRY_ROOT",
                                                 help="registry root (the CURRENT model validates the file)")] = None,
    model: ModelName = "demo",
    bundle: BundleOpt = None,
    prefix: Annotated[str, typer.Option(envvar="RANKER_REDIS_PREFIX", help="first part of every key")] = "ranker",
    replace: Annotated[bool, typer.Option(help="a whole snapshot: also delete ids the file does not have")] = False,
) -> None:
    """Validate a file against the model and write it to Redis (upsert; --replace for a whole snapshot)."""
    import redis

    from service.feature_store.redis_loader import load_into_redis
    from service.feature_store.snapshots import model_kinds

    try:
        manifest = model_manifest(registry, model, bundle)
        client = redis.Redis.from_url(redis_url, socket_timeout=30)
        report = load_into_redis(path, client, manifest.model_name, entity, model_kinds(manifest, entity),
                                 prefix, replace)
    except (*USER_ERRORS, redis.RedisError) as e:
        fail(str(e))
    typer.echo(f"wrote {report.written:,} {entity} ids to {redis_url} (deleted {report.deleted:,} stale ids)")
