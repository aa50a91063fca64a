"""The weights commands: `ranker replay`, `ranker tune`, `ranker weights check|diff`.

Exit codes: 0 ok; 1 `weights check` found the weights file invalid (the message names the key);
2 anything else that stops a command (a missing column, an unreadable bundle, a bad option).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from service.contract.bundle import BundleError, LoadedBundle, load_bundle
from service.profiles import WeightsError
from training.cli_options import fail
from training.data import DataError

weights_app = typer.Typer(help="Check and compare weights files (weights.yaml).", no_args_is_help=True,
                          pretty_exceptions_enable=False)

EXIT_INVALID = 1
ERRORS = (BundleError, DataError, WeightsError, ValueError, OSError)

BundleArg = Annotated[Path, typer.Argument(metavar="BUNDLE", help="bundle directory (model.onnx + manifest.json)")]
DataOpt = Annotated[str, typer.Option("--data", help="logged requests: Parquet file, directory or glob")]
KOpt = Annotated[int, typer.Option("--k", min=1, help="k of NDCG@k, top-k yield and top-k overlap")]
ProfileOpt = Annotated[list[str] | None, typer.Option("--profile", help="profile to report (repeatable; default all)")]
RequestOpt = Annotated[str | None, typer.Option(
    "--request-id", help="column whose equal values form one request (default: the bundle's data.request_id)")]
ItemOpt = Annotated[str | None, typer.Option(
    "--item-id", help="column of the item ids ('' for none; default: the bundle's data.item_id)")]
LabelOpt = Annotated[list[str] | None, typer.Option(
    "--label", help="TASK=COLUMN: the gain column of a task (repeatable; default the task's name)")]
ResamplesOpt = Annotated[int, typer.Option("--resamples", min=0, help="bootstrap resamples for the intervals")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
MarkdownOpt = Annotated[bool, typer.Option("--markdown", help="print Markdown instead of a table")]


def log_columns(bundle: LoadedBundle, request_id: str | None, item_id: str | None, labels: list[str] | None):
    """The flags' columns, the others as the bundle's manifest names them (training/profiles/columns.py)."""
    from training.profiles.columns import bundle_columns

    mapping = {}
    for text in labels or []:
        task, sep, column = text.partition("=")
        if not sep or not task or not column:
            raise ValueError(f"--label {text!r}: write TASK=COLUMN, e.g. --label click=p_click")
        mapping[task] = column
    return bundle_columns(bundle.manifest, request_id, item_id, mapping)


def scored_log(bundle: LoadedBundle, data: str, columns):
    from training.profiles.logs import read_log, score_log

    return score_log(bundle, read_log(data, bundle, columns), columns)


def echo_rich(renderable: object) -> None:
    from rich.console import Console

    Console(width=200).print(renderable)


def replay_command(
    bundle_path: BundleArg, data: DataOpt,
    weights: Annotated[Path, typer.Option("--weights", help="weights.yaml whose profiles to replay")],
    profile: ProfileOpt = None, k: KOpt = 10, request_id: RequestOpt = None, item_id: ItemOpt = None,
    label: LabelOpt = None, resamples: ResamplesOpt = 1000, as_json: JsonOpt = False, markdown: MarkdownOpt = False,
) -> None:
    """What each profile does on logged requests: NDCG@k and top-k yield per task, with 95 % intervals."""
    from training.profiles.logs import choose_profiles, load_weights
    from training.profiles.replay import default_metrics, render_markdown, render_rich, replay

    try:
        bundle = load_bundle(bundle_path)
        compiled = load_weights(weights, bundle)
        log = scored_log(bundle, data, log_columns(bundle, request_id, item_id, label))
        result = replay(log, compiled, choose_profiles(compiled, profile), default_metrics(log, k), resamples)
    except ERRORS as e:
        fail(str(e))
    title = f"replay of {weights} on {data} ({bundle.manifest.model_name}, bundle {bundle_path})"
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
    elif markdown:
        typer.echo(render_markdown(result))
    else:
        render_rich(result, title, echo_rich)


@weights_app.command("check")
def check_command(
    path: Annotated[Path, typer.Argument(metavar="FILE", help="the weights.yaml to check")],
    bundle: Annotated[Path | None, typer.Option("--bundle", help="check against this bundle directory")] = None,
    registry: Annotated[str | None, typer.Option("--registry", envvar="RANKER_REGISTRY_ROOT",
                                                 help="... or against CURRENT of this registry")] = None,
    model: Annotated[str | None, typer.Option("--model", envvar="RANKER_MODEL_NAME",
                                              help="model name in the registry")] = None,
) -> None:
    """Validate FILE exactly as a server loading it would; exit 1 naming the key when it is invalid."""
    from training.profiles.check import CheckTargetError, check_weights, manifest_of

    try:
        manifest, name = manifest_of(bundle, registry, model)
    except (CheckTargetError, BundleError) as e:
        fail(str(e))
    try:
        result = check_weights(path, manifest, name)
    except WeightsError as e:
        fail(str(e), EXIT_INVALID)
    typer.echo(result.summary(path))


@weights_app.command("diff")
def diff_command(
    old: Annotated[Path, typer.Argument(metavar="OLD", help="the weights file serving now")],
    new: Annotated[Path, typer.Argument(metavar="NEW", help="the proposed weights file")],
    bundle_path: Annotated[Path, typer.Option("--bundle", help="bundle directory to score with")],
    data: DataOpt, profile: ProfileOpt = None,
    every: Annotated[bool, typer.Option("--all", help="compare every profile, changed or not")] = False,
    k: KOpt = 10, top: Annotated[int, typer.Option("--top", min=0, help="most-changed requests to list")] = 5,
    request_id: RequestOpt = None, item_id: ItemOpt = None, label: LabelOpt = None,
    resamples: ResamplesOpt = 1000, as_json: JsonOpt = False,
) -> None:
    """For every changed profile: Kendall tau, top-k overlap, replay deltas, the requests that moved most."""
    from training.profiles.diff import changed_pairs, diff_profile, render_markdown
    from training.profiles.logs import load_weights
    from training.profiles.replay import default_metrics

    try:
        bundle = load_bundle(bundle_path)
        before, after = load_weights(old, bundle), load_weights(new, bundle)
        pairs, notes = changed_pairs(before, after, profile, every)
        diffs = []
        if pairs:
            log = scored_log(bundle, data, log_columns(bundle, request_id, item_id, label))
            metrics = default_metrics(log, k)
            if log.item_ids is None:
                notes.append("items are listed by row number: no item id column (--item-id COLUMN names one)")
            diffs = [diff_profile(log, before, after, p, metrics, k, top, resamples) for p in pairs]
    except ERRORS as e:
        fail(str(e))
    if as_json:
        typer.echo(json.dumps({"notes": notes, "profiles": [d.to_dict() for d in diffs]}, indent=2, default=str))
    else:
        typer.echo(render_markdown(diffs, notes, k))


def tune_command(
    bundle_path: BundleArg, data: DataOpt,
    objective: Annotated[list[str], typer.Option(
        "--objective", help="replay metric to maximize, e.g. ndcg@10:click or yield@10:like (give 2 or more)")],
    weights: Annotated[Path, typer.Option("--weights", help="the current weights.yaml (its profiles are marked, "
                                                            "kept in the output and the bars to beat)")],
    out: Annotated[Path, typer.Option("--out", help="weights.yaml to write: current + chosen profiles")] = Path(
        "runs/tune/weights.yaml"),
    plot: Annotated[Path | None, typer.Option("--plot", help="PNG of the front (default: beside --out)")] = None,
    trials: Annotated[int, typer.Option("--trials", min=10, help="profiles evaluated by the search")] = 300,
    transform: Annotated[list[str] | None, typer.Option(
        "--transform", help="transforms the search may give a task (repeatable; default all five: "
                      "identity, log1p, zscore, minmax and log, which it gives binary heads only)")] = None,
    seed: Annotated[int, typer.Option("--seed", help="seeds the split into halves and the search")] = 0,
    request_id: RequestOpt = None, item_id: ItemOpt = None, label: LabelOpt = None,
    resamples: ResamplesOpt = 1000, as_json: JsonOpt = False,
) -> None:
    """Pareto search of weights and transforms on half the requests; re-measured on the other half."""
    from training.profiles.check import check_weights
    from training.profiles.front_plot import plot_front
    from training.profiles.logs import load_weights
    from training.profiles.replay import Metric
    from training.profiles.tune import TRANSFORMS, tune, tuned_file
    from training.profiles.tune_report import render_markdown, write_weights

    try:
        objectives = [Metric.parse(o) for o in objective]
        transforms = tuple(dict.fromkeys(transform or TRANSFORMS))
        bad = [t for t in transforms if t not in TRANSFORMS]
        if bad:
            raise ValueError(f"--transform: unknown {bad}; choose from {list(TRANSFORMS)}")
        bundle = load_bundle(bundle_path)
        current = load_weights(weights, bundle)
        log = scored_log(bundle, data, log_columns(bundle, request_id, item_id, label))
        result = tune(log, current, bundle.manifest.tasks, objectives, trials, seed, transforms, resamples)
        header = (f"Written by: ranker tune {bundle_path} --data {data} "
                  + " ".join(f"--objective {o}" for o in objective) + f" --weights {weights} --trials {trials} "
                  f"--seed {seed}\nThe profiles of {weights}, plus the chosen points of the front:\n"
                  + "\n".join(f"  {p.name}: most {p.name.split('_vs_')[0]} with no other objective below "
                              f"{p.based_on!r} (search half)" for p in result.chosen))
        write_weights(out, tuned_file(current, result.chosen), header)
        check_weights(out, bundle.manifest, f"bundle {bundle_path}")  # what `ranker weights check` runs
        png = plot_front(plot or out.with_suffix(".png"), objectives, result.front, result.current, result.chosen,
                         title=f"{bundle.manifest.model_name}: tuner's front vs current profiles (held-out)")
    except ERRORS as e:
        fail(str(e))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        typer.echo(render_markdown(result))
    typer.echo(f"wrote {out} (passes `ranker weights check`) and {png}", err=as_json)
