"""Split a large table into user buckets on disk, so each bucket fits in memory.

One streaming pass writes `bucket=<k>/` Parquet parts with k = user % n_buckets; later stages
read one bucket at a time. Every row of a user lands in the same bucket, so each bucket holds
whole timelines. Memory is bounded by the bucket size, whatever the size of the input.
"""
from __future__ import annotations

import math
from pathlib import Path

import polars as pl

_BUCKET = "_bucket"


def count_buckets(paths: list[Path], bucket_mb: int) -> int:
    """Buckets needed so each holds about `bucket_mb` of raw input."""
    total = sum(p.stat().st_size for p in paths if p.is_file())
    return max(1, math.ceil(total / (bucket_mb * 2**20)))


def write_buckets(lf: pl.LazyFrame, user: str, n_buckets: int, directory: Path) -> None:
    """Stream `lf` into `directory/bucket=<k>/*.parquet`, k = `user` % n_buckets (a text id's hash)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = pl.col(user).hash(0) if lf.collect_schema()[user] == pl.String else pl.col(user)
    keyed = lf.with_columns((key % n_buckets).cast(pl.Int32).alias(_BUCKET))
    keyed.sink_parquet(pl.PartitionBy(directory, key=_BUCKET, include_key=False),
                     compression="lz4", mkdir=True)


def scan_buckets(directory: Path) -> pl.LazyFrame:
    """All buckets' rows, in no particular order."""
    return pl.scan_parquet(sorted(directory.glob(f"{_BUCKET}=*/*.parquet")), hive_partitioning=False)


def drop_duplicates(rows: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """`rows` (one bucket) without exact duplicate rows, and how many were dropped.

    A repeated row (same user, second and values) is one event logged twice: kept, it would
    double a sample or a history step. All rows of a user share a bucket, so do their copies.
    """
    unique = rows.unique(maintain_order=True)
    return unique, rows.height - unique.height


def read_bucket(directory: Path, k: int, schema: pl.Schema) -> pl.LazyFrame:
    """The rows of bucket `k` (an empty frame of `schema` when the bucket got no rows)."""
    parts = sorted((directory / f"{_BUCKET}={k}").glob("*.parquet"))
    if not parts:
        return pl.LazyFrame(schema=schema)
    return pl.scan_parquet(parts, hive_partitioning=False)
