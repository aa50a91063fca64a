"""Trained model -> verified bundle directory (model.onnx, manifest.json, checkpoint.pt, report.md + PNGs).

The export fails (ExportError) unless onnxruntime reproduces PyTorch on at least
`spec.train.parity_rows` real rows within the bundle's parity tolerance (service/contract/parity.py),
and the finished bundle then passes the same `load_bundle` verification the server runs.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import torch

from service.contract.bundle import (
    CALIBRATED_FORMAT_VERSION,
    FORMAT_VERSION,
    MODEL_FILE,
    SPLIT_FORMAT_VERSION,
    DataColumns,
    LabelMean,
    LoadedBundle,
    Manifest,
    ParitySample,
    ScoreStats,
    SessionConfig,
    TaskInfo,
    load_bundle,
    open_session,
    write_manifest,
)
from service.contract.distribution import TrainingDistribution
from service.contract.features import CATEGORICAL_INPUT, NUMERIC_INPUT, FeatureEncoders
from service.contract.files import sha256_file
from service.contract.layout import Layout, split_columns, split_rows
from service.contract.parity import compare
from service.profiles import WeightsError
from training.bundle.calibration import (
    RELIABILITY_FILE,
    Fitted,
    calibrate_columns,
    calibration_summary,
    fit_calibrations,
    plot_reliability,
)
from training.bundle.quantize import CALIBRATION_ROWS, Holdout, calibration_feeds, serve_int8_if_gated
from training.bundle.report import training_summary, write_bundle_report
from training.bundle.split import SplitUnsupported, split_heads
from training.data import Encoded
from training.data.interface import SplitRows
from training.data.lineage import data_lineage
from training.evaluation.evaluate import HeadScores, holdout_scores, profile_metrics, scored_metrics
from training.evaluation.inference import export_heads, predict
from training.evaluation.metrics import score_stats
from training.evaluation.served import eval_weights, served_labels
from training.fit.train import Trained
from training.modeling.model import ExportHeads
from training.monitor.distribution import SAMPLE_ROWS, describe
from training.spec.data import DataConfig

CHECKPOINT_FILE = "checkpoint.pt"
PARITY_SAMPLE_ROWS = 32
OPSET = 18
# The split graph against the unsplit PyTorch model: 1e-5 on probabilities, relative 1e-5 on seconds/stars.
SPLIT_PARITY_ATOL = 1e-5
SPLIT_PARITY_RTOL = 1e-5
log = logging.getLogger(__name__)


class ExportError(Exception):
    """The exported graph does not reproduce the PyTorch model."""


def export_onnx(heads: ExportHeads, path: Path, task_names: list[str], example: Encoded,
                features: FeatureEncoders | None = None) -> Layout:
    """Write model.onnx with one (batch,) output per task; returns the input layout it has.

    With `features`, the split graph (training/bundle/split.py: user/context inputs once per request)
    when the model allows it, else (and without `features`) the full one: categorical (batch, C) int64
    and numeric (batch, F) float32.
    """
    cat = torch.from_numpy(example.categorical[:8])
    num = torch.from_numpy(example.numeric[:8])
    batch = torch.export.Dim("batch")
    module: torch.nn.Module = heads
    args: tuple[torch.Tensor, ...] = (cat, num)
    names, dynamic = [CATEGORICAL_INPUT, NUMERIC_INPUT], {"categorical": {0: batch}, "numeric": {0: batch}}
    layout: Layout = "full"
    if features is not None:
        try:
            module = split_heads(heads, features, (cat, num))
        except SplitUnsupported as e:
            log.warning("exporting the unsplit graph: %s", e)
        else:
            c, layout = split_columns(features), "split"
            args = (cat[:1, c.request_cat], num[:1, c.request_num], cat[:, c.item_cat], num[:, c.item_num])
            args = tuple(a for a, cols in zip(args, (c.request_cat, c.request_num, c.item_cat, c.item_num),
                                              strict=True) if cols)
            names = c.input_names()
            dynamic = {"inputs": tuple({0: batch} if n.startswith("item") else {} for n in names)}
    # The exporter reports its progress through logging and warnings; none of it is actionable here.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, args, str(path), input_names=names, output_names=task_names, dynamic_shapes=dynamic,
            dynamo=True, opset_version=OPSET, verbose=False,
            external_data=False,  # one self-contained file, so the manifest sha256 covers the weights
        )
    return layout


def onnx_outputs(path: Path, cat: np.ndarray, num: np.ndarray, features: FeatureEncoders | None = None,
                 layout: Layout = "full") -> np.ndarray:
    """(N, T) outputs of the graph at `path` for full-layout rows (a split graph runs per user/context row)."""
    session = ort.InferenceSession(str(path), SessionConfig().options(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    if layout == "full":
        return np.stack([np.asarray(o).reshape(-1) for o in session.run(names, {CATEGORICAL_INPUT: cat,
                                                                                NUMERIC_INPUT: num})], axis=1)
    out = np.empty((len(cat), len(names)), dtype=np.float32)
    for rows, split in split_rows(features, {CATEGORICAL_INPUT: cat, NUMERIC_INPUT: num}):
        out[rows] = np.stack([np.asarray(o).reshape(-1) for o in session.run(names, split)], axis=1)
    return out


def holdout_outputs(path: Path, e: SplitRows, features: FeatureEncoders, layout: Layout) -> np.ndarray:
    """onnx_outputs over a whole split, a chunk at a time: one chunk in memory, a record batch when streamed."""
    return np.concatenate([onnx_outputs(path, c.categorical, c.numeric, features, layout)
                           for c in e.chunks(max(1, len(e)))])


def check_parity(heads: ExportHeads, path: Path, e: SplitRows, rows: int, features: FeatureEncoders | None = None,
                 layout: Layout = "full") -> float:
    """Max |onnxruntime - torch| over the first `rows` rows of a real split.

    Raises ExportError where any output is outside the parity tolerance (service.contract.parity); a
    split graph is held to 1e-5 (+ 1e-5 relative) of the unsplit PyTorch model.
    """
    sample = e.head(min(rows, len(e)))
    got = onnx_outputs(path, sample.categorical, sample.numeric, features, layout)
    tolerance = (SPLIT_PARITY_ATOL, SPLIT_PARITY_RTOL) if layout == "split" else ()
    result = compare(got, predict(heads, sample), *tolerance)
    if not result.ok:
        raise ExportError(f"ONNX output ({layout} graph) differs from PyTorch: {result.describe(*tolerance)}")
    return result.max_abs_diff


def build_parity_sample(trained: Trained, path: Path, tasks: list[TaskInfo], layout: Layout) -> ParitySample:
    """Raw feature values of real holdout rows (test, else valid) and what the bundle serves for them
    (the graph's outputs, calibrated as `tasks` say)."""
    splits = trained.prepared.splits
    n = min(PARITY_SAMPLE_ROWS, splits.rows(splits.holdout_name()))
    names = [f.name for f in trained.prepared.encoders.all()]
    sample = splits.first_rows(splits.holdout_name(), n).select(names)
    for i, column in enumerate(sample.columns):  # bytes columns are text in JSON, as in requests
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            sample = sample.set_column(i, names[i], column.cast(pa.string()))
    e = trained.prepared.holdout().head(n)
    outs = calibrate_columns(tasks, onnx_outputs(path, e.categorical, e.numeric, trained.prepared.encoders, layout))
    return ParitySample(rows=sample.to_pylist(),
                        outputs={t: outs[:, j].tolist() for j, t in enumerate(trained.spec.served().task_names())})


def data_window(trained: Trained) -> dict:
    """Time range (when there is a timestamp), rows per split, how they were split, and what looked wrong."""
    cfg, splits = trained.spec.data, trained.prepared.splits
    start = end = None
    if cfg.timestamp is not None:
        ranges = [splits.time_range(name, cfg.timestamp) for name in splits.names()]
        start = min(lo for lo, _ in ranges).isoformat()
        end = max(hi for _, hi in ranges).isoformat()
    return {"start": start, "end": end,
            "rows": {name: splits.rows(name) for name in ("train", "valid", "test")},
            "split": splits.method, "loading": trained.prepared.loading, "warnings": trained.warnings(),
            "source": cfg.path if cfg.path is not None else cfg.sources(), "lineage": data_lineage(trained.spec, trained.prepared)}


def task_infos(trained: Trained, calibrations: dict[str, Fitted], raw_holdout: np.ndarray) -> list[TaskInfo]:
    """The manifest's tasks (the served ones: no `serve: false` head): calibration, score statistics of the
    served (calibrated) holdout outputs, and the training split's mean label (the constant baseline offline
    reports compare with)."""
    constants = trained.prepared.constants
    tasks = [TaskInfo(name=t.name, type=t.type, group=t.group, output=t.name, label_transform=t.label_transform,
                      calibration=calibrations.get(t.name),
                      train_label=LabelMean(mean=c.mean, mean_log1p=c.mean_log1p) if (c := constants.get(t.name)) else None)
             for t in trained.spec.served().tasks]
    served = calibrate_columns(tasks, raw_holdout)
    return [t.model_copy(update={"score_stats": ScoreStats(**score_stats(served[:, j]))}) for j, t in enumerate(tasks)]


def build_manifest(trained: Trained, model_path: Path, parity: ParitySample, tasks: list[TaskInfo],
                   layout: Layout) -> Manifest:
    """The manifest without its measured metrics (measure_bundle adds them)."""
    calibrated = any(t.calibration is not None for t in tasks)
    version = SPLIT_FORMAT_VERSION if layout == "split" else CALIBRATED_FORMAT_VERSION if calibrated else FORMAT_VERSION
    return Manifest(
        format_version=version, model_name=trained.spec.name, model_sha256=sha256_file(model_path),
        features=trained.prepared.encoders, input_layout=layout, lookups=trained.spec.lookups(), tasks=tasks,
        model_args=trained.args.to_dict(), data_window=data_window(trained), parity_sample=parity,
        data_columns=data_columns(trained.spec.data), feedback=trained.spec.feedback,
        training_distribution=training_distribution(trained),
    )


def training_distribution(trained: Trained) -> TrainingDistribution:
    """The features' distribution on the train split's first SAMPLE_ROWS rows (streamed or in memory alike)."""
    splits, encoders = trained.prepared.splits, trained.prepared.encoders
    n = min(SAMPLE_ROWS, splits.rows("train"))
    return describe(splits.first_rows("train", n).select([f.name for f in encoders.all()]), encoders)


def data_columns(cfg: DataConfig) -> DataColumns:
    """The spec's role columns, so `ranker replay`, `weights diff` and `tune` read logs by the same names."""
    return DataColumns(request_id=cfg.request_id, item_id=cfg.item_id, timestamp=cfg.timestamp)


TORCH_ONLY = ("gates", "gates_by_level")  # what a split's torch evaluation knows that the graph does not


def measure_bundle(bundle: LoadedBundle, trained: Trained) -> dict:
    """The manifest's metrics: each evaluated split (valid; test with --eval-test) measured on the bundle by
    `scored_metrics`, exactly as `ranker evaluate` measures it, with the gate statistics of the torch model,
    the GBDT baseline, the fit's summary and the served profiles' NDCG. Only served tasks are measured (the
    bundle has no auxiliary head); the fit's summary covers every head."""
    spec, prep = trained.spec.served(), trained.prepared
    out: dict = {}
    ranking: dict[str, HeadScores] = {}
    for split in [s for s in ("valid", "test") if s in trained.metrics]:
        e = getattr(prep, split)  # its labels and request index, row-aligned with its tables
        scores = holdout_scores(bundle, prep.splits.tables(split), spec.task_names())
        torch_only = {k: v for k, v in trained.metrics[split].items() if k in TORCH_ONLY}
        labels = served_labels(trained.spec, e.raw_labels)
        out[split] = {**scored_metrics(bundle, scores, labels, e.request, spec), **torch_only}
        ranking[split] = scores
    out.update(training_summary(trained))
    if trained.baseline:
        out["baseline"] = trained.baseline
    out["profiles"] = served_ranking(bundle, trained, ranking)
    for split in ranking:
        if split in out["profiles"]:
            out[split]["profiles"] = out["profiles"][split]
    return out


def served_ranking(bundle: LoadedBundle, trained: Trained, scores: dict[str, HeadScores]) -> dict:
    """NDCG@k per served profile (spec `eval.weights`, else `eval.score_weights`) on the evaluated splits,
    from the bundle's served heads and the server's combination code (profile_metrics, as `ranker evaluate`)."""
    spec = trained.spec.served()
    out: dict = {"weights": spec.eval.weights or "eval.score_weights", "k": spec.eval.ndcg_k}
    if spec.data.request_id is None:
        return {**out, "error": "no data.request_id: there are no requests to rank"}
    try:
        eval_weights(trained.spec)  # refuses a profile naming an auxiliary head by name (the served spec cannot)
        for split, s in scores.items():
            e = getattr(trained.prepared, split)
            out[split] = profile_metrics(bundle, s, served_labels(trained.spec, e.raw_labels), e.request, spec)
    except WeightsError as e:
        return {**out, "error": str(e)}
    return out


def save_checkpoint(trained: Trained, path: Path) -> None:
    """Weights plus everything needed to rebuild them (warm starts never rely on today's defaults)."""
    torch.save({
        "model_args": trained.args.to_dict(),
        "state_dict": trained.model.state_dict(),
        "label_scalers": {k: vars(v) for k, v in trained.prepared.scalers.items()},
        "vocabularies": {f.name: f.vocab for f in trained.prepared.encoders.categorical},
    }, path)


def write_graph(trained: Trained, heads: ExportHeads, path: Path, split: bool) -> Layout:
    """model.onnx from the torch heads, held to the parity tolerance on real holdout rows; returns its layout."""
    encoders = trained.prepared.encoders
    layout = export_onnx(heads, path, trained.spec.served().task_names(), trained.prepared.train.head(8),
                         encoders if split else None)
    check_parity(heads, path, trained.prepared.holdout(), trained.spec.train.parity_rows, encoders, layout)
    return layout


def int8_if_asked(trained: Trained, path: Path, tasks: list[TaskInfo], layout: Layout) -> dict | None:
    """train.quantize: the int8 graph replaces model.onnx only past its holdout gate; returns the gate's record."""
    if (method := trained.spec.train.quantize) == "none":
        return None
    encoders, h = trained.prepared.encoders, trained.prepared.holdout()
    rows = trained.prepared.train.head(CALIBRATION_ROWS)
    calibration = calibration_feeds({CATEGORICAL_INPUT: rows.categorical, NUMERIC_INPUT: rows.numeric},
                                    encoders, layout) if method == "static" else ()
    return serve_int8_if_gated(path, method, lambda p: calibrate_columns(tasks, holdout_outputs(p, h, encoders, layout)),
                               Holdout(served_labels(trained.spec, h.raw_labels), h.request), tasks,
                               trained.spec.served(), calibration)


def head_outputs(trained: Trained, heads: ExportHeads) -> dict[str, np.ndarray]:
    """The served torch heads' raw (N, T) outputs on each split export reads, each predicted once: valid (calibration
    is fitted there), the holdout (score statistics) and test when it was evaluated (calibration evidence)."""
    prep = trained.prepared
    names = ["valid"] + ["test"] * (prep.test is not None)
    return {name: predict(heads, getattr(prep, name)) for name in names}


def calibrated_tasks(trained: Trained, raw: dict[str, np.ndarray]) -> list[TaskInfo]:
    """The manifest's tasks with their calibration, fitted on validation, and served-score statistics."""
    prep = trained.prepared
    calibrations = fit_calibrations(trained.spec.served(), raw["valid"], served_labels(trained.spec, prep.valid.raw_labels))
    return task_infos(trained, calibrations, raw["test" if prep.test is not None else "valid"])


def judged_split(trained: Trained) -> str:
    """The split calibration is judged on: test with --eval-test, else valid (where it was fit)."""
    return "test" if "test" in trained.metrics else "valid"


def bundle_metrics(bundle: LoadedBundle, trained: Trained, tasks: list[TaskInfo], raw: dict[str, np.ndarray],
                   int8: dict | None) -> dict:
    """measure_bundle's metrics, the int8 gate's record (when asked) and the calibration evidence."""
    metrics = measure_bundle(bundle, trained)
    if int8 is not None:
        metrics["int8"] = int8
    split = judged_split(trained)
    labels = served_labels(trained.spec, getattr(trained.prepared, split).raw_labels)
    metrics["calibration"] = {"split": split, **calibration_summary(trained.spec.served(), tasks, raw[split], labels)}
    return metrics


def write_evidence(trained: Trained, work: Path, manifest: Manifest, raw: dict[str, np.ndarray]) -> None:
    """Beside the manifest: the checkpoint (warm starts), the reliability plot and report.md."""
    save_checkpoint(trained, work / CHECKPOINT_FILE)
    split = judged_split(trained)
    plot_reliability(work / RELIABILITY_FILE, manifest.tasks, raw[split],
                     served_labels(trained.spec, getattr(trained.prepared, split).raw_labels))
    write_bundle_report(trained, work, manifest.data_window, manifest.metrics)


@contextmanager
def staging(out_dir: Path) -> Iterator[Path]:
    """A bundle directory built in a temp dir beside out_dir and moved into place when the block succeeds."""
    with tempfile.TemporaryDirectory(dir=out_dir.parent if out_dir.parent.exists() else None) as tmp:
        work = Path(tmp) / "bundle"
        work.mkdir()
        yield work
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(work), out_dir)


