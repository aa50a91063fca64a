"""Fields a request sends that the model does not read, found cheaply so they can be counted.

Unknown fields are allowed (clients send more than a model needs), and that is how a typo goes
unnoticed: `age` for `Age` is accepted and `Age` is defaulted. The server counts them
(`ranker_request_unknown_fields_total{field}`) and logs each name the first time it sees it.

- `user` and `context`: every key. The parser keeps their unknown keys (one small dict each).
- `candidates`: the first candidate's keys only. msgspec's structs drop unknown fields without
  a trace, and decoding every candidate again as a dict cost as much as the parse itself (a
  pass that only skipped over the list still cost a fifth of it).
  A frontend builds every candidate the same way, so the first one shows a typo: it is found by
  the first `"candidates": [` in the bytes, parsed alone by the standard library's JSON scanner
  (a few µs, whatever the number of candidates), and trusted only if its item_id is the parsed
  first candidate's. A first candidate longer than SCAN_BYTES, or nested too deeply for the
  scanner, is not checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from service.contract.features import FeatureEncoders
from service.contract.request_decoder import ITEM_ID, item_columns

SCAN_BYTES = 4096
_FIRST_CANDIDATE = re.compile(rb'"candidates"\s*:\s*\[\s*(?=\{)')
_SCANNER = json.JSONDecoder()
_TRIES = 3  # "candidates" may also be a key inside user or context, before the body's own


class UnknownFields:
    """The names one model reads from a request, and `find` for the ones it does not.

    Args:
        features: the model's encoders.
        user_key: a user field read although it is not a feature (the feature store's user id).
    """

    def __init__(self, features: FeatureEncoders, user_key: str | None = None) -> None:
        self._user = {*features.by_source("user"), *([user_key] if user_key else [])}
        self._context = set(features.by_source("context"))
        self._item = set(item_columns(features))

    def find(self, raw: bytes, user: Mapping[str, Any], context: Mapping[str, Any], first_item_id: Any) -> list[str]:
        """Unknown fields of a valid request as `user.<name>`, `context.<name>`, `candidates.<name>`."""
        out = _prefixed("user", user.keys() - self._user) + _prefixed("context", context.keys() - self._context)
        first = first_candidate_keys(raw, first_item_id)
        if first is not None:
            out += _prefixed("candidates", first - self._item)
        return out


def first_candidate_keys(raw: bytes, item_id: Any) -> set[str] | None:
    """The keys of the body's first candidate (whose item_id is `item_id`), or None when it is not found
    within SCAN_BYTES of the candidates' opening bracket (or is nested past the recursion limit)."""
    pos = 0
    for _ in range(_TRIES):
        match = _FIRST_CANDIDATE.search(raw, pos)
        if match is None:
            return None
        pos = match.end()
        try:  # "ignore": the slice may end inside a multi-byte character
            first, _ = _SCANNER.raw_decode(raw[pos:pos + SCAN_BYTES].decode("utf-8", "ignore"))
        except ValueError:
            continue
        except RecursionError:  # msgspec skipped it a frame or two shallower; not checked, like a long one
            return None
        if isinstance(first, dict) and type(first.get(ITEM_ID)) is type(item_id) and first[ITEM_ID] == item_id:
            return set(first)
    return None


def _prefixed(where: str, names: Iterable[str]) -> list[str]:
    return [f"{where}.{name}" for name in sorted(names)]
