"""The impression log's settings, as the writer takes them (parsed from service/settings.py `log_*`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LogConfig:
    """What the writer needs from the settings (service/settings.py `log_*`)."""

    destination: str  # a directory, or an fsspec URL (s3://bucket/prefix)
    sample: float = 1.0
    features: tuple[str, ...] | None = None  # None = all
    queue_size: int = 1024
    flush_seconds: float = 1.0
    roll_seconds: float = 300.0
    roll_bytes: int = 64 << 20
    spool_dir: Path | None = None  # object-store destinations: where segments wait (default: a temp dir)
    replica: str | None = None  # default: the host name

    def stale_seconds(self) -> float:
        """Untouched this long, a segment has no live writer: a live one rolls within roll_seconds."""
        return 2 * self.roll_seconds + 10 * self.flush_seconds + 60


def parse_features(value: str) -> tuple[str, ...] | None:
    """RANKER_LOG_FEATURES: "all" -> None, "none" -> (), "a,b" -> ("a", "b")."""
    text = value.strip()
    if text.lower() == "all":
        return None
    if text.lower() == "none" or not text:
        return ()
    return tuple(name.strip() for name in text.split(",") if name.strip())
