"""The common case of request validation in one msgspec pass; the pydantic schema stays the reference.

msgspec decodes the body straight into one typed struct per candidate and checks, in C, every
type, range and length that `service.contract.request.request_model` checks for the candidates and
the top-level fields, faster than pydantic-core building and validating dicts (the parse stage of
bench/serving/serve_latency.py went from 393 to 245 µs at 500 candidates), and the per-feature columns the
encoder reads come off the structs directly. User and context, one small object each, are
validated by the pydantic schema's own TypedDicts.

Anything this pass refuses (a wrong type, an unknown field, a lax value pydantic coerces, such as
`"top_k": "5"`) is handed to the pydantic validator, which accepts it or names the bad field. So a
body is accepted here only if the pydantic schema accepts it with the same values
(tests/service/contract/test_request_decoder.py checks that on generated bodies), and every error
message comes from one place.

One exception: pydantic refuses JSON nested deeper than about 200 levels anywhere in the body,
while msgspec skips a value of a field nobody reads (an unknown candidate field) up to 1,000
levels deep. Such a body is scored if it takes this pass and refused (422, nested too deeply) if
it goes to pydantic for another reason. Deeper nesting raises RecursionError here, and the body
goes to pydantic, which refuses it.
"""

from __future__ import annotations

import sys
from operator import attrgetter
from typing import Annotated, Any

import msgspec
from pydantic import TypeAdapter, ValidationError

from service.contract.features import CategoricalEncoder, FeatureEncoders

ITEM_ID = "item_id"
# Finite floats only: JSON has no NaN, and a literal beyond the float range (1e999) fails the bound.
_FINITE = Annotated[float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)]
_NUMERIC = _FINITE | None
_CATEGORICAL = str | int | _FINITE | bool | None
_ITEM_ID = Annotated[str, msgspec.Meta(min_length=1)] | int


def item_columns(features: FeatureEncoders) -> list[str]:
    """The columns a parsed request holds: `item_id`, then every item feature of the model (names in order)."""
    return [ITEM_ID] + [n for n in features.by_source("item") if n != ITEM_ID]


def renamable(name: str) -> bool:
    """msgspec can rename a struct field to `name`: no quote, backslash or control character in it."""
    return not any(c in '"\\' or ord(c) < 0x20 for c in name)


class FastDecoder:
    """Decodes the bodies that are valid for one model; `decode` returns None for anything else.

    Only for models whose item feature names are all `renamable` (the parser checks `supports`).

    Args:
        features: the model's encoders: the item features become typed fields of a candidate.
        max_candidates: the longest candidate list (longer goes to pydantic, which answers 413).
        user, context: the pydantic schema's TypedDicts for the user and context objects.
        max_profile, max_request_id: the pydantic schema's length limits of those fields.
    """

    def __init__(self, features: FeatureEncoders, max_candidates: int, user: type, context: type,
                 max_profile: int, max_request_id: int) -> None:
        names = item_columns(features)
        kinds = {f.name: _CATEGORICAL if isinstance(f, CategoricalEncoder) else _NUMERIC for f in features.all()}
        # Python names f0, f1, ... renamed to the feature names: a feature name need not be an identifier.
        fields = [("f0", _ITEM_ID)] + [(f"f{k}", kinds[n], None) for k, n in enumerate(names) if k]
        candidate = msgspec.defstruct("Candidate", fields, rename={f"f{k}": n for k, n in enumerate(names)},
                                      gc=False)
        self._columns = [(n, attrgetter(f"f{k}")) for k, n in enumerate(names)]
        body = msgspec.defstruct("RankRequestBody", [
            ("user", msgspec.Raw),
            ("candidates", Annotated[list[candidate], msgspec.Meta(min_length=1, max_length=max_candidates)]),
            ("context", msgspec.Raw, msgspec.Raw(b"{}")),
            ("profile", Annotated[str, msgspec.Meta(min_length=1, max_length=max_profile)] | None, None),
            ("top_k", Annotated[int, msgspec.Meta(ge=1)] | None, None),
            ("request_id", Annotated[str, msgspec.Meta(min_length=1, max_length=max_request_id)] | None, None),
            ("explain", bool, False),
            ("scores", bool, True),
        ], forbid_unknown_fields=True)
        self._decoder = msgspec.json.Decoder(body)
        self._user, self._context = TypeAdapter(user), TypeAdapter(context)

    @staticmethod
    def supports(features: FeatureEncoders) -> bool:
        return all(renamable(f.name) for f in features.all() if f.source == "item")

    def decode(self, raw: bytes) -> dict[str, Any] | None:
        """The body's fields as `RankRequest` takes them (items as columns, item_id first), or None."""
        try:
            body = self._decoder.decode(raw)
            user = self._user.validate_json(bytes(body.user))
            context = self._context.validate_json(bytes(body.context))
        except (msgspec.ValidationError, msgspec.DecodeError, ValidationError):
            return None
        except RecursionError:  # nested past msgspec's 1,000 levels: pydantic names it (its limit is 200)
            return None
        candidates = body.candidates
        items = {name: list(map(get, candidates)) for name, get in self._columns}
        return dict(user=user, context=context, items=items, profile=body.profile, top_k=body.top_k,
                    request_id=body.request_id, explain=body.explain, scores=body.scores)
