"""Vocabularies: raw id -> index, fitted on the train period only.

Index 0 is padding, 1 is out of vocabulary, known values get 2.. in order of decreasing train
frequency (ties by raw value, so the mapping is deterministic). A missing raw value is encoded
as -1 before counting, so "missing" is a value of its own when it occurs in train.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

PAD, OOV = 0, 1
MISSING = -1
MISSING_TEXT = ""


def fill_missing(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Nulls become the MISSING value of their type, so they count and encode like any value."""
    return expr.fill_null(MISSING_TEXT if dtype == pl.String else MISSING)


@dataclass(frozen=True)
class Vocab:
    """The known raw values of one id space, in index order starting at 2."""

    space: str
    raw: pl.Series

    @property
    def size(self) -> int:
        """Embedding rows needed: known values plus padding and out-of-vocabulary."""
        return self.raw.len() + 2

    def encode(self, column: str | pl.Expr) -> pl.Expr:
        """Expression mapping raw values (nulls as MISSING) to indices; unseen -> OOV."""
        expr = fill_missing(pl.col(column) if isinstance(column, str) else column, self.raw.dtype)
        index = pl.Series(np.arange(2, self.size, dtype=np.int32))
        return expr.replace_strict(self.raw, index, default=OOV, return_dtype=pl.Int32)

    def save(self, directory: Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        pl.DataFrame({"raw": self.raw, "index": np.arange(2, self.size, dtype=np.int32)}).write_parquet(
            Path(directory) / f"{self.space}.parquet")

    @classmethod
    def load(cls, directory: Path, space: str) -> "Vocab":
        table = pl.read_parquet(Path(directory) / f"{space}.parquet")
        return cls(space, table.sort("index")["raw"])


def fixed_vocab(space: str, values: list) -> Vocab:
    """A vocabulary known in advance (behaviour types, hours): index = 2 + position."""
    return Vocab(space, pl.Series("raw", values))


def fit_vocab(space: str, columns: list[pl.LazyFrame], min_count: int) -> Vocab:
    """Fit on the union of single-column lazy frames (each already restricted to train rows).

    Counting streams, so memory grows with the number of distinct values, not of rows.
    """
    dtype = columns[0].collect_schema().dtypes()[0]
    values = pl.concat([lf.select(fill_missing(pl.first(), dtype).cast(dtype).alias("raw"))
                        for lf in columns])
    counts = (values.group_by("raw").len("count").filter(pl.col("count") >= min_count)
              .sort(["count", "raw"], descending=[True, False]).collect(engine="streaming"))
    return Vocab(space, counts["raw"])
