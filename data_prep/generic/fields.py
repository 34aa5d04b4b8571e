"""What a schema's columns become: the samples' fields in order, the dtype each column is read
with, the names it takes inside the pipeline, and the fields of the timelines.

Static fields come in this order: user, item, the history fields (categorical fields that
histories record, which the candidate is matched on), the item side tables' other fields, the
impressions' own, the user side tables', the numeric fields, then hour and weekday. (The Taobao Ad
source's order, so a schema that describes its files builds the same models.)
"""
from __future__ import annotations

import polars as pl

from data_prep.generic.schema import DTYPES, TYPE_FIELD, Column, GenericSchema, Table, raw_file
from data_prep.raw_files import RawFile

# a column of these kinds takes the kind's name inside the pipeline; the others take their field's
INTERNAL = {"user": "user", "item": "item", "label": "label", "time": "time", "type": TYPE_FIELD}
POSITION = "_position"  # the row number, which stands for time in a file without a time column
CALENDAR = ["hour", "dow"]


class Plan:
    """The resolved schema (module docstring). `specs`: "samples", "log" (when the samples are not
    the log itself), "oracle" and "side<i>" -> the RawFile that reads it."""

    def __init__(self, schema: GenericSchema):
        self.schema = schema
        self.samples = schema.samples
        self.from_log = schema.samples_from_log is not None
        self.ids = {kind: DTYPES[column.dtype or "str"]
                    for kind in ("user", "item") if (column := self.samples.one(kind)) is not None}
        self.has_time = self.samples.one("time") is not None
        candidate = [self.samples] + ([] if self.from_log else schema.side_tables)
        self.categorical: dict[str, Column] = {c.field: c for t in candidate for c in t.of_kind("categorical")}
        self.numeric: dict[str, Column] = {c.field: c for t in candidate for c in t.of_kind("numeric")}
        groups: dict[str, list[str]] = {"history": [], "item": [], "samples": [], "user": []}
        for table in candidate:
            role = "samples" if table is self.samples else table.of_kind("user", "item")[0].kind
            for column in table.of_kind("categorical"):
                groups["history" if column.history or self.from_log else role].append(column.field)
        # candidate fields a history step records: matched against the candidate, raw ids kept
        self.history = ["item"] * ("item" in self.ids) + groups["history"]
        self.static = ([k for k in ("user", "item") if k in self.ids] + [f for g in groups.values() for f in g]
                       + list(self.numeric) + (CALENDAR if self.has_time and schema.calendar else []))
        log = schema.log
        self.log_fields = [] if log is None else (
            [INTERNAL.get(c.kind, c.field) for c in log.of_kind("item", "categorical")]
            + [TYPE_FIELD] * (log.one("type") is not None))
        self.log_raw = [f for f in self.log_fields if f != TYPE_FIELD]
        # the click timeline: earlier clicked impressions, when the impressions are a file of their own
        self.click = (not self.from_log and "user" in self.ids and self.has_time and bool(self.history))
        self.specs: dict[str, RawFile] = {"samples": self._spec("impressions" if not self.from_log else "log",
                                                                self.samples)}
        if log is not None and not self.from_log:
            self.specs["log"] = self._spec("log", log)
        for i, table in enumerate(schema.side_tables):
            self.specs[f"side{i}"] = self._spec(f"side_tables[{i}]", table)
        if schema.oracle is not None:
            o = schema.oracle
            self.specs["oracle"] = RawFile(o.file, {o.user: self.ids["user"], o.time: pl.Int64, "p": pl.Float64})

    def dtype(self, column: Column) -> pl.DataType:
        """The dtype `column` is read with: ids and categorical fields as their candidate declares them."""
        if column.kind in self.ids:
            return self.ids[column.kind]
        if column.kind == "categorical":
            return DTYPES[self.categorical[column.field].dtype or "str"]
        return {"numeric": pl.Float64, "type": pl.String}.get(column.kind, pl.Int64)

    def _spec(self, key: str, table: Table) -> RawFile:
        return raw_file(table, f"schema.{key}", {c.column: self.dtype(c) for c in table.columns})

    def rename(self, table: Table) -> dict[str, str]:
        """File column -> its name inside the pipeline (the file's names are kept for checks' messages)."""
        return {c.column: INTERNAL.get(c.kind, c.field) for c in table.columns}

    def column(self, table: Table, kind: str) -> str | None:
        """The file's name of `table`'s column of `kind`, if any."""
        found = table.one(kind)
        return None if found is None else found.column
