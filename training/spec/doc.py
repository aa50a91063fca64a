"""docs/SPEC.md, generated from the spec's pydantic schema: every key with its type, default, meaning
and an example. The schema is the only source: a key without a description or an example is an
error here, and tests/training/spec/test_spec_doc.py fails when docs/SPEC.md is stale.

    .venv/bin/python -m training.spec.doc > docs/SPEC.md      # or: make spec-doc
"""

from __future__ import annotations

import json
import sys
import types
import typing
from collections.abc import Iterator

import annotated_types as at
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from training.spec import RankerSpec
from training.spec.errors import nested_model

HEADER = """# Ranker spec reference

Every key of the YAML spec that `ranker train`, `ranker evaluate` and `ranker retrain` read. A key
not listed here is an error (the message suggests the nearest valid key), and so is a value of the
wrong type or out of range. Start from [`configs/demo.yaml`](../configs/demo.yaml); a walkthrough
on a public dataset is in [OWN_DATA.md](OWN_DATA.md).

This page is generated from the schema (`training/spec/schema.py`, `training/spec/data.py`,
`training/spec/model.py`) by
`.venv/bin/python -m training.spec.doc > docs/SPEC.md`; a test fails when it is stale.
"""

_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def sections(model: type[BaseModel] = RankerSpec, prefix: str = "") -> Iterator[tuple[str, type[BaseModel]]]:
    """(dotted key, model) for the top level and every nested mapping, depth first in field order."""
    yield prefix, model
    for name, field in model.model_fields.items():
        inner = nested_model(field.annotation)
        if inner is not None:
            many = typing.get_origin(field.annotation) is list
            yield from sections(inner, f"{prefix}{name}{'[]' if many else ''}.")


def type_text(annotation: object) -> str:
    """A reader's name for a type: `integer`, `list of integer`, one of `a`, `b`, ..."""
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_text(a) for a in args)
    if origin is list:
        return f"list of {type_text(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {type_text(args[0])} to {type_text(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    raise ValueError(f"no readable name for type {annotation!r}")


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default is PydanticUndefined else field.default  # type: ignore[misc]
    if isinstance(value, BaseModel):
        return "all defaults"
    return f"`{yaml_text(value)}`"


def yaml_text(value: object) -> str:
    """A value as it is written in the YAML spec (flow style for lists and mappings)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | dict):
        return yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()
    return json.dumps(value)  # numbers, true/false, null: the same in YAML


def constraint_text(field: FieldInfo) -> str:
    """Range and length limits, e.g. ` (>= 1)`."""
    parts = []
    for m in field.metadata:
        for cls, op, attr in ((at.Ge, ">=", "ge"), (at.Gt, ">", "gt"), (at.Le, "<=", "le"), (at.Lt, "<", "lt"),
                              (at.MinLen, "length >=", "min_length")):
            if isinstance(m, cls):
                parts.append(f"{op} {getattr(m, attr)}")
    return f" ({', '.join(parts)})" if parts else ""


def field_row(key: str, name: str, field: FieldInfo) -> str:
    if not field.description:
        raise ValueError(f"spec key {key}{name} has no description")
    if not field.examples:
        raise ValueError(f"spec key {key}{name} has no example")
    cells = [f"`{name}`", type_text(field.annotation), default_text(field),
             field.description + constraint_text(field), f"`{yaml_text(field.examples[0])}`"]
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def render() -> str:
    """The whole reference page, in schema order."""
    lines = [HEADER]
    for key, model in sections():
        title = f"`{key.rstrip('.')}`" if key else "Top level"
        doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        lines += [f"## {title}", "", doc, "", "| key | type | default | meaning | example |", "|---|---|---|---|---|"]
        lines += [field_row(key, name, field) for name, field in model.model_fields.items()]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render())
