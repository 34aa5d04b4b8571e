"""Static features derived from raw columns: Beijing hour and weekday, price buckets.

hour index = 2 + hour of day (0..23), dow index = 2 + weekday (Monday 0 .. Sunday 6), both in
Beijing time (UTC+8) unless another offset is given. Price index = 2 + number of train-quantile
edges <= price; a missing price is out of vocabulary (1).
"""
from __future__ import annotations

import numpy as np
import polars as pl

from data_prep.vocab import OOV

_BEIJING_OFFSET_S = 8 * 3600


def calendar_columns(time: str, offset_s: int = _BEIJING_OFFSET_S) -> list[pl.Expr]:
    """`hour` and `dow` indices from Unix seconds in column `time`, read `offset_s` east of UTC."""
    local = pl.col(time) + offset_s
    hour = (local % 86_400) // 3600
    dow = (local // 86_400 + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
    return [(hour + 2).cast(pl.Int32).alias("hour"), (dow + 2).cast(pl.Int32).alias("dow")]


def price_edges(counts: pl.DataFrame, n_buckets: int) -> np.ndarray:
    """Distinct inner quantile edges (at most n_buckets - 1) of train prices given as counts.

    counts: columns raw (price) and count (train impressions at that price), no missing prices.
    """
    table = counts.sort("raw")
    if table.height == 0:
        return np.zeros(0)
    cumulative = np.cumsum(table["count"].to_numpy()) / table["count"].sum()
    at = np.searchsorted(cumulative, np.arange(1, n_buckets) / n_buckets, side="left")
    return np.unique(table["raw"].to_numpy().astype(np.float64)[np.minimum(at, table.height - 1)])


def price_index(column: str, edges: np.ndarray) -> pl.Expr:
    """Bucket index of each price: 2 + count of edges <= price; OOV when missing."""
    bucket = pl.lit(2, dtype=pl.Int32)
    for edge in edges:
        bucket = bucket + (pl.col(column) >= edge).cast(pl.Int32)
    return pl.when(pl.col(column).is_null()).then(pl.lit(OOV, dtype=pl.Int32)).otherwise(bucket)
