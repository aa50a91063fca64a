"""Readable spec errors: one line per problem, the key's dotted path, and for an unknown key the
nearest valid key (`model.num_expert: unknown key; did you mean 'num_experts'?`)."""

from __future__ import annotations

import difflib
import types
import typing

from pydantic import BaseModel, ValidationError


def format_errors(e: ValidationError, root: type[BaseModel]) -> str:
    """All problems of one validation, `; `-separated, each starting with the key's dotted path."""
    return "; ".join(_one(err, root) for err in e.errors())


def _one(err: dict, root: type[BaseModel]) -> str:
    loc = tuple(err["loc"])
    where = ".".join(str(p) for p in loc) or "<root>"
    if err["type"] != "extra_forbidden":
        return f"{where}: {err['msg'].removeprefix('Value error, ')}"
    owner = model_at(root, loc[:-1])
    valid = list(owner.model_fields) if owner is not None else []
    near = nearest_key(str(loc[-1]), valid)
    hint = f"; did you mean {near!r}?" if near else ""
    listing = f" (valid keys here: {', '.join(valid)})" if valid else ""
    return f"{where}: unknown key{hint}{listing}"


def nearest_key(key: str, valid: list[str]) -> str | None:
    """The valid key a typo most likely meant: close in spelling, or one is a prefix of the other."""
    # A unique prefix relation first: `evaluation` means `eval`, though `calibration` is spelt closer.
    prefixed = [v for v in valid if len(min(v, key, key=len)) >= 3 and (v.startswith(key) or key.startswith(v))]
    if len(prefixed) == 1:
        return prefixed[0]
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    return close[0] if close else None


def model_at(root: type[BaseModel], path: tuple) -> type[BaseModel] | None:
    """The pydantic model that holds the keys at `path` (list indices skipped), or None."""
    model: type[BaseModel] | None = root
    for part in path:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(str(part))
        model = nested_model(field.annotation) if field is not None else None
    return model


def nested_model(annotation: object) -> type[BaseModel] | None:
    """The BaseModel inside an annotation such as `Foo`, `list[Foo]` or `Foo | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = nested_model(arg)
            if found is not None:
                return found
    return None
