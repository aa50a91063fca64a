"""The bundle contract: a directory holding `model.onnx` and `manifest.json`.

The trainer writes bundles (training/bundle/export.py); the registry publishes them; the server loads them
with `load_bundle`, which refuses anything it cannot verify: schema, sha256 of the model file,
ONNX input/output names, and the parity sample re-scored through the manifest's own encoders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.contract.calibration import Calibration, calibrate
from service.contract.distribution import TrainingDistribution
from service.contract.features import CATEGORICAL_INPUT, FeatureEncoders
from service.contract.feedback import FeedbackConfig
from service.contract.files import atomic_write_bytes, sha256_file
from service.contract.layout import Layout, input_names, split_rows
from service.contract.lookups import Lookups, check_lookups
from service.contract.parity import PARITY_ATOL, PARITY_RTOL, compare

FORMAT_VERSION = 1
# Format 2 adds calibrated heads. A bundle with a calibration is written as format 2, so a server
# from before calibration refuses it instead of serving uncalibrated heads; format 1 still loads.
CALIBRATED_FORMAT_VERSION = 2
# Format 3 is the split graph (service/contract/layout.py): user/context inputs once per request. A
# server from before it refuses such a bundle (its inputs changed); formats 1 and 2 load unchanged.
SPLIT_FORMAT_VERSION = 3
MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"


class BundleError(Exception):
    """A bundle that must not be served; the message says which check failed."""


class ScoreStats(BaseModel):
    """Distribution of one head's output on the holdout (natural units)."""

    mean: float
    std: float
    min: float
    max: float
    quantiles: dict[str, float] = Field(default_factory=dict)  # "p01".."p99" -> value


class LabelMean(BaseModel):
    """The training split's mean label of a task: the constant baseline offline reports compare with."""

    mean: float  # prevalence (binary) or mean label, in label units
    mean_log1p: float | None = None  # mean of log1p(label), for log1p-trained heads


class TaskInfo(BaseModel):
    """One task head as the server sees it."""

    name: str
    type: Literal["binary", "regression", "ranking"]  # ranking: a listwise score that only orders a request
    group: Literal["engagement", "satisfaction", "ranking"]
    output: str  # ONNX output name
    label_transform: Literal["none", "log1p"] = "none"
    score_stats: ScoreStats | None = None  # of the served (calibrated) output
    calibration: Calibration | None = None  # applied to the ONNX output (service/contract/calibration.py)
    train_label: LabelMean | None = None  # offline reports only (absent in bundles before it existed)


class ParitySample(BaseModel):
    """Raw feature rows and the outputs the exported model gave for them at export time."""

    rows: list[dict[str, Any]]
    outputs: dict[str, list[float]]  # task output name -> one value per row
    atol: float = PARITY_ATOL
    rtol: float = PARITY_RTOL

    @model_validator(mode="after")
    def _lengths(self) -> ParitySample:
        for name, values in self.outputs.items():
            if len(values) != len(self.rows):
                raise ValueError(f"parity output {name!r} has {len(values)} values for {len(self.rows)} rows")
        return self


class DataColumns(BaseModel):
    """The training data's role columns (the spec's `data:` section), so offline tools read logs of the same
    shape without being told: `ranker replay`, `weights diff` and `tune` take their defaults from here.

    None means the training data had no such column: without a request id there were no requests.
    """

    request_id: str | None = None
    item_id: str | None = None
    timestamp: str | None = None


