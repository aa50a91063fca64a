"""A model registry: versioned bundles and an atomically replaced CURRENT pointer.

Layout under `<root>/<model_name>/` (root: a local path or an fsspec URL such as s3://bucket/prefix):
    versions/000001/{model.onnx, manifest.json, checkpoint.pt, gate_report.json, gate_report.md}
    CURRENT          the serving version, replaced atomically
    CANARY           a version serving a share of users beside CURRENT, or in the shadow (canary.py)
    CANARY_CHECK     what the last check of a canary found on the joined log (canary.py)
    history.jsonl    one line per change of CURRENT (publish, promote, rollback) or of CANARY
    .lock            held while publishing or moving CURRENT

Versions are monotonic and immutable. A publish stages a full copy of the bundle (manifest
stamped with its version, plus any report files), commits it atomically (service/registry/local.py
and object_store.py explain how on each kind of storage), and only then may move CURRENT. A crash at any point leaves
CURRENT naming a complete bundle; leftovers are cleaned by the next publish. Retention keeps the
newest `keep` versions and never deletes CURRENT or the version a rollback would go back to.

Servers only read: `current()`, `canary()`, `canary_check()`, `versions()`, `bundle_dir(version)` (a local path; for an object
store, a verified copy in a local cache).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from service.contract.bundle import read_manifest, write_manifest
from service.registry.canary import (
    CANARY_FILE,
    CHECK_FILE,
    CanaryCheck,
    CanaryRecord,
    Mode,
    check_share,
    default_salt,
    ended_record,
    parse_check,
    parse_record,
)
from service.registry.failpoints import pause_point
from service.registry.local import LocalStore
from service.registry.store import RegistryError, RegistryLocked, Store, version_name

__all__ = ["Registry", "RegistryConflict", "RegistryError", "RegistryLocked", "is_url"]

logger = logging.getLogger(__name__)

CURRENT_FILE = "CURRENT"
HISTORY_FILE = "history.jsonl"
REPORT_JSON = "gate_report.json"
REPORT_MD = "gate_report.md"
DEFAULT_LOCK_TTL = 900.0  # seconds; only object stores use it (a local flock dies with its holder)


class RegistryConflict(RegistryError):
    """CURRENT moved while a job was comparing against it; the job must not publish its decision."""


def is_url(root: str | Path) -> bool:
    """True for fsspec URLs other than file:// (those need an object store)."""
    text = str(root)
    return "://" in text and not text.startswith("file://")


