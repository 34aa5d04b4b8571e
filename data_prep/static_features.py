"""Static features derived from raw columns: Beijing hour and weekday, price buckets.

hour index = 2 + hour of day (0..23), dow index = 2 + weekday (Monday 0 .. Sunday 6), both in
Beijing time (UTC+8). Price index = 2 + number of train-quantile edges <= price; a missing price
is out of vocabulary (1).
"""
from __future__ import annotations

import numpy as np
import polars as pl

from data_prep.vocab import OOV

_BEIJING_OFFSET_S = 8 * 3600


def calendar_columns(time: str) -> list[pl.Expr]:
    """`hour` and `dow` indices from Unix seconds in column `time`."""
    local = pl.col(time) + _BEIJING_OFFSET_S
    hour = (local % 86_400) // 3600
    dow = (local // 86_400 + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
    return [(hour + 2).cast(pl.Int32).alias("hour"), (dow + 2).cast(pl.Int32).alias("dow")]


def price_edges(prices: pl.LazyFrame, n_buckets: int) -> np.ndarray:
    """Distinct inner quantile edges of the train prices (at most n_buckets - 1 of them)."""
    qs = [i / n_buckets for i in range(1, n_buckets)]
    frame = prices.select([pl.first().quantile(q, "nearest").alias(f"q{i}") for i, q in enumerate(qs)])
    values = frame.collect(engine="streaming").row(0) if qs else ()
    return np.unique(np.array([v for v in values if v is not None], dtype=np.float64))


def price_index(column: str, edges: np.ndarray) -> pl.Expr:
    """Bucket index of each price: 2 + count of edges <= price; OOV when missing."""
    bucket = pl.lit(2, dtype=pl.Int32)
    for edge in edges:
        bucket = bucket + (pl.col(column) >= edge).cast(pl.Int32)
    return pl.when(pl.col(column).is_null()).then(pl.lit(OOV, dtype=pl.Int32)).otherwise(bucket)