class Manifest(BaseModel):
    """Everything needed to serve (and to rebuild) one model version."""

    model_config = ConfigDict(protected_namespaces=())

    format_version: Literal[1, 2, 3] = FORMAT_VERSION
    model_name: str
    model_version: int | None = None  # assigned by the registry at publish
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    model_file: str = MODEL_FILE
    model_sha256: str
    features: FeatureEncoders
    input_layout: Layout = "full"  # split: user/context inputs once per request (format 3)
    lookups: Lookups = Field(default_factory=dict)  # entity -> features a feature store fills by id
    tasks: list[TaskInfo]
    model_args: dict[str, Any] = Field(default_factory=dict)  # architecture, to rebuild the torch model
    data_window: dict[str, Any] = Field(default_factory=dict)  # start/end timestamps, row counts
    data_columns: DataColumns | None = None  # None: a bundle from before it was recorded (tools use defaults)
    metrics: dict[str, Any] = Field(default_factory=dict)  # offline metrics, gate statistics
    # Per feature, its training distribution (service/contract/distribution.py), for `ranker monitor drift`;
    # None: a bundle from before it was recorded.
    training_distribution: TrainingDistribution | None = None
    feedback: FeedbackConfig | None = None  # the spec's feedback events and label rules (POST /v1/feedback)
    parity_sample: ParitySample

    @model_validator(mode="after")
    def _tasks_unique(self) -> Manifest:
        names = [t.name for t in self.tasks]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"tasks must be a non-empty list of unique names, got {names}")
        check_lookups(self.lookups, self.features)
        calibrated = [t.name for t in self.tasks if t.calibration is not None]
        if calibrated and self.format_version < CALIBRATED_FORMAT_VERSION:
            raise ValueError(f"tasks {calibrated} are calibrated, which needs format_version "
                             f"{CALIBRATED_FORMAT_VERSION}, not {self.format_version}")
        if (self.input_layout == "split") != (self.format_version >= SPLIT_FORMAT_VERSION):
            raise ValueError(f"input_layout {self.input_layout!r} goes with format_version "
                             f"{SPLIT_FORMAT_VERSION if self.input_layout == 'split' else '1 or 2'}, "
                             f"not {self.format_version}")
        return self

    @property
    def input_names(self) -> list[str]:
        """The ONNX graph's inputs (service/contract/layout.py)."""
        return input_names(self.input_layout, self.features)

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def task(self, name: str) -> TaskInfo:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)


def write_manifest(bundle_dir: Path, manifest: Manifest) -> None:
    atomic_write_bytes(Path(bundle_dir) / MANIFEST_FILE, manifest.model_dump_json(indent=2).encode())


def read_manifest(bundle_dir: Path) -> Manifest:
    path = Path(bundle_dir) / MANIFEST_FILE
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except FileNotFoundError as e:
        raise BundleError(f"{path}: no manifest") from e
    except (ValidationError, json.JSONDecodeError) as e:
        raise BundleError(f"{path}: invalid manifest: {e}") from e


@dataclass(frozen=True)
class SessionConfig:
    """onnxruntime settings; one intra-op thread was fastest for this model size on 2 cores."""

    intra_op_threads: int = 1
    inter_op_threads: int = 1
    allow_spinning: bool = True

    def options(self) -> ort.SessionOptions:
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.intra_op_threads
        so.inter_op_num_threads = self.inter_op_threads
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not self.allow_spinning:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return so


