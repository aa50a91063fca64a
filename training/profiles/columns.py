"""Which columns of a log hold the request id, the item id and each task's label.

`ranker replay`, `weights diff` and `tune` read logs by the names the bundle was trained with: the
manifest's `data_columns` (the spec's data.request_id / data.item_id). A flag names another column
and always wins. A bundle from before the manifest recorded them falls back to `request_id` and
`item_id`. A bundle trained without a request id is refused unless --request-id names one: these
tools rank within requests, and that data had none, so which rows compete in one ranked list is the
user's call, not a guess (docs/WEIGHTS.md, "Which columns").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from service.contract.bundle import Manifest
from training.data import DataError

DEFAULT_REQUEST_ID = "request_id"
DEFAULT_ITEM_ID = "item_id"
FROM_FLAG = "from --{flag}"
FROM_MANIFEST = "the bundle's manifest: data.{key} of the spec it was trained on"
FROM_DEFAULT = "the default: the bundle's manifest records no data columns (exported before they were)"


@dataclass(frozen=True)
class LogColumns:
    """Which columns of the log hold the request id, the item id and each task's label.

    Args:
        request_id: rows with equal values form one request.
        item_id: the candidates' ids (listed by `weights diff`); None lists rows by number.
        labels: task -> label column; a task not named here reads the column of its own name.
        origin: "request_id" / "item_id" -> where that name came from, for error messages.
    """

    request_id: str = DEFAULT_REQUEST_ID
    item_id: str | None = DEFAULT_ITEM_ID
    labels: dict[str, str] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)

    def label(self, task: str) -> str:
        return self.labels.get(task, task)

    def missing_hints(self, missing: list[str]) -> list[str]:
        """For each missing request/item id column: where its name came from and which flag names another."""
        hints = []
        if self.request_id in missing:
            hints.append(f"{self.request_id!r} is the request id column ({self._origin('request_id')}); pass "
                         "--request-id COLUMN, the column whose equal values form one ranked request")
        if self.item_id is not None and self.item_id in missing:
            hints.append(f"{self.item_id!r} is the item id column ({self._origin('item_id')}); pass "
                         "--item-id COLUMN, or --item-id '' to list items by row number")
        return hints

    def _origin(self, role: str) -> str:
        return self.origin.get(role, "the default")


def bundle_columns(manifest: Manifest, request_id: str | None = None, item_id: str | None = None,
                   labels: dict[str, str] | None = None) -> LogColumns:
    """The log's columns: each flag given (not None; item_id '' = none), else the manifest's, else the defaults.

    Raises DataError when the bundle was trained without a request id and --request-id names none.
    """
    recorded = manifest.data_columns
    origin = {}
    if request_id is not None:
        origin["request_id"] = FROM_FLAG.format(flag="request-id")
    elif recorded is None:
        request_id, origin["request_id"] = DEFAULT_REQUEST_ID, FROM_DEFAULT
    elif recorded.request_id is None:
        raise DataError(no_request_id_message(manifest))
    else:
        request_id, origin["request_id"] = recorded.request_id, FROM_MANIFEST.format(key="request_id")
    if item_id is not None:
        origin["item_id"] = FROM_FLAG.format(flag="item-id")
    elif recorded is None:
        item_id, origin["item_id"] = DEFAULT_ITEM_ID, FROM_DEFAULT
    else:
        item_id, origin["item_id"] = recorded.item_id, FROM_MANIFEST.format(key="item_id")
    return LogColumns(request_id=request_id, item_id=item_id or None, labels=dict(labels or {}), origin=origin)


def no_request_id_message(manifest: Manifest) -> str:
    """The refusal for a bundle trained without requests, proposing a user column of the model where it has one."""
    users = [f.name for f in manifest.features.categorical if f.source == "user"]
    users.sort(key=lambda name: "id" not in name.lower())  # an id column before a segment: stable otherwise
    example = (f"e.g. --request-id {users[0]} to rank each user's rows as one request ({users[0]} is a user "
               "feature of this bundle)" if users else "e.g. a session or user column of the data")
    return (f"bundle {manifest.model_name!r} was trained without a request id (its spec has no data.request_id), "
            "so there are no requests to rank; pass --request-id COLUMN, the column whose equal values form one "
            f"ranked list of candidates, {example}")
