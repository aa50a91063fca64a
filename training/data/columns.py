"""Numeric feature patterns: `{name: "*", source: item}` for every other numeric column.

A wide table (hundreds of measurements) should not need a script to write its spec. A numeric
feature whose name is a glob pattern is replaced, before anything reads the data, by one feature
per matching column of the training data's schema, in the file's column order. A column that
another key of the spec already uses (ids, timestamp, labels, split column, named features, bias
features) is never taken, and columns that are not numbers are left out and named in the notes,
so nothing is added or dropped silently.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

import pyarrow as pa

from training.data.tables import DataError, column_roles, dataset
from training.spec import RankerSpec
from training.spec.schema import check_lookup, is_pattern

PREVIEW = 5  # column names shown per pattern in the notes


def expand_numeric_patterns(spec: RankerSpec) -> tuple[RankerSpec, list[str]]:
    """The spec with every pattern replaced by the columns it matches, and one note per pattern.

    A spec without patterns comes back unchanged (the same object), so calling this twice is safe.
    """
    if not any(is_pattern(f.name) for f in spec.features.numeric):
        return spec, []
    schema = dataset(spec.data.train or spec.data.path).schema
    taken = {name for name in column_roles(spec) if not is_pattern(name)}
    numeric, notes = [], []
    for feature in spec.features.numeric:
        if not is_pattern(feature.name):
            numeric.append(feature)
            continue
        names, note = _match(feature.name, feature.exclude, schema, taken)
        numeric += [feature.model_copy(update={"name": n, "exclude": []}) for n in names]
        taken |= set(names)
        notes.append(note)
    expanded = spec.model_copy(deep=True)
    expanded.features.numeric = numeric  # names stay unique: a pattern takes no column already taken
    try:
        check_lookup(expanded)  # a looked-up feature the pattern was to give must now be there
    except ValueError as e:
        raise DataError(f"{e} (after expanding the numeric patterns: {'; '.join(notes)})") from None
    return expanded, notes


def _match(pattern: str, exclude: list[str], schema: pa.Schema, taken: set[str]) -> tuple[list[str], str]:
    unknown = sorted(set(exclude) - set(schema.names))
    if unknown:
        raise DataError(f"features.numeric {pattern!r}: exclude names {unknown}, which are not columns of the "
                        "training data")
    matched = [n for n in schema.names if fnmatchcase(n, pattern) and n not in taken and n not in exclude]
    names = [n for n in matched if _is_number(schema.field(n).type)]
    if not names:
        raise DataError(f"features.numeric {pattern!r}: matches no numeric column of the training data that the "
                        f"spec does not already use (matched, not numeric: {sorted(set(matched))})")
    shown = ", ".join(names[:PREVIEW]) + (", ..." if len(names) > PREVIEW else "")
    note = f"features.numeric {pattern!r}: {len(names)} numeric columns ({shown})"
    left_out = [n for n in matched if n not in names]
    if left_out:
        note += f"; not numeric, left out: {', '.join(left_out)}"
    return names, note


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)
