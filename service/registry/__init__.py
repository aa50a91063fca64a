"""The model registry: versioned bundles and an atomically replaced CURRENT pointer.

    model_registry.py  Registry: publish, promote, rollback, canary, retention, history, the lock
    canary.py          the CANARY record: a version beside CURRENT for a stable share of users, or in the shadow
    store.py           the primitives a Registry needs from its storage, and their shared helpers
    local.py           LocalStore: a directory (atomic rename, flock)
    object_store.py    ObjectStore: s3:// and other fsspec URLs (COMPLETE marker, lease lock)
    failpoints.py      named crash-injection points, inert unless a test arms one
"""

from service.registry.canary import CANARY_FILE, CanaryRecord
from service.registry.model_registry import (
    CURRENT_FILE,
    HISTORY_FILE,
    REPORT_JSON,
    REPORT_MD,
    Registry,
    RegistryConflict,
    is_url,
)
from service.registry.store import RegistryError, RegistryLocked

__all__ = ["CANARY_FILE", "CURRENT_FILE", "CanaryRecord", "HISTORY_FILE", "REPORT_JSON", "REPORT_MD", "Registry", "RegistryConflict",
           "RegistryError", "RegistryLocked", "is_url"]
