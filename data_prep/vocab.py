"""Vocabularies: raw id -> index, fitted on the train period only (or reused from a dataset).

Index 0 is padding, 1 is out of vocabulary, known values get 2.. in order of decreasing train
frequency (ties by raw value, so the mapping is deterministic). A missing raw value is encoded
as -1 before counting, so "missing" is a value of its own when it occurs in train.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl

from common.errors import MDAFError
from data_prep.dataset import ProcessedDataset

PAD, OOV = 0, 1
MISSING = -1
MISSING_TEXT = ""


def fill_missing(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Nulls become the MISSING value of their type, so they count and encode like any value."""
    return expr.fill_null(MISSING_TEXT if dtype == pl.String else MISSING)


# meta.json records each fitted vocabulary's size at minimum counts 1..MIN_COUNT_LEVELS
MIN_COUNT_LEVELS = 20


@dataclass(frozen=True)
class Vocab:
    """The known raw values of one id space, in index order starting at 2, with their train counts
    (None for a vocabulary known in advance)."""

    space: str
    raw: pl.Series
    count: pl.Series | None = None

    @property
    def size(self) -> int:
        """Embedding rows needed: known values plus padding and out-of-vocabulary."""
        return self.raw.len() + 2

    @cached_property
    def table(self) -> pl.DataFrame:
        """Columns `raw` and `index` (Int32), and `count` when known: the mapping as a frame."""
        table = pl.DataFrame({"raw": self.raw, "index": np.arange(2, self.size, dtype=np.int32)})
        return table if self.count is None else table.with_columns(count=self.count)

    def sizes_by_min_count(self) -> list[int] | None:
        """The size this vocabulary would have keeping only values seen at least k times in train,
        for k = 1..MIN_COUNT_LEVELS (values come most frequent first, so it keeps a prefix of the
        indices); None without counts."""
        if self.count is None:
            return None
        counts = self.count.to_numpy()
        return [int((counts >= k).sum()) + 2 for k in range(1, MIN_COUNT_LEVELS + 1)]

    def save(self, directory: Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.table.write_parquet(Path(directory) / f"{self.space}.parquet")

    @classmethod
    def load(cls, directory: Path, space: str) -> "Vocab":
        table = pl.read_parquet(Path(directory) / f"{space}.parquet").sort("index")
        return cls(space, table["raw"], table["count"] if "count" in table.columns else None)


def fixed_vocab(space: str, values: list) -> Vocab:
    """A vocabulary known in advance (behaviour types, hours): index = 2 + position."""
    return Vocab(space, pl.Series("raw", values))


def vocab_meta(vocabs: dict[str, Vocab]) -> dict:
    """meta.json's vocabulary keys: `vocab_sizes` (space -> size) and `vocab_sizes_by_min_count`
    (space -> its size at minimum counts 1..MIN_COUNT_LEVELS, for the vocabularies fitted on train)."""
    return {"vocab_sizes": {v.space: v.size for v in vocabs.values()},
            "vocab_sizes_by_min_count": {v.space: v.sizes_by_min_count() for v in vocabs.values()
                                         if v.count is not None}}


def with_min_count(meta: dict, min_count: dict[str, int]) -> dict:
    """`meta` with `vocab_sizes` cut to the values seen at least min_count[space] times in train.

    Values come most frequent first, so this keeps a prefix of each vocabulary: a model built on
    the result has smaller tables, and its embedding layer reads any larger index as out of
    vocabulary (models/layers/embedding.py), without preparing the data again.
    """
    sizes = meta.get("vocab_sizes_by_min_count", {})
    out = {**meta, "vocab_sizes": dict(meta["vocab_sizes"])}
    for space, k in min_count.items():
        if space not in sizes:
            raise MDAFError(f"data config: key 'min_count.{space}': not a vocabulary fitted on train; expected one "
                            f"of {sorted(sizes)}")
        if not 1 <= k <= len(sizes[space]):
            raise MDAFError(f"data config: key 'min_count.{space}' must be in [1, {len(sizes[space])}], got {k!r}")
        out["vocab_sizes"][space] = sizes[space][k - 1]
    return out


# (vocabularies by space, meta.json) of an existing dataset, as load_vocabularies returns them
Reused = tuple[dict[str, Vocab], dict]


def load_vocabularies(dataset: Path, source: str) -> Reused:
    """Every vocabulary of the processed `dataset` and its meta.json, to encode new raw files of
    `source` with the indices of a model trained on that dataset (unseen values -> OOV)."""
    meta = ProcessedDataset(dataset).meta
    if meta.get("source") != source:
        raise MDAFError(f"{dataset / 'meta.json'}: vocabularies of a {meta.get('source')!r} dataset "
                        f"cannot encode {source!r} raw files")
    vocabs = {}
    for space, size in meta["vocab_sizes"].items():
        path = dataset / "vocab" / f"{space}.parquet"
        if not path.is_file():
            raise MDAFError(f"{path}: vocabulary file not found (meta.json lists space {space!r})")
        vocabs[space] = Vocab.load(path.parent, space)
        if vocabs[space].size != size:
            raise MDAFError(f"{path}: {vocabs[space].size} indices, but meta.json says {size}")
    return vocabs, meta


class ValueCounts:
    """Counts of raw values per space, added bucket by bucket (the train rows only).

    Memory grows with the number of distinct values, never with the number of rows.
    """

    def __init__(self) -> None:
        self._tables: dict[str, pl.DataFrame] = {}

    def add(self, space: str, values: pl.Series) -> None:
        counts = (values.to_frame("raw").select(fill_missing(pl.col("raw"), values.dtype))
                  .group_by("raw").agg(pl.len().cast(pl.Int64).alias("count")))
        if space in self._tables:
            counts = pl.concat([self._tables[space], counts]).group_by("raw").agg(pl.col("count").sum())
        self._tables[space] = counts

    def table(self, space: str) -> pl.DataFrame:
        """Columns raw, count, in vocabulary order: by decreasing count, ties by raw value."""
        table = self._tables.get(space, pl.DataFrame(schema={"raw": pl.Int64, "count": pl.Int64}))
        return table.sort(["count", "raw"], descending=[True, False])

    def vocab(self, space: str, min_count: int) -> Vocab:
        """Values seen at least `min_count` times, most frequent first, with their counts."""
        kept = self.table(space).filter(pl.col("count") >= min_count)
        return Vocab(space, kept["raw"], kept["count"])


# Up to this many values an element-wise replace beats a hash join (measured: 4-60K values
# 3-10x faster, 460K values 2x slower).
_REPLACE_MAX = 100_000


def encode(frame: pl.DataFrame, columns: dict[str, tuple[str, Vocab]]) -> pl.DataFrame:
    """Add index columns: {output: (raw column, vocabulary)}; nulls as MISSING, unseen -> OOV.

    Small vocabularies map element-wise; large ones by a hash join, which is far faster there.
    Row order is not kept; callers sort.
    """
    for output, (column, vocab) in columns.items():
        key = fill_missing(pl.col(column), vocab.raw.dtype).cast(vocab.raw.dtype)
        if vocab.size <= _REPLACE_MAX:
            frame = frame.with_columns(key.replace_strict(vocab.table["raw"], vocab.table["index"],
                                                          default=OOV, return_dtype=pl.Int32).alias(output))
            continue
        table = vocab.table.select(_key=pl.col("raw"), _index=pl.col("index"))
        frame = (frame.with_columns(key.alias("_key")).join(table, on="_key", how="left")
                 .with_columns(pl.col("_index").fill_null(OOV).alias(output)).drop("_key", "_index"))
    return frame
