"""The ranking server's settings: one pydantic-settings class, validated at startup.

Sources, highest priority first: command-line options (`ranker-serve --help`), environment
variables `RANKER_<NAME>` (e.g. `RANKER_REGISTRY_ROOT`), the optional YAML file named by
`--config-file` / `RANKER_CONFIG_FILE`, then the defaults below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.contract.bundle import SessionConfig
from service.impressions.config import LogConfig, parse_features

ENV_PREFIX = "RANKER_"


class SettingsError(ValueError):
    """Settings that cannot be used; the message names the source and the key."""


class Settings(BaseSettings):
    """Serve ranked candidates from the CURRENT bundle of a model registry.

    Every option can also be set as an environment variable RANKER_<OPTION> (upper case, '_' for
    '-'), e.g. RANKER_REGISTRY_ROOT=/models, or as a key of the YAML file given by --config-file.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", cli_prog_name="ranker-serve", cli_kebab_case=True,
        cli_implicit_flags=True,
    )

    config_file: Path | None = Field(None, description="YAML file with any of these settings (lower priority than env)")
    registry_root: str = Field("registry", description="model registry root (a directory shared with the trainer)")
    model_name: str = Field("demo", description="model to serve from the registry")
    weights_path: Path = Field(Path("configs/weights.yaml"), description="weights.yaml with the score profiles")
    poll_interval: float = Field(10.0, gt=0, description="seconds between checks of the registry's CURRENT pointer")
    weights_poll_interval: float = Field(0.5, gt=0, description="seconds between checks of weights.yaml for edits")
    ort_intra_op_threads: int = Field(1, ge=1, description="onnxruntime intra-op threads (1 was fastest on 2 cores)")
    ort_inter_op_threads: int = Field(1, ge=1, description="onnxruntime inter-op threads")
    ort_allow_spinning: bool = Field(True, description="let onnxruntime threads spin between runs")
    max_candidates: int = Field(5000, ge=1, description=(
        "most candidates one request may carry (413 above); 5,000 with every feature inline is ~0.8 MB"))
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024, description="largest request body in bytes (413 above)")
    max_in_flight: int = Field(64, ge=1, description="requests admitted at once; more are shed with 503 + Retry-After")
    scoring_threads: int = Field(2, ge=0, description=(
        "threads that parse, encode and score requests; 0 runs them on the event loop (no thread hop per "
        "request, but a long request delays the next one's reading and the health probes)"))
    retry_after: int = Field(1, ge=0, description="seconds sent in Retry-After with a 503")
    admin_token: SecretStr | None = Field(None, description="bearer token for /v1/admin/*; admin routes are off without it")
    feature_store: Literal["embedded", "redis"] = Field(
        "embedded", description="where looked-up item/user features come from: registry snapshots or Redis")
    feature_poll_interval: float = Field(10.0, gt=0, description="seconds between checks of the snapshots' CURRENT")
    feature_on_error: Literal["open", "closed"] = Field(
        "open", description="on a feature-store outage: score with request values and defaults (open) or 503 (closed)")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis feature store (feature_store=redis)")
    redis_prefix: str = Field("ranker", description="first part of every Redis feature key")
    redis_timeout: float = Field(0.05, gt=0, description="seconds a Redis read may take, connecting included")
    redis_retry_interval: float = Field(1.0, gt=0, description="seconds reads fail fast after a Redis failure")
    feature_cache_ttl: float = Field(0.0, ge=0, description="seconds Redis features stay in an in-process cache (0 = off)")
    feature_cache_size: int = Field(100_000, ge=1, description="most ids the in-process feature cache holds")
    log_dir: str | None = Field(None, description=(
        "impression and feedback log destination: a directory or s3://bucket/prefix (impressions/ and feedback/ "
        "under it); unset = off"))
    log_sample: float = Field(1.0, ge=0, le=1, description=(
        "share of ranked responses logged, chosen by a hash of the request id (the same on every replica)"))
    log_features: str = Field("all", description=(
        "feature values kept per logged item: all, none, or a comma-separated list of feature names"))
    log_queue_size: int = Field(1024, ge=1, description=(
        "ranked responses waiting for the log writer; more are dropped (ranker_log_dropped_total)"))
    log_flush_seconds: float = Field(1.0, gt=0, le=60, description=(
        "seconds between writes of the queued records to the open segment: the most traffic a kill -9 loses"))
    log_roll_seconds: float = Field(300.0, gt=0, description="seconds before a segment is compacted to Parquet")
    log_roll_bytes: int = Field(64 << 20, ge=1 << 16, description="bytes of Arrow data before a segment is compacted")
    log_spool_dir: Path | None = Field(None, description=(
        "local directory for segments of an s3:// log (default: $TMPDIR/ranker-impressions-spool); keep it "
        "on a volume that survives restarts so a crash loses nothing"))
    feedback_token: SecretStr | None = Field(None, description=(
        "bearer token POST /v1/feedback requires (`Authorization: Bearer <token>`); unset = no token needed"))
    feedback_max_events: int = Field(1000, ge=1, description="most events one POST /v1/feedback may carry (413 above)")
    feedback_max_body_bytes: int = Field(1 << 20, ge=1024, description=(
        "largest POST /v1/feedback body in bytes (413 above)"))
    feedback_dedup_ids: int = Field(100_000, ge=0, description=(
        "recent event ids remembered per process: a retried batch's events with these ids are not written again"))
    replica: str | None = Field(None, description=(
        "this server's name in log file names (with the pid); default: the host name (the pod name)"))
    workers: int = Field(1, ge=1, description=(
        "server processes sharing the port (uvicorn workers); above 1, /metrics adds up every process "
        "(prometheus-client multiprocess mode, files in $PROMETHEUS_MULTIPROC_DIR or a fresh temp dir)"))
    otlp_endpoint: str | None = Field(None, description=(
        "OpenTelemetry collector for traces of /v1/rank, OTLP over HTTP, e.g. http://otel-collector:4318 "
        "(/v1/traces is appended to a URL without a path); unset = tracing off"))
    trace_sample: float = Field(0.1, ge=0, le=1, description=(
        "share of requests without a traceparent header that are traced (a request with one follows its "
        "caller's sampling decision); 0.1 keeps tracing within 5 % of a request's CPU, recording every "
        "request costs ~11 % (docs/OPERATIONS.md, Traces)"))
    host: str = Field("127.0.0.1", description="address to bind")
    port: int = Field(8000, ge=0, le=65535, description="port to bind")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.admin_token is not None and len(self.admin_token.get_secret_value()) < 16:
            raise ValueError("admin_token must be at least 16 characters (or unset to turn admin routes off)")
        if self.feedback_token is not None and len(self.feedback_token.get_secret_value()) < 16:
            raise ValueError("feedback_token must be at least 16 characters (or unset for no token)")
        if self.otlp_endpoint and not self.otlp_endpoint.startswith(("http://", "https://")):
            raise ValueError(f"otlp_endpoint must be an http:// or https:// URL (OTLP over HTTP), got "
                             f"{self.otlp_endpoint!r}")
        return self

    def log_config(self) -> LogConfig | None:
        """The impression log's settings; None when RANKER_LOG_DIR is unset (logging off)."""
        if not self.log_dir:
            return None
        return LogConfig(destination=self.log_dir, sample=self.log_sample, features=parse_features(self.log_features),
                         queue_size=self.log_queue_size, flush_seconds=self.log_flush_seconds,
                         roll_seconds=self.log_roll_seconds, roll_bytes=self.log_roll_bytes,
                         spool_dir=self.log_spool_dir, replica=self.replica)

    def session_config(self) -> SessionConfig:
        return SessionConfig(intra_op_threads=self.ort_intra_op_threads, inter_op_threads=self.ort_inter_op_threads,
                             allow_spinning=self.ort_allow_spinning)

    def to_env(self) -> dict[str, str]:
        """The settings as RANKER_* variables (for starting child processes with the same settings)."""
        env = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"{ENV_PREFIX}{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
        return env


def with_config_file(settings: Settings) -> Settings:
    """Fill the settings that were not set explicitly (CLI, env, init) from settings.config_file."""
    if settings.config_file is None:
        return settings
    file_values = _read_yaml(settings.config_file)
    explicit = {name: getattr(settings, name) for name in settings.model_fields_set}
    try:
        return Settings(**{**file_values, **explicit})
    except ValidationError as e:
        raise SettingsError(f"{settings.config_file}: {e}") from e


def load_settings(**overrides: Any) -> Settings:
    """Settings from overrides, then the environment, then the config file, then defaults."""
    try:
        settings = Settings(**overrides)
    except ValidationError as e:
        raise SettingsError(str(e)) from e
    return with_config_file(settings)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as e:
        raise SettingsError(f"{path}: no such settings file") from e
    except yaml.YAMLError as e:
        raise SettingsError(f"{path}: not valid YAML: {e}") from e
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: expected a mapping of setting names to values")
    return {str(k).replace("-", "_"): v for k, v in raw.items()}
