"""Raw request values -> the indices and raw ids a run's model reads, with the run's vocabularies.

The encoding is data_prep's (data_prep/vocab.py, data_prep/static_features.py), value by value:
a known raw id -> its index (2..), an unknown one -> out of vocabulary (1), a missing one (None)
-> the index of the MISSING value (out of vocabulary when train never had it); a price -> 2 + the
number of the run's price edges at or below it, missing (or NaN, infinite, negative, as
preparation reads those) -> out of vocabulary; `hour` and `dow` from the Unix time, Beijing time.
A candidate's raw ids (meta.json `raw_ids`) and a timeline's keep the value itself, -1 when missing.
Lookups are dictionaries built once from the vocabulary files: encoding a frame with Polars costs
about 5 ms a call, most of it building the same maps again.

Field names are the processed dataset's (meta.json `static_fields`, `timelines`), so one service
reads every source: a Taobao ad is {"item", "cate", "brand", "campaign", "customer", "price"}.
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl

from common.errors import MDAFError
from data_prep.dataset import ProcessedDataset
from data_prep.static_features import calendar_columns
from data_prep.timeline import raw_column
from data_prep.vocab import MISSING, MISSING_TEXT, OOV, Vocab

CALENDAR = ("hour", "dow")  # static fields derived from the impression's time
PRICE = "price"  # bucketed by meta.json `price_edges`


class Features:
    """The encoders of one processed dataset (the one a run trained on)."""

    def __init__(self, dataset: ProcessedDataset):
        meta = dataset.meta
        self.timelines = {name: dataset.timeline_fields(name) for name in dataset.timeline_names}
        self.timeline_raw = {name: dataset.timeline_raw_ids(name) for name in dataset.timeline_names}
        self.price_edges = np.asarray(meta["price_edges"], dtype=np.float64) if "price_edges" in meta else None
        derived = {*CALENDAR, *([PRICE] if self.price_edges is not None else [])}
        self.static = {f: s for f, s in dataset.static_fields.items() if f not in derived}
        self.derived = [f for f in dataset.static_fields if f in derived]
        self.raw_ids = dataset.raw_ids
        spaces = {*self.static.values(), *(s for fields in self.timelines.values() for s in fields.values())}
        self.lookup: dict[str, dict] = {}
        self.kind: dict[str, type] = {}
        for space in sorted(spaces):
            if not (dataset.root / "vocab" / f"{space}.parquet").is_file():
                raise MDAFError(f"{dataset.root / 'vocab' / (space + '.parquet')}: missing; serving encodes "
                                f"raw ids with the run's vocabularies")
            vocab = Vocab.load(dataset.root / "vocab", space)
            self.kind[space] = str if vocab.raw.dtype == pl.String else int
            self.lookup[space] = dict(zip(vocab.raw.to_list(), range(2, vocab.size)))

    def value_type(self, space: str) -> type:
        """The raw type of `space`'s ids: int or str."""
        return self.kind[space]

    def index(self, space: str, value: int | str | None) -> int:
        """The index of raw `value` in `space` (module doc); an int given for a string space is read
        as its text, as a CSV reader would."""
        if value is None:
            value = MISSING_TEXT if self.kind[space] is str else MISSING
        elif self.kind[space] is str:
            value = str(value)
        return self.lookup[space].get(value, OOV)

    def price_index(self, price: float | None) -> int:
        if price is None or not math.isfinite(price) or price < 0:
            return OOV
        return 2 + int(np.searchsorted(self.price_edges, price, side="right"))

    def encode_static(self, rows: list[dict], times: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(static field -> (n,) int32 indices, raw-id field -> (n,) int64) of samples `rows` (field
        -> raw value; absent fields are missing) shown at `times` (n,) Unix seconds."""
        static = {f: np.fromiter((self.index(s, row.get(f)) for row in rows), np.int32, len(rows))
                  for f, s in self.static.items()}
        calendar = pl.DataFrame({"time": times}).select(calendar_columns("time"))
        for f in self.derived:
            static[f] = (np.fromiter((self.price_index(row.get(PRICE)) for row in rows), np.int32, len(rows))
                         if f == PRICE else calendar[f].to_numpy().astype(np.int32))
        raw = {f: np.fromiter((MISSING if row.get(f) is None else row[f] for row in rows), np.int64, len(rows))
               for f in self.raw_ids}
        return static, raw

    def columns(self, timeline: str) -> list[str]:
        """The columns of an encoded event of `timeline`: time, its index fields, its raw-id fields."""
        return ["time", *self.timelines[timeline], *map(raw_column, self.timeline_raw[timeline])]

    def encode_events(self, timeline: str, events: list[dict]) -> np.ndarray:
        """(n, len(columns)) int64 rows of `events` (field -> raw value, and `time`)."""
        fields = self.timelines[timeline]
        return np.array([[event["time"], *(self.index(s, event.get(f)) for f, s in fields.items()),
                          *(MISSING if event.get(f) is None else event[f] for f in self.timeline_raw[timeline])]
                         for event in events], dtype=np.int64).reshape(len(events), len(self.columns(timeline)))
