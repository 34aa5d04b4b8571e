"""Numeric columns as indices (every model embeds its fields), each transform fitted on train only.

- quantile: index = 2 + the number of train-quantile edges <= x (the Taobao price's buckets,
  data_prep/static_features.py);
- log: the category floor(ln(x)^2) for x > 2, else int(x), with a vocabulary of the train values
  (the Criteo challenge winners' discretisation, FuxiCTR's `convert_to_bucket` for Criteo);
- standardise: z = (x - mean) / std with train's mean and standard deviation, cut into `buckets`
  equal bins over [-3, 3] (values beyond fall into the end bins).
A value that is NaN, infinite or below the column's `min` is bad: missing, and counted. `fill`
replaces a missing value first (FuxiCTR's na_value); a value still missing is out of vocabulary (1)
for quantile and standardise, and a category of its own for log.
"""
from __future__ import annotations

import math

import numpy as np
import polars as pl

from data_prep.checks import bad_number
from data_prep.generic.schema import Column
from data_prep.static_features import price_edges, price_index
from data_prep.vocab import OOV, ValueCounts, Vocab, fixed_vocab

DEFAULT_BUCKETS = 20
Z_RANGE = 3.0


def transform(column: Column) -> str:
    return column.transform or "quantile"


def prepared(field: str, column: Column) -> pl.Expr:
    """The field's value as its transform reads it: bad values missing, then `fill`, then for log
    the category."""
    x = pl.when(bad_number(field, column.min)).then(None).otherwise(pl.col(field))
    if column.fill is not None:
        x = x.fill_null(column.fill)
    if transform(column) == "log":
        x = pl.when(x > 2).then((x.log() ** 2).floor()).otherwise(x).cast(pl.Int64)
    return x.alias(field)


class Moments:
    """Count, sum and sum of squares of each standardised field's train values, bucket by bucket."""

    def __init__(self) -> None:
        self.sums: dict[str, np.ndarray] = {}

    def add(self, field: str, values: pl.Series) -> None:
        x = np.sort(values.drop_nulls().cast(pl.Float64).to_numpy())  # sorted: sums independent of row order
        self.sums[field] = self.sums.get(field, np.zeros(3)) + [len(x), x.sum(), (x * x).sum()]

    def mean_std(self, field: str) -> tuple[float, float]:
        n, total, squares = self.sums.get(field, np.zeros(3))
        if n == 0:
            return 0.0, 1.0
        mean = total / n
        std = math.sqrt(max(squares / n - mean * mean, 0.0))
        return float(mean), float(std) if std > 0 else 1.0


def count_train(field: str, column: Column, train: pl.Series, counts: ValueCounts, moments: Moments) -> None:
    """Add one bucket's train values of a numeric field (already `prepared`)."""
    if transform(column) == "standardise":
        moments.add(field, train)
    else:
        counts.add(field, train if transform(column) == "log" else train.drop_nulls())


def fit(field: str, column: Column, counts: ValueCounts, moments: Moments, min_count: int) -> tuple[Vocab, dict]:
    """The field's vocabulary and its fitted parameters (meta.json `numeric`)."""
    kind = transform(column)
    buckets = column.buckets or DEFAULT_BUCKETS
    if kind == "log":
        return counts.vocab(field, min_count), {"transform": kind}
    if kind == "quantile":
        edges = price_edges(counts.table(field), buckets)
        return fixed_vocab(field, list(range(len(edges) + 1))), {"transform": kind, "edges": edges.tolist()}
    mean, std = moments.mean_std(field)
    return fixed_vocab(field, list(range(buckets))), {"transform": kind, "mean": mean, "std": std, "buckets": buckets}


def index(field: str, fitted: dict) -> pl.Expr:
    """The index of a quantile or standardise field (log fields are encoded by their vocabulary)."""
    if fitted["transform"] == "quantile":
        return price_index(field, np.asarray(fitted["edges"], dtype=np.float64))
    n = fitted["buckets"]
    z = (pl.col(field) - fitted["mean"]) / fitted["std"]
    bucket = ((z + Z_RANGE) / (2 * Z_RANGE) * n).floor().clip(0, n - 1).cast(pl.Int32) + 2
    return pl.when(pl.col(field).is_null()).then(pl.lit(OOV, dtype=pl.Int32)).otherwise(bucket)