@dataclass(frozen=True)
class LoadedBundle:
    """A verified bundle: its manifest and a ready onnxruntime session."""

    path: Path
    manifest: Manifest
    session: ort.InferenceSession

    @property
    def output_names(self) -> list[str]:
        return [t.output for t in self.manifest.tasks]

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Model inputs (the bundle's layout) -> {task name: (B,) float32 head output}, all heads in one
        session.run, each then calibrated as the manifest says (unchanged for heads without a calibration)."""
        outputs = self.session.run(self.output_names, inputs)
        return self._calibrated([np.asarray(o).reshape(-1) for o in outputs])

    def predict_rows(self, inputs: dict[str, np.ndarray], calibrated: bool = True) -> dict[str, np.ndarray]:
        """`predict` for full-layout rows (categorical (N, C), numeric (N, F)) of any number of requests,
        whatever the bundle's layout: a split graph runs once per distinct user/context row.
        calibrated=False returns the graph's own outputs (what offline metrics judge the model by)."""
        n = len(inputs[CATEGORICAL_INPUT])
        if self.manifest.input_layout == "full":
            raw = [np.asarray(o).reshape(-1) for o in self.session.run(self.output_names, inputs)]
        else:
            raw = [np.empty(n, dtype=np.float32) for _ in self.output_names]
            for rows, split in split_rows(self.manifest.features, inputs):
                for column, out in zip(raw, self.session.run(self.output_names, split), strict=True):
                    column[rows] = np.asarray(out).reshape(-1)
        return self._calibrated(raw) if calibrated else dict(zip(self.manifest.task_names, raw, strict=True))

    def _calibrated(self, raw: list[np.ndarray]) -> dict[str, np.ndarray]:
        return {t.name: calibrate(t.calibration, o) for t, o in zip(self.manifest.tasks, raw, strict=True)}


def open_session(model_path: Path, session_config: SessionConfig | None = None) -> ort.InferenceSession:
    """An onnxruntime session of one model file (CPU); raises BundleError when onnxruntime cannot load it."""
    config = session_config or SessionConfig()
    try:
        return ort.InferenceSession(str(model_path), sess_options=config.options(), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own untyped errors for unloadable models
        raise BundleError(f"{model_path}: onnxruntime cannot load it: {e}") from e


def load_bundle(bundle_dir: Path, session_config: SessionConfig | None = None,
                session: ort.InferenceSession | None = None) -> LoadedBundle:
    """Load and verify a bundle; raises BundleError naming the failed check.

    `session`: one the caller already opened on this bundle's model file (the exporter, which measured the
    bundle with it before writing the manifest); it is verified like a new one (sha256, io names, parity).
    """
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    model_path = bundle_dir / manifest.model_file
    if not model_path.is_file():
        raise BundleError(f"{model_path}: model file missing")
    actual = sha256_file(model_path)
    if actual != manifest.model_sha256:
        raise BundleError(f"{model_path}: sha256 {actual} does not match manifest {manifest.model_sha256}")
    session = session if session is not None else open_session(model_path, session_config)
    _check_io_names(session, manifest)
    bundle = LoadedBundle(path=bundle_dir, manifest=manifest, session=session)
    check_parity(bundle)
    return bundle


def _check_io_names(session: ort.InferenceSession, manifest: Manifest) -> None:
    inputs = {i.name for i in session.get_inputs()}
    if inputs != set(manifest.input_names):
        raise BundleError(f"model inputs {sorted(inputs)} != {sorted(manifest.input_names)} "
                          f"(input_layout {manifest.input_layout!r})")
    outputs = {o.name for o in session.get_outputs()}
    missing = [t.output for t in manifest.tasks if t.output not in outputs]
    if missing:
        raise BundleError(f"model has no output(s) {missing} named in the manifest (has {sorted(outputs)})")


def check_parity(bundle: LoadedBundle) -> float:
    """Re-encode the parity rows with the manifest's encoders and compare; returns max abs diff."""
    sample = bundle.manifest.parity_sample
    if not sample.rows:
        raise BundleError("parity sample is empty")
    got = parity_outputs(bundle)
    worst = 0.0
    for task in bundle.manifest.tasks:
        expected = np.asarray(sample.outputs.get(task.output, []), dtype=np.float64)
        if expected.shape != got[task.name].shape:
            raise BundleError(f"parity sample has no expected values for output {task.output!r}")
        result = compare(got[task.name], expected, sample.atol, sample.rtol)
        if not result.ok:
            raise BundleError(f"parity check failed on {task.output!r}: {result.describe(sample.atol, sample.rtol)}")
        worst = max(worst, result.max_abs_diff)
    return worst


def parity_outputs(bundle: LoadedBundle) -> dict[str, np.ndarray]:
    """{task name: (N,)} what the bundle serves for its parity rows, encoded by the manifest's encoders."""
    sample = bundle.manifest.parity_sample
    names = [f.name for f in bundle.manifest.features.all()]
    columns = {n: [row.get(n) for row in sample.rows] for n in names}
    return bundle.predict_rows(bundle.manifest.features.encode_columns(columns, len(sample.rows)))
