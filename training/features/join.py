"""Join feature tables onto id-only logs: the training side of the feature store.

When the logs carry only ids, the spec's `lookup.<entity>.table` supplies the entity's features,
joined by id (the logs' `data.item_id` column for items, `user_id` for users). Two kinds of table:

  - a snapshot (no `timestamp`): one row per id, joined as it is;
  - a history (`timestamp: <column>`): several rows per id, each valid from its timestamp. The
    join is point-in-time: each impression gets the newest row whose timestamp is at or before
    the impression's own (pyarrow's `join_asof`), never a later one, so the model trains on what
    the feature store would have served at that moment.

A value already present in the logs wins over the table's, as a request's value wins over the
store's at serving. Rows keep their order.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from service.contract.lookups import ENTITY_KEY
from training.spec import LookupEntity, RankerSpec

ROW = "__row"
JOINED = "__lookup_"
# join_asof's tolerance is in the time column's unit (microseconds after the cast below): ~285 years back.
LOOKBACK_US = -(2**53)


class FeatureTableError(ValueError):
    """A feature table that does not fit the spec; the message names the file and the column."""


def logs_key(spec: RankerSpec, entity: str) -> str:
    """The logs' column holding the entity's id (`data.item_id`, else `item_id`; `user_id`)."""
    return (spec.data.item_id or ENTITY_KEY["item"]) if entity == "item" else ENTITY_KEY["user"]


def joined_columns(spec: RankerSpec) -> set[str]:
    """Feature columns a lookup table supplies (the logs need not have them)."""
    return {name for e in spec.lookup.entities().values() if e.table for name in e.features}


def join_keys(spec: RankerSpec) -> list[str]:
    """Logs columns the joins need."""
    return [logs_key(spec, entity) for entity, e in spec.lookup.entities().items() if e.table]


def join_lookup_tables(logs: pa.Table, spec: RankerSpec, tables: dict[str, pa.Table] | None = None) -> pa.Table:
    """Each entity's table joined onto the logs (point in time for a history). Raises FeatureTableError.

    `tables` (from read_lookup_tables) saves re-reading them when the logs come a batch at a time.
    """
    tables = read_lookup_tables(spec) if tables is None else tables
    for entity, cfg in spec.lookup.entities().items():
        if cfg.table:
            logs = _join(logs, tables[entity], spec, entity, cfg)
    return logs


def read_lookup_tables(spec: RankerSpec) -> dict[str, pa.Table]:
    """entity -> its validated feature table, for the entities whose spec names one."""
    return {entity: _read_table(cfg, entity) for entity, cfg in spec.lookup.entities().items() if cfg.table}


def _read_table(cfg: LookupEntity, entity: str) -> pa.Table:
    path = Path(str(cfg.table))
    key = ENTITY_KEY[entity]
    columns = [key, *cfg.features, *([cfg.timestamp] if cfg.timestamp else [])]
    try:
        names = pq.read_schema(path).names
    except (OSError, ValueError) as e:
        raise FeatureTableError(f"lookup.{entity}.table {path}: not a readable Parquet file: {e}") from e
    missing = [c for c in columns if c not in names]
    if missing:
        raise FeatureTableError(f"lookup.{entity}.table {path}: missing column(s) {missing}; it has {names}")
    table = pq.read_table(path, columns=columns)
    if cfg.timestamp and not pa.types.is_timestamp(table.schema.field(cfg.timestamp).type):
        raise FeatureTableError(f"lookup.{entity}.table {path}: column {cfg.timestamp!r} must be a timestamp, "
                                f"not {table.schema.field(cfg.timestamp).type}")
    if table.column(key).null_count:
        raise FeatureTableError(f"lookup.{entity}.table {path}: column {key!r} has null ids")
    unique = [key, cfg.timestamp] if cfg.timestamp else [key]
    if table.group_by(unique).aggregate([]).num_rows != table.num_rows:
        raise FeatureTableError(f"lookup.{entity}.table {path}: repeated {' + '.join(unique)} in column {key!r}"
                                f"{'' if cfg.timestamp else ' (a snapshot has one row per id; a history names its timestamp)'}")
    return table


def _join(logs: pa.Table, table: pa.Table, spec: RankerSpec, entity: str, cfg: LookupEntity) -> pa.Table:
    key, by = ENTITY_KEY[entity], logs_key(spec, entity)
    if by not in logs.column_names:
        raise FeatureTableError(f"lookup.{entity}.table: the logs have no {by!r} column to join on")
    table = table.rename_columns([JOINED + n if n in cfg.features else n for n in table.column_names])
    table = table.set_column(table.column_names.index(key), key, table.column(key).cast(logs.schema.field(by).type))
    left = logs.append_column(ROW, pa.array(range(logs.num_rows), pa.int64()))
    if cfg.timestamp:
        if spec.data.timestamp is None:
            raise FeatureTableError(f"lookup.{entity}.timestamp: a point-in-time join needs the logs' "
                                    "data.timestamp")
        joined = _as_of(left, table, spec.data.timestamp, cfg.timestamp, by, key)
    else:
        joined = left.join(table, keys=by, right_keys=key, join_type="left outer", use_threads=True)
    joined = joined.sort_by(ROW)
    out = logs
    for name in cfg.features:
        stored = joined.column(JOINED + name)
        if name in out.column_names:  # the logs' own value wins, as a request's does at serving
            merged = pc.coalesce(out.column(name), stored.cast(out.schema.field(name).type))
            out = out.set_column(out.column_names.index(name), name, merged)
        else:
            out = out.append_column(name, stored)
    return out


def _as_of(left: pa.Table, table: pa.Table, ts: str, table_ts: str, by: str, key: str) -> pa.Table:
    """For each left row, the right row of the same id with the newest table_ts <= ts (none if all later)."""
    tz = left.schema.field(ts).type.tz or "UTC"
    left = left.set_column(left.column_names.index(ts), ts, left.column(ts).cast(pa.timestamp("us", tz=tz)))
    table = table.set_column(table.column_names.index(table_ts), table_ts,
                             table.column(table_ts).cast(pa.timestamp("us", tz=tz)))
    return left.sort_by(ts).join_asof(table.sort_by(table_ts), on=ts, by=by, tolerance=LOOKBACK_US,
                                      right_on=table_ts, right_by=key)
