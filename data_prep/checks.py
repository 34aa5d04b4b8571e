"""Checks of raw rows that fail with the file, the column and an example of the bad row.

Wrong input is never accepted silently: what a pipeline drops or flags is counted (its summary
lists each count), logged, and an error above its share of the file (`limit_share`), the
thresholds being keys of configs/data/<source>.yaml.
"""
from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import polars as pl

from common.errors import MDAFError
from data_prep.calendar import BEIJING, to_day, zone_name
from data_prep.samples import split_column

log = logging.getLogger(__name__)


def _example(lf: pl.LazyFrame, bad: pl.Expr) -> dict | None:
    rows = lf.filter(bad).head(1).collect(engine="streaming")
    return rows.row(0, named=True) if rows.height else None


def require_none(lf: pl.LazyFrame, bad: pl.Expr, path: Path, column: str, expected: str) -> None:
    """Raise when any row satisfies `bad`: '<file>: column <c> expected <...>, e.g. row {...}'."""
    row = _example(lf, bad)
    if row is not None:
        raise MDAFError(f"{path}: column '{column}' expected {expected}; bad row: {row}")


def require_no_nulls(lf: pl.LazyFrame, columns: list[str], path: Path) -> None:
    for column in columns:
        require_none(lf, pl.col(column).is_null(), path, column, "a value in every row (found an empty cell)")


def require_unique(lf: pl.LazyFrame, keys: list[str], path: Path) -> None:
    """Raise when a key occurs twice (ad_feature's adgroup_id, user_profile's userid, ...)."""
    dup = lf.filter(pl.len().over(keys) > 1).head(1).collect(engine="streaming")
    if dup.height:
        raise MDAFError(f"{path}: column(s) {keys} expected unique, found a repeated key in row "
                        f"{dup.row(0, named=True)}")


def limit_share(count: int, rows: int, max_fraction: float, key: str, path: Path, what: str) -> int:
    """`count` rows of `rows` in `path` are `what`: logged when any, an error above `max_fraction`
    (config key `key`); returns `count`."""
    if rows and count / rows > max_fraction:
        raise MDAFError(f"{path}: {count:,} of {rows:,} rows {what}, more than {key}={max_fraction} "
                        f"(configs/data/*.yaml); check the file, or raise {key} to accept it")
    if count:
        log.warning("%s: %d of %d rows %s", path, count, rows, what)
    return count


def count_outside_window(lf: pl.LazyFrame, column: str, window: tuple[int, int], path: Path,
                         max_fraction: float, zone: dt.tzinfo = BEIJING) -> tuple[int, int]:
    """(rows, rows whose `column` lies outside [start, end)); too many outside is an error.

    A few stray rows are dropped and counted (the real
    UserBehavior.csv has some); more than `max_fraction` of the file points at a wrong file or
    unit (milliseconds, say) and fails with an example.
    """
    start, end = window
    outside = (pl.col(column) < start) | (pl.col(column) >= end)
    counts = lf.select(pl.len().alias("rows"), outside.sum().alias("outside")).collect(engine="streaming")
    rows, n_out = int(counts["rows"][0]), int(counts["outside"][0] or 0)
    if rows and n_out / rows > max_fraction:
        row = _example(lf, outside)
        raise MDAFError(f"{path}: column '{column}' expected Unix seconds within {to_day(start, zone)} .. "
                        f"{to_day(end - 1, zone)} ({zone_name(zone)}); {n_out} of {rows} rows fall outside "
                        f"(more than max_out_of_window_fraction={max_fraction}), e.g. row {row}")
    return rows, n_out


def limit_cut_line(cut: bool, rows: int, max_fraction: float, path: Path) -> int:
    """1 when `path`'s last line was cut short and dropped (`rows` read besides it), else 0; an error
    above `max_fraction` of the file (config key max_cut_line_fraction)."""
    return limit_share(int(cut), rows + int(cut), max_fraction, "max_cut_line_fraction", path,
                       "are cut short (the last line, with no newline after it: dropped)")


def limit_duplicates(count: int, rows: int, max_fraction: float, path: Path, fate: str) -> int:
    """`count` exact duplicate rows of `path` (`fate`: dropped, or kept and why), bounded by
    max_duplicate_fraction."""
    return limit_share(count, rows, max_fraction, "max_duplicate_fraction", path,
                       f"are exact duplicates of an earlier row ({fate})")


def bad_number(column: str, minimum: float | None = None) -> pl.Expr:
    """A value of `column` that is present but NaN, infinite or below `minimum` (a price under 0)."""
    bad = ~pl.col(column).is_finite()
    if minimum is not None:
        bad = bad | (pl.col(column) < minimum)
    return pl.col(column).is_not_null() & bad


def count_between_splits(lf: pl.LazyFrame, column: str, window: tuple[int, int],
                         bounds: dict[str, tuple[int, int]]) -> int:
    """Rows inside the data set's window but in none of the configured splits."""
    start, end = window
    inside = pl.col(column).is_between(start, end, closed="left")
    return lf.filter(inside & split_column(column, bounds).is_null()).select(pl.len()) \
        .collect(engine="streaming").item()
