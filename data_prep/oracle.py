"""A synthetic set's true click probabilities (`<file>_oracle.csv`: user, time, p), one per
impression, checked and joined onto the samples as `oracle_p`."""
from __future__ import annotations

from pathlib import Path

import polars as pl

from data_prep import checks


def check_oracle(lf: pl.LazyFrame, keys: list[str], path: Path) -> None:
    """Every key and `p` present, and `p` a probability."""
    checks.require_no_nulls(lf, [*keys, "p"], path)
    checks.require_none(lf, ~pl.col("p").is_between(0, 1), path, "p", "a probability in [0, 1]")


def join_oracle(samples: pl.DataFrame, oracle: pl.LazyFrame, keys: list[str], name: str) -> pl.DataFrame:
    """`samples` with `oracle_p` from `oracle` (one bucket) on `keys`: a key must occur once in the
    oracle, and every sample must find its probability."""
    oracle = oracle.select(*keys, oracle_p=pl.col("p").cast(pl.Float32))
    checks.require_unique(oracle, keys, Path(name))
    joined = samples.join(oracle.collect(), on=keys, how="left")
    checks.require_no_nulls(joined.lazy(), ["oracle_p"], Path(name))
    return joined