class Registry:
    """Versions of one model under a root directory or URL.

    Args:
        root: registry root, shared by the trainer and every server: a path or an fsspec URL.
        model_name: subdirectory for this model.
        keep: how many versions retention keeps (CURRENT and its predecessor are always kept).
        cache_dir: where an object-store registry puts fetched bundles (default: a temp dir).
        lock_ttl: seconds an object-store lease lasts before another job may break it.
        storage_options: passed to fsspec (e.g. {"client_kwargs": {"endpoint_url": ...}}).
    """

    def __init__(self, root: str | Path, model_name: str, keep: int = 5, *, cache_dir: Path | None = None,
                 lock_ttl: float = DEFAULT_LOCK_TTL, storage_options: dict[str, Any] | None = None) -> None:
        if keep < 2:
            raise ValueError("keep must be >= 2 so that rollback always has a target")
        self.root = str(root)
        self.model_name = model_name
        self.keep = keep
        self.lock_ttl = lock_ttl
        self.store: Store
        if is_url(root):
            from service.registry.object_store import ObjectStore

            self.store = ObjectStore(str(root), model_name, cache_dir, storage_options)
        else:
            local_root = Path(str(root).removeprefix("file://"))
            self.store = LocalStore(local_root / model_name)
        self.location = self.store.location

    @staticmethod
    def models(root: str | Path) -> list[str]:
        """Names of the models under a local registry root (object stores: name the model)."""
        path = Path(str(root).removeprefix("file://"))
        if is_url(root) or not path.is_dir():
            return []
        return sorted(p.name for p in path.iterdir() if (p / "versions").is_dir() or (p / CURRENT_FILE).exists())

    # -- reading (what servers do) -------------------------------------------------------------

    def versions(self) -> list[int]:
        """Complete versions, oldest first."""
        return self.store.versions()

    def current(self) -> int | None:
        raw = self.store.read(CURRENT_FILE)
        if raw is None:
            return None
        text = raw.decode(errors="replace").strip()
        if not text.isdigit():
            raise RegistryError(f"{self.location}/{CURRENT_FILE}: not a version number: {text!r}")
        return int(text)

    def bundle_dir(self, version: int) -> Path:
        """A local directory holding the complete bundle of `version`."""
        return self.store.local_version_dir(version)

    def canary(self) -> CanaryRecord | None:
        """The running canary or shadow, or None."""
        return parse_record(self.store.read(CANARY_FILE), self.location)

    def canary_check(self) -> CanaryCheck | None:
        """The last check of a canary (of any version: compare it with `canary()`), or None."""
        return parse_check(self.store.read(CHECK_FILE), self.location)

    def history(self) -> list[dict]:
        """Changes of CURRENT, oldest first (canary changes: `events`)."""
        return [e for e in self.events() if "event" not in e]

    def events(self) -> list[dict]:
        """Every line of history.jsonl, oldest first: changes of CURRENT, and of the canary (an `event`
        key: canary_started, canary_aborted, canary_promoted). A torn last line (a crash mid-append) is skipped."""
        raw = self.store.read(HISTORY_FILE)
        entries = []
        for line in (raw or b"").decode(errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("%s/%s: skipping unreadable line %r", self.location, HISTORY_FILE, line[:80])
        return entries

    def read_file(self, version: int, name: str) -> bytes | None:
        """One file of a version (e.g. report.json) without fetching the whole bundle."""
        return self.store.read_version_file(version, name)

    def report(self, version: int) -> dict | None:
        """The gate report published with a version, or None (e.g. published by `ranker train`)."""
        raw = self.read_file(version, REPORT_JSON)
        return json.loads(raw) if raw else None

    # -- writing (what the trainer and operators do) -------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive and non-blocking: a second holder gets RegistryLocked naming the first."""
        with self.store.lock(self.lock_ttl):
            yield

    def publish(self, bundle_dir: Path, *, make_current: bool = True, reason: str = "published",
                expect_current: int | None | Literal["any"] = "any",
                extra_files: Callable[[int], dict[str, bytes]] | None = None) -> int:
        """Commit a bundle as the next version; optionally make it CURRENT. Returns the version.

        Args:
            bundle_dir: a complete bundle (its manifest must name this registry's model).
            make_current: move CURRENT to the new version once it is committed.
            expect_current: refuse (RegistryConflict) unless CURRENT is still this version; a job
                that gated against version N passes N so it never overrides a newer decision.
            extra_files: version -> {file name: bytes} written into the version (e.g. reports).
        """
        bundle_dir = Path(bundle_dir)
        manifest = read_manifest(bundle_dir)
        if manifest.model_name != self.model_name:
            raise RegistryError(f"bundle {bundle_dir} is model {manifest.model_name!r}, not {self.model_name!r}")

        def stage(staging: Path, version: int) -> None:
            shutil.copytree(bundle_dir, staging, dirs_exist_ok=True)
            write_manifest(staging, manifest.model_copy(update={"model_version": version}))
            for name, data in (extra_files(version) if extra_files else {}).items():
                (staging / name).write_bytes(data)

        return self.publish_staged(stage, make_current=make_current, reason=reason, expect_current=expect_current)

    def publish_staged(self, stage: Callable[[Path, int], None], *, make_current: bool = True,
                       reason: str = "published", expect_current: int | None | Literal["any"] = "any") -> int:
        """Commit whatever `stage(staging_dir, version)` writes as the next version (any kind of payload:
        bundles, feature snapshots); optionally make it CURRENT. Returns the version."""
        with self.lock():
            pause_point("locked")
            self.store.clean_leftovers()
            self._check_current(expect_current)
            version = self.store.highest_version() + 1
            with self.store.staging() as staging:
                stage(staging, version)
                pause_point("staged")
                self.store.commit(staging, version)
            pause_point("committed")
            if make_current:
                self._set_current(version, reason)
            self._apply_retention()
        logger.info("published %s version %d to %s%s", self.model_name, version, self.location,
                    " (CURRENT)" if make_current else "")
        return version

    def promote(self, version: int, reason: str = "promoted") -> None:
        """Point CURRENT at an existing version (the canary's version: the canary ends, promoted)."""
        with self.lock():
            if version not in self.versions():
                raise RegistryError(f"version {version} of {self.model_name!r} does not exist in {self.location}")
            self._set_current(version, reason)

    def start_canary(self, version: int, share: float, mode: Mode = "canary", *, force: bool = False,
                     reason: str = "canary started") -> CanaryRecord:
        """Let `version` serve `share` of the users beside CURRENT (mode canary), or score every request in
        the shadow (mode shadow). The version must exist, not be CURRENT and not be rejected by the gates
        (unless force); a running canary of another version must be aborted or promoted first. Starting
        the running version again changes its share or mode (same salt: a wider share keeps its users)."""
        check_share(share)
        with self.lock():
            current, running = self.current(), self.canary()
            self._check_canary_target(version, current, force)
            if running is not None and running.version != version:
                raise RegistryError(f"a {running.mode} of version {running.version} is running; "
                                    "promote or abort it before starting another")
            record = CanaryRecord(version=version, share=share, mode=mode,
                                  salt=default_salt(self.model_name, version), started_at=_now())
            self.store.replace(CANARY_FILE, record.to_json())
            self._canary_event("canary_started", version, current, reason, share=share, mode=mode, salt=record.salt)
        logger.info("%s of %s version %d started (share %g)", mode, self.model_name, version, share)
        return record

    def check_canary_slot(self) -> None:
        """RegistryError when a canary is running (a new one would have to wait for its end)."""
        running = self.canary()
        if running is not None:
            raise RegistryError(f"a {running.mode} of version {running.version} is running; "
                                "promote or abort it before starting another")

    def abort_canary(self, reason: str = "canary aborted") -> CanaryRecord:
        """End the running canary; CURRENT serves everyone. Returns the ended record."""
        with self.lock():
            running = self.canary()
            if running is None:
                raise RegistryError(f"no canary of {self.model_name!r} is running in {self.location}")
            self._end_canary(running, "aborted", reason)
            return running

    def record_canary_check(self, check: CanaryCheck) -> None:
        """Replace CANARY_CHECK (whole, atomically: servers read it on their poll)."""
        self.store.replace(CHECK_FILE, check.to_json())

    def _check_canary_target(self, version: int, current: int | None, force: bool) -> None:
        if version not in self.versions():
            raise RegistryError(f"version {version} of {self.model_name!r} does not exist in {self.location} "
                                f"(versions: {self.versions()})")
        if version == current:
            raise RegistryError(f"version {version} is CURRENT already; a canary needs another version")
        if current is None:
            raise RegistryError(f"{self.model_name!r} has no CURRENT version for a canary to run beside; promote one")
        report = self.report(version)
        if report and report.get("decision") == "rejected" and not force:
            raise RegistryError(f"version {version} was rejected by the gates ({report.get('failed')}); "
                                "pass --force to canary it anyway")

    def _end_canary(self, record: CanaryRecord, how: str, reason: str) -> None:
        self.store.replace(CANARY_FILE, ended_record(how, _now()))
        self._canary_event(f"canary_{how}", record.version, self.current(), reason, mode=record.mode)
        logger.info("%s of %s version %d %s", record.mode, self.model_name, record.version, how)

    def _canary_event(self, event: str, version: int, current: int | None, reason: str, **fields: Any) -> None:
        entry = {"event": event, "canary": version, "current": current, "at": _now(), "reason": reason, **fields}
        self.store.append(HISTORY_FILE, (json.dumps(entry) + "\n").encode())

    def rollback(self) -> int:
        """Point CURRENT at the newest older version that has served before. Returns it.

        Versions that were published but never made current (rejected by the gates) are skipped;
        repeated rollbacks keep walking back.
        """
        with self.lock():
            current = self.current()
            target = self._previous_current(current)
            if target is None:
                raise RegistryError(f"no earlier served version of {self.model_name!r} to roll back to")
            self._set_current(target, f"rollback from {current}")
            return target

    def _check_current(self, expected: int | None | Literal["any"]) -> None:
        if expected == "any":
            return
        actual = self.current()
        if actual != expected:
            raise RegistryConflict(
                f"CURRENT of {self.model_name!r} moved from {expected} to {actual} while this job ran "
                "(another job or an operator changed it); not publishing a decision made against "
                f"{expected}. Run the job again."
            )

    def _set_current(self, version: int, reason: str) -> None:
        previous = self.current()
        self.store.replace(CURRENT_FILE, f"{version}\n".encode())
        pause_point("current_replaced")
        entry = {"version": version, "previous": previous, "at": _now(), "reason": reason}
        self.store.append(HISTORY_FILE, (json.dumps(entry) + "\n").encode())
        running = self.canary()
        if running is not None and running.version == version:  # the canary became CURRENT: it is over
            self._end_canary(running, "promoted", reason)

    def _apply_retention(self) -> None:
        versions = self.versions()
        current, running = self.current(), self.canary()
        protected = {current, self._previous_current(current), running.version if running else None}
        for v in versions[: max(0, len(versions) - self.keep)]:
            if v not in protected:
                self.store.delete_version(v)
                logger.info("retention: deleted %s version %s", self.model_name, version_name(v))

    def _previous_current(self, current: int | None) -> int | None:
        existing = set(self.versions())
        served = {h["version"] for h in self.history()} & existing
        return max((v for v in served if current is None or v < current), default=None)


def _now() -> str:
    return datetime.now(UTC).isoformat()
