"""The /v1/rank request body: one schema per model, validated in one pass over the raw bytes.

The schema is built from the manifest's features, so a wrong type, a NaN or an infinity in any
feature the model reads is refused with the field named (`candidates[3].item_popularity`), while
fields the model does not read are ignored, only named (`RankRequest.unknown`) to be counted. The common case is decoded in one msgspec pass
(service.contract.request_decoder); pydantic-core validates whatever that pass refuses, and names
the bad field. Either way the candidates come out as columns, one list per item feature.

A candidate's `item_id` also feeds the model's item-id feature (the manifest's `item_id_feature`,
e.g. `movie_id`) when the candidate does not send that feature itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, NotRequired, Required

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, ValidationError, create_model
from pydantic_core import ErrorDetails, core_schema
from typing_extensions import TypedDict

from service.contract.features import CategoricalEncoder, FeatureEncoders, Source, category_key
from service.contract.request_decoder import ITEM_ID, FastDecoder, item_columns
from service.contract.unknown import UnknownFields
from service.errors import FieldProblem, InvalidRequest, PayloadTooLarge

MAX_REPORTED_PROBLEMS = 10
MAX_REQUEST_ID = 128
MAX_PROFILE = 64

# Numbers: JSON ints and floats, finite; null = missing. Strict: "3.5" and true are type errors.
NumericValue = Annotated[float, Field(strict=True, allow_inf_nan=False)] | None


class _OneOf:
    """A union checked in pydantic-core (no Python call per value) with one clear error message."""

    def __init__(self, error_type: str, message: str, *choices: core_schema.CoreSchema) -> None:
        self.schema = core_schema.union_schema(
            list(choices), custom_error_type=error_type, custom_error_message=message, mode="left_to_right"
        )

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return self.schema


_STR = core_schema.str_schema(strict=True)
_INT = core_schema.int_schema(strict=True)
CategoricalValue = Annotated[Any, _OneOf(
    "categorical_type", "must be a string, an integer, a finite number, a boolean or null",
    _STR, _INT, core_schema.float_schema(strict=True, allow_inf_nan=False), core_schema.bool_schema(strict=True),
    core_schema.none_schema(),
)]
ItemId = Annotated[Any, _OneOf("item_id_type", "must be a non-empty string or an integer",
                               core_schema.str_schema(strict=True, min_length=1), _INT)]


@dataclass(frozen=True)
class RankRequest:
    """A validated request; user and context are plain dicts of the model's features, the candidates
    are columns: `items[name]` holds one value per candidate (None = missing) for `item_id` and
    every item feature of the model.

    `unknown` names the fields the model does not read (service.contract.unknown: `user.age`).
    `columns` is filled when the request is encoded: feature -> the raw values the encoder read (after
    the feature-store fill; the impression log keeps them), and `codes`: categorical item feature -> the
    (B,) embedding rows they encoded to (0 = unknown or missing; the log names known values by them).
    `defaulted` and `clipped` too, for the metrics: feature ->
    values the model's default replaced (service.contract.missing), and numeric feature -> values
    outside the training range, clipped to it (service.contract.features).
    """

    user: dict[str, Any]
    context: dict[str, Any]
    items: dict[str, list[Any]]
    profile: str | None
    top_k: int | None
    request_id: str | None
    defaulted: dict[str, int] = field(default_factory=dict)
    clipped: dict[str, int] = field(default_factory=dict)
    columns: dict[str, Any] = field(default_factory=dict)
    codes: dict[str, Any] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    explain: bool = False
    scores: bool = True  # each returned item carries its per-task scores

    @property
    def item_ids(self) -> list[Any]:
        return self.items[ITEM_ID]


class RequestParser:
    """Validates raw request bodies for one model.

    Args:
        features: the model's encoders (which fields exist, categorical or numeric, where).
        max_candidates: more candidates than this is a 413.
    """

    def __init__(self, features: FeatureEncoders, max_candidates: int, user_key: str | None = None) -> None:
        self.max_candidates = max_candidates
        self._schema = request_model(features, max_candidates, user_key)
        self._unknown = UnknownFields(features, user_key)
        self._item_names = item_columns(features)
        self._item_feature = features.item_id_feature if features.item_id_feature != ITEM_ID else None
        fields = self._schema.model_fields
        self._fast = FastDecoder(features, max_candidates, fields["user"].annotation, fields["context"].annotation,
                                 MAX_PROFILE, MAX_REQUEST_ID) if FastDecoder.supports(features) else None

    def parse(self, body: bytes) -> RankRequest:
        """Raw JSON bytes -> RankRequest; raises InvalidRequest (422) or PayloadTooLarge (413)."""
        fields = self._fast.decode(body) if self._fast is not None else None
        request = RankRequest(**fields) if fields is not None else self.parse_reference(body)
        _check_unique_ids(request.item_ids)
        request.unknown.extend(self._unknown.find(body, request.user, request.context, request.item_ids[0]))
        if self._item_feature is not None:
            feed_item_id(request.items, self._item_feature)
        return request

    def parse_reference(self, body: bytes) -> RankRequest:
        """The pydantic validation alone: what the fast pass must agree with, and every error message."""
        try:
            req = self._schema.model_validate_json(body)
        except ValidationError as e:
            raise _to_domain_error(e, self.max_candidates) from None
        items = {name: [c.get(name) for c in req.candidates] for name in self._item_names}
        return RankRequest(user=req.user, context=req.context, items=items, profile=req.profile, top_k=req.top_k,
                           request_id=req.request_id, explain=req.explain, scores=req.scores)


def _typed_dict(name: str, features: FeatureEncoders | None, source: Source, required: dict[str, Any],
                optional: dict[str, Any] | None = None, keep_extra: bool = False) -> type:
    fields: dict[str, Any] = {k: NotRequired[v] for k, v in (optional or {}).items()}
    for enc in features.all() if features is not None else []:
        if enc.source == source:
            kind = CategoricalValue if isinstance(enc, CategoricalEncoder) else NumericValue
            fields[enc.name] = NotRequired[kind]
    fields.update({k: Required[v] for k, v in required.items()})
    # Candidate keys the model does not read are dropped (extra="ignore"): clients may send more than we
    # need. User and context keep theirs, to be counted (service.contract.unknown). Without a model
    # (the static API docs) any feature is allowed.
    td = TypedDict(name, fields)  # type: ignore[operator]
    extra = "ignore" if features is not None and not keep_extra else "allow"
    td.__pydantic_config__ = ConfigDict(extra=extra)  # type: ignore[attr-defined]
    return td


def request_model(features: FeatureEncoders | None, max_candidates: int | None = None,
                  user_key: str | None = None) -> type[BaseModel]:
    """The request body schema: validates requests for one model, and documents them.

    Args:
        features: the model's encoders; None gives the model-independent schema (the API docs
            before a model is loaded: any feature name, the same fields and limits otherwise).
        max_candidates: more candidates than this is a 413 (no limit when None).
        user_key: a user field kept even when it is not a feature (the feature store's user id).
    """
    # The user object also keeps fields the model does not read: an experiment's key
    # (service/experiments.py) may be one. It is one small dict per request, not per candidate.
    user = _typed_dict("User", features, "user", {}, {user_key: ItemId} if user_key else None, keep_extra=True)
    context = _typed_dict("Context", features, "context", {}, keep_extra=True)
    candidate = _typed_dict("Candidate", features, "item", {ITEM_ID: ItemId})
    return create_model(
        "RankRequestBody",
        __config__=ConfigDict(extra="forbid"),
        __doc__="A ranking request: one user, optional context, the candidate items to rank.",
        user=(user, Field(description="user features, e.g. {'user_id': 'u42', 'user_activity': 3.5}")),
        context=(context, Field(default_factory=dict, description="context features, e.g. {'device': 'tv'}")),
        candidates=(list[candidate], Field(  # type: ignore[valid-type]
            min_length=1, max_length=max_candidates,
            description="items to rank; each has an 'item_id' and, optionally, item features (the feature "
                        "store fills those left out, by item_id)")),
        profile=(str | None, Field(None, min_length=1, max_length=MAX_PROFILE,
                                   description="weights profile; the default profile when absent")),
        top_k=(int | None, Field(None, ge=1, description="return only the k best; all when absent")),
        request_id=(str | None, Field(None, min_length=1, max_length=MAX_REQUEST_ID, description=(
            "echoed back and logged; the X-Request-ID header or a random id otherwise"))),
        explain=(bool, Field(False, strict=True, description=(
            "also return each item's `contributions`: per task, weight x transform(head) (plus the "
            "transform's offset); they add up to the item's score"))),
        scores=(bool, Field(True, strict=True, description=(
            "return each item's per-task `scores` (on by default); false makes the response about 3x smaller "
            "and cheaper to build when only the order is needed"))),
    )


def request_json_schema(features: FeatureEncoders | None = None) -> dict[str, Any]:
    """JSON schema of `request_model(features)` with no `$ref`s, for an OpenAPI request body."""
    schema = request_model(features).model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return {**inline(defs[node["$ref"].rsplit("/", 1)[-1]]), **{k: inline(v) for k, v in node.items()
                                                                           if k != "$ref"}}
            return {k: inline(v) for k, v in node.items()}
        return [inline(v) for v in node] if isinstance(node, list) else node

    return inline(schema)


def field_path(loc: tuple[int | str, ...]) -> str:
    """('candidates', 3, 'item_popularity') -> 'candidates[3].item_popularity'; () -> 'body'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _to_domain_error(e: ValidationError, max_candidates: int) -> InvalidRequest | PayloadTooLarge:
    errors: list[ErrorDetails] = e.errors(include_url=False, include_input=False)
    for err in errors:
        if err["type"] == "too_long" and err["loc"] == ("candidates",):
            return PayloadTooLarge.at("candidates", f"at most {max_candidates} candidates per request")
    problems = [FieldProblem(field_path(err["loc"]), _message(err)) for err in errors[:MAX_REPORTED_PROBLEMS]]
    first = problems[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return InvalidRequest(f"{first.field}: {first.message}{more}", problems)


def _message(err: ErrorDetails) -> str:
    if err["type"] == "json_invalid":
        detail = err["ctx"].get("error", err["msg"]) if "ctx" in err else err["msg"]
        if "recursion limit" in detail:  # pydantic-core's JSON parser stops 200 levels deep
            return f"nested too deeply: JSON more than about 200 levels deep is refused ({detail})"
        return f"malformed JSON: {detail}"
    return err["msg"].removeprefix("Value error, ")


def _check_unique_ids(ids: list[Any]) -> None:
    if len(set(ids)) == len(ids):
        return
    seen: set[Any] = set()
    for i, item_id in enumerate(ids):
        if item_id in seen:
            raise InvalidRequest.at(f"candidates[{i}].{ITEM_ID}", f"duplicate item_id {item_id!r}")
        seen.add(item_id)


def feed_item_id(items: dict[str, list[Any]], feature: str) -> None:
    """Fill the model's item-id feature column from the candidates' item_id, in place.

    A candidate that also sends the feature must send the same id: two different ids for one
    candidate would leave it unclear which item was scored.
    """
    ids, given = items[ITEM_ID], items[feature]
    for i, (value, item_id) in enumerate(zip(given, ids, strict=True)):
        if value is not None and category_key(value) != category_key(item_id):
            raise InvalidRequest.at(f"candidates[{i}].{feature}", f"{value!r} differs from item_id {item_id!r}; "
                                    f"{feature} is the model's item-id feature, so send item_id alone")
    items[feature] = list(ids)


def check_header_request_id(value: str | None) -> str | None:
    """The X-Request-ID header, held to the body's request_id bound; an empty header is no header."""
    if value and len(value) > MAX_REQUEST_ID:
        raise InvalidRequest.at("headers.x-request-id", f"at most {MAX_REQUEST_ID} characters, got {len(value):,}")
    return value or None
