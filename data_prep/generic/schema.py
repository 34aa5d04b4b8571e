"""The generic source's schema: your own click log described in YAML (docs/generic_source.md).

Each table is a CSV file (any separator; a header, or `names` for the columns in file order) or a
Parquet file, named relative to --raw-dir, and lists the columns it uses, each with its kind:
- impressions: one row per impression: user, item, label (0/1), time (Unix seconds; without a time
  column the row order is time and the split is by position), categorical and numeric columns;
- side_tables: features joined onto the impressions by the table's one user or item column (the
  Taobao Ad files ad_feature.csv and user_profile.csv are two);
- log: behaviours: user, time, and any of item, type (the behaviour type) and categorical columns,
  each of the latter naming the candidate field it records; it becomes the `behavior` timeline.
Instead of an impressions file, `samples_from_log` makes the log's rows of one type the samples,
each labelled by a later conversion of the same item (the UserBehavior labels).

Every mistake stops with one line naming the schema key, e.g.
`my.yaml: schema.impressions.columns[3].kind: expected one of [...], got 'text'`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import polars as pl

from common.config import from_dict
from common.errors import MDAFError
from data_prep.calendar import utc_zone, window
from data_prep.raw_files import RawFile

KINDS = {"impressions": ("user", "item", "label", "time", "categorical", "numeric"),
         "side_tables": ("user", "item", "categorical", "numeric"),
         "log": ("user", "item", "time", "type", "categorical")}
# the keys each kind takes besides `column` and `kind`
KEYS = {"user": {"dtype"}, "item": {"dtype"}, "label": set(), "time": set(), "type": {"values"},
        "categorical": {"name", "dtype", "min_count", "history"},
        "numeric": {"name", "transform", "buckets", "min", "fill", "min_count"}}
DTYPES = {"str": pl.String, "int": pl.Int64}
TRANSFORMS = ("quantile", "log", "standardise")
SPLITS = ("days", "quantiles", "position")
TYPE_FIELD = "btag"  # the behaviour type's field: models count match statistics per type under this name
# names a categorical or numeric field cannot take: the samples' own columns and the id fields
RESERVED = {"label", "time", "user_id", "split", "hour", "dow", "oracle_p", "user", "item", TYPE_FIELD}


@dataclass
class Column:
    """One column of a table and what it is (`kind`); the other keys apply to some kinds only.

    name: categorical and numeric: the field (sample column and vocabulary) it becomes (default:
    the column's name); in the log, the candidate field it records. dtype: user, item and
    categorical values are read as str (default) or int; log and side-table ids take the
    candidate's. min_count: keep values seen this often in train (default: the config's).
    history: a categorical of the candidate that histories record (the click timeline holds it,
    models match it against the history). transform: numeric: quantile (default), log or
    standardise; buckets: their number of bins (20). min: numeric values below it are bad
    (missing, counted). fill: a missing numeric reads as this (FuxiCTR's na_value). values: the
    behaviour types, in vocabulary order.
    """

    column: str
    kind: str
    name: str | None = None
    dtype: str | None = None
    min_count: int | None = None
    history: bool = False
    transform: str | None = None
    buckets: int | None = None
    min: float | None = None
    fill: float | None = None
    values: list[str] | None = None

    @property
    def field(self) -> str:
        return self.name or self.column


@dataclass
class Table:
    """One file and the columns read from it (others are ignored). window: [first_day,
    last_day] of the impressions or the log: rows outside are dropped and counted."""

    file: str
    columns: list[Column]
    separator: str = ","
    header: bool = True
    names: list[str] | None = None
    null_values: list[str] = field(default_factory=list)
    window: list[str] | None = None

    def of_kind(self, *kinds: str) -> list[Column]:
        return [c for c in self.columns if c.kind in kinds]

    def one(self, kind: str) -> Column | None:
        found = self.of_kind(kind)
        return found[0] if found else None


@dataclass
class SamplesFromLog:
    """The samples are the log's rows of behaviour `type`; each is positive when the user does one
    of `conversions` on the same item within `horizon_hours`, never past the end of its split."""

    type: str
    conversions: list[str]
    horizon_hours: float = 24.0


@dataclass
class Split:
    """by: days (train_days, val_days, test_days: [first, last] calendar days), quantiles (val
    and test start at these quantiles of the impression times) or position (the row order is
    time: val and test start at these fractions of the rows; for files without a time column)."""

    by: str = "days"
    train_days: list[str] | None = None
    val_days: list[str] | None = None
    test_days: list[str] | None = None
    val_from: float = 0.8
    test_from: float = 0.9


@dataclass
class Oracle:
    """Synthetic data: each impression's true click probability, keyed by user and time."""

    file: str
    user: str = "user"
    time: str = "time"


@dataclass
class GenericSchema:
    """A click log's files and columns (module docstring). utc_offset_hours: the zone of calendar
    days, hours and weekdays. calendar: hour and weekday fields from the impression time."""

    impressions: Table | None = None
    samples_from_log: SamplesFromLog | None = None
    side_tables: list[Table] = field(default_factory=list)
    log: Table | None = None
    split: Split = field(default_factory=Split)
    oracle: Oracle | None = None
    utc_offset_hours: float = 0.0
    calendar: bool = True

    @property
    def samples(self) -> Table:
        """The table whose rows are the samples: the impressions, or the log."""
        return self.impressions if self.impressions is not None else self.log

    @property
    def zone(self):
        return utc_zone(self.utc_offset_hours)

    @property
    def offset_s(self) -> int:
        return int(round(self.utc_offset_hours * 3600))

    def tables(self) -> list[tuple[str, Table]]:
        """(schema key, table) of every table."""
        found = [("impressions", self.impressions)] if self.impressions is not None else []
        found += [(f"side_tables[{i}]", t) for i, t in enumerate(self.side_tables)]
        return found + ([("log", self.log)] if self.log is not None else [])

    def files(self) -> list[str]:
        """Every file the schema reads, relative to the raw directory."""
        return [t.file for _, t in self.tables()] + ([self.oracle.file] if self.oracle else [])

    def split_bounds(self) -> dict[str, tuple[int, int]] | None:
        """Each split's [start, end) in Unix seconds when split by days; None otherwise (the bounds
        come from the data)."""
        if self.split.by != "days":
            return None
        return {s: window(*getattr(self.split, f"{s}_days"), zone=self.zone) for s in ("train", "val", "test")}

    def window(self, table: Table) -> tuple[int, int] | None:
        return window(*table.window, zone=self.zone) if table.window else None


def parse_schema(data: Any, where: str = "schema") -> GenericSchema:
    """The schema in mapping `data`, checked; errors name `where` and the key."""
    schema = from_dict(GenericSchema, data, where)
    _Checker(schema, where).run()
    return schema


class _Checker:
    """Every rule a schema must keep, each failure one line naming its key."""

    def __init__(self, schema: GenericSchema, where: str):
        self.schema, self.where = schema, where

    def fail(self, key: str, message: str) -> MDAFError:
        return MDAFError(f"{self.where}.{key}: {message}")

    def run(self) -> None:
        s = self.schema
        if (s.impressions is None) == (s.samples_from_log is None):
            raise self.fail("impressions", "give either an impressions table or samples_from_log (one of the two)")
        if s.samples_from_log is not None and s.log is None:
            raise self.fail("samples_from_log", "needs a log whose rows are the samples")
        for key, table in s.tables():
            self.table(key, table, "side_tables" if key.startswith("side") else key)
        self.candidate_fields()
        self.ids()
        self.split()
        if s.log is not None:
            self.log()
        if s.oracle is not None and (s.samples.one("user") is None or s.samples.one("time") is None):
            raise self.fail("oracle", "needs samples with a user and a time column to key the probabilities")

    def table(self, key: str, table: Table, role: str) -> None:
        if not table.columns:
            raise self.fail(f"{key}.columns", "expected at least one column")
        if len(table.separator) != 1:
            raise self.fail(f"{key}.separator", f"expected one character, got {table.separator!r}")
        if table.header == (table.names is not None) and not table.file.endswith(".parquet"):
            raise self.fail(f"{key}.names", "give names (every column in file order) exactly when header is false")
        if table.window is not None:
            if role == "side_tables":
                raise self.fail(f"{key}.window", "applies to the impressions and the log only")
            if len(table.window) != 2:
                raise self.fail(f"{key}.window", f"expected [first_day, last_day], got {table.window!r}")
            window(*table.window, where=f"{self.where}.{key}.window")
        seen: dict[str, str] = {}
        for i, column in enumerate(table.columns):
            ckey = f"{key}.columns[{i}]"
            if column.column in seen:
                raise self.fail(ckey, f"column {column.column!r} is declared twice (also {seen[column.column]})")
            seen[column.column] = ckey
            if table.names is not None and column.column not in table.names:
                raise self.fail(f"{ckey}.column", f"{column.column!r} is not one of names {table.names}")
            self.column(ckey, column, KINDS[role])
        for kind in ("user", "item", "label", "time", "type"):
            if len(table.of_kind(kind)) > 1:
                raise self.fail(f"{key}.columns", f"expected at most one column of kind {kind}")

    def column(self, key: str, column: Column, kinds: tuple[str, ...]) -> None:
        if column.kind not in kinds:
            raise self.fail(f"{key}.kind", f"expected one of {list(kinds)}, got {column.kind!r}")
        given = {f.name for f in fields(Column) if f.name not in ("column", "kind")
                 and getattr(column, f.name) != f.default}
        extra = sorted(given - KEYS[column.kind])
        if extra:
            raise self.fail(f"{key}.{extra[0]}", f"does not apply to kind {column.kind} (it takes "
                            f"{sorted(KEYS[column.kind]) or 'no other key'})")
        if column.dtype is not None and column.dtype not in DTYPES:
            raise self.fail(f"{key}.dtype", f"expected one of {list(DTYPES)}, got {column.dtype!r}")
        if column.transform is not None and column.transform not in TRANSFORMS:
            raise self.fail(f"{key}.transform", f"expected one of {list(TRANSFORMS)}, got {column.transform!r}")
        if column.min_count is not None and (column.min_count < 1 or
                                             (column.kind == "numeric" and column.transform != "log")):
            raise self.fail(f"{key}.min_count", "expected an integer >= 1, for categorical columns and the "
                            "numeric transform log")
        if column.buckets is not None and (column.buckets < 1 or column.transform == "log"):
            raise self.fail(f"{key}.buckets", "expected an integer >= 1, for the numeric transforms quantile "
                            "and standardise")
        if column.kind == "type" and not column.values:
            raise self.fail(f"{key}.values", "expected the list of behaviour types")
        if column.kind in ("categorical", "numeric") and column.field in RESERVED:
            raise self.fail(f"{key}.name", f"{column.field!r} is a reserved name ({sorted(RESERVED)}); choose another")

    def candidate_fields(self) -> None:
        """Field names unique across the candidate's tables; side tables keyed once."""
        s, seen = self.schema, {}
        candidate = [(k, t) for k, t in s.tables() if k != "log" or s.samples_from_log is not None]
        for key, table in candidate:
            for column in table.of_kind("categorical", "numeric"):
                ckey = f"{key}.columns[{table.columns.index(column)}]"
                if column.field in seen:
                    raise self.fail(ckey, f"field {column.field!r} is declared twice (also {seen[column.field]})")
                seen[column.field] = ckey
        for i, table in enumerate(s.side_tables):
            if len(table.of_kind("user", "item")) != 1:
                raise self.fail(f"side_tables[{i}].columns", "expected exactly one column of kind user or item: "
                                "the key the table joins on")
            (key_column,) = table.of_kind("user", "item")
            if s.samples.one(key_column.kind) is None:
                raise self.fail(f"side_tables[{i}].columns", f"joins on {key_column.kind}, but the samples have "
                                f"no {key_column.kind} column")

    def ids(self) -> None:
        """The other tables' user and item columns take the samples' dtype, and a log's categorical
        column the dtype of the candidate field it records."""
        s, samples = self.schema, self.schema.samples
        fields = {c.field: c for _, t in s.tables() if t is not s.log for c in t.of_kind("categorical")}
        for key, table in s.tables():
            if table is samples:
                continue
            for column in table.of_kind("user", "item", "categorical"):
                own = samples.one(column.kind) if column.kind != "categorical" else (
                    fields.get(column.field) if table is s.log else None)
                if own is not None and column.dtype is not None and column.dtype != (own.dtype or "str"):
                    i = table.columns.index(column)
                    raise self.fail(f"{key}.columns[{i}].dtype", f"{column.dtype!r} differs from the candidate's "
                                    f"{column.field if column.kind == 'categorical' else column.kind} dtype "
                                    f"{own.dtype or 'str'!r}")
        if samples.one("label") is None and self.schema.samples_from_log is None:
            raise self.fail("impressions.columns", "expected a column of kind label")

    def split(self) -> None:
        split, samples = self.schema.split, self.schema.samples
        if split.by not in SPLITS:
            raise self.fail("split.by", f"expected one of {list(SPLITS)}, got {split.by!r}")
        if (split.by == "position") != (samples.one("time") is None):
            raise self.fail("split.by", "position exactly when the samples have no time column (the row order "
                            "is then time)")
        if split.by == "days":
            bounds = []
            for name in ("train_days", "val_days", "test_days"):
                days = getattr(split, name)
                if days is None or len(days) != 2:
                    raise self.fail(f"split.{name}", f"expected [first_day, last_day], got {days!r}")
                bounds.append(window(*days, where=f"{self.where}.split.{name}", zone=self.schema.zone))
            for (_, a_end), (b_start, _), name in zip(bounds, bounds[1:], ("val_days", "test_days")):
                if b_start < a_end:
                    raise self.fail(f"split.{name}", "must start after the previous split ends")
        elif not 0 < split.val_from < split.test_from < 1:
            raise self.fail("split.val_from", f"expected 0 < val_from < test_from < 1, got {split.val_from} "
                            f"and {split.test_from}")

    def log(self) -> None:
        s, log = self.schema, self.schema.log
        for kind in ("user", "time"):
            if log.one(kind) is None:
                raise self.fail("log.columns", f"expected a column of kind {kind}")
        if s.impressions is not None:
            if s.impressions.one("user") is None or s.impressions.one("time") is None:
                raise self.fail("log", "needs impressions with a user and a time column to point into it")
            history = {c.field for _, t in s.tables() if t is not log for c in t.of_kind("categorical") if c.history}
            if log.one("item") is not None and s.impressions.one("item") is None:
                raise self.fail(f"log.columns[{log.columns.index(log.one('item'))}]",
                                "the log has an item column but the impressions have none")
            for column in log.of_kind("categorical"):
                if column.field not in history:
                    raise self.fail(f"log.columns[{log.columns.index(column)}].name",
                                    f"{column.field!r} is not a candidate field with history: true; the log's "
                                    f"categorical columns record one of {sorted(history)}")
        else:
            frm = s.samples_from_log
            types = log.one("type")
            if types is None or log.one("item") is None:
                raise self.fail("log.columns", "samples_from_log needs a type and an item column")
            named = [("type", frm.type)] + [(f"conversions[{i}]", v) for i, v in enumerate(frm.conversions)]
            for key, value in named:
                if value not in types.values:
                    raise self.fail(f"samples_from_log.{key}", f"{value!r} is not one of the type's values "
                                    f"{types.values}")
            if frm.horizon_hours <= 0:
                raise self.fail("samples_from_log.horizon_hours", f"expected a positive number, got "
                                f"{frm.horizon_hours}")


def raw_file(table: Table, key: str, dtypes: dict[str, pl.DataType]) -> RawFile:
    """The RawFile that reads `table` (schema key `key`), each column with its dtype from `dtypes`."""
    return RawFile(table.file, {c.column: dtypes[c.column] for c in table.columns}, has_header=table.header,
                   null_values=tuple(table.null_values), separator=table.separator, names=tuple(table.names or ()),
                   keys={c.column: f"{key}.columns[{i}]" for i, c in enumerate(table.columns)})