def export_bundle(trained: Trained, out_dir: Path, split: bool = True) -> Path:
    """Write a complete, verified bundle at out_dir (built in a temp dir, moved into place last); see export_loaded."""
    return export_loaded(trained, out_dir, split).path


def export_loaded(trained: Trained, out_dir: Path, split: bool = True) -> LoadedBundle:
    """export_bundle, returning the verified bundle at out_dir as the server loaded it (no second load).

    A pipeline of single-purpose steps: the graph (with parity), the heads' outputs once per split, the
    calibrated tasks, int8 when asked, the manifest measured on one session of the bundle, written once, the
    evidence beside it (checkpoint, plot, report), and the server's own verification on that same session.
    split=False writes the unsplit graph (manifest format 1 or 2), as bundles were before format 3.
    """
    out_dir = Path(out_dir)
    heads = export_heads(trained.model, trained.spec, trained.prepared.scalers, served=True)
    with staging(out_dir) as work:
        model_path = work / MODEL_FILE
        layout = write_graph(trained, heads, model_path, split)
        raw = head_outputs(trained, heads)
        tasks = calibrated_tasks(trained, raw)
        int8 = int8_if_asked(trained, model_path, tasks, layout)
        manifest = build_manifest(trained, model_path, build_parity_sample(trained, model_path, tasks, layout),
                                  tasks, layout)
        session = open_session(model_path)  # the one session: measured on, then verified with the written manifest
        manifest.metrics = bundle_metrics(LoadedBundle(work, manifest, session), trained, tasks, raw, int8)
        write_manifest(work, manifest)
        write_evidence(trained, work, manifest, raw)
        loaded = load_bundle(work, session=session)  # the server's own verification
    return replace(loaded, path=out_dir)
