"""Interaction files in the formats public next-item data comes in, read into one frame.

Every reader returns columns user, item (raw ids, as text), time (Int64 seconds), rating
(Float64, null when the file has none) and row (the line's place in the file, for a stable
tie-break):
- atomic: RecBole's `.inter` files, tab-separated, a typed header (`user_id:token item_id:token
  rating:float timestamp:float`), the format RecBole distributes dozens of public sets in;
- movielens_100k: MovieLens-100K's `u.data` (tab-separated user, item, rating, timestamp);
- movielens_1m: MovieLens-1M's `ratings.dat` (`UserID::MovieID::Rating::Timestamp`);
- csv, parquet: any table, its columns named in the config;
- userbehavior: Taobao's UserBehavior.csv (the behaviour types in the config's `behaviors`).
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from common.errors import MDAFError
from data_prep.next_item.config import NextItemConfig
from data_prep.raw_files import USER_BEHAVIOR, scan_raw

COLUMNS = ("user", "item", "time", "rating")


def detect_format(path: Path) -> str:
    """The reader `auto` picks for `path`, by its name."""
    name = path.name.lower()
    if name.endswith(".inter"):
        return "atomic"
    if name == "u.data":
        return "movielens_100k"
    if name == "ratings.dat":
        return "movielens_1m"
    if name == USER_BEHAVIOR.name.lower():
        return "userbehavior"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".csv"):
        return "csv"
    raise MDAFError(f"{path}: cannot tell its format from its name; set 'format' to one of atomic, "
                    "movielens_100k, movielens_1m, csv, parquet, userbehavior")


def read_interactions(path: str | Path, cfg: NextItemConfig) -> pl.DataFrame:
    """The interactions of `path` (module docstring), ratings below `cfg.min_rating` dropped."""
    path = Path(path)
    if not path.is_file():
        raise MDAFError(f"{path}: interaction file not found")
    fmt = detect_format(path) if cfg.format == "auto" else cfg.format
    try:
        frame = READERS[fmt](path, cfg).with_row_index("row").collect()
    except pl.exceptions.PolarsError as exc:
        raise MDAFError(f"{path}: cannot read it as {fmt} ({str(exc).strip().splitlines()[0]})") from None
    for column in ("user", "item", "time"):
        if frame[column].null_count():
            raise MDAFError(f"{path}: column {column!r} has empty values; every interaction needs a user, an item "
                            "and a time")
    if frame.height == 0:
        raise MDAFError(f"{path}: no interactions")
    if cfg.min_rating is not None:
        if frame["rating"].null_count() == frame.height:
            raise MDAFError(f"{path}: 'min_rating' is set but the file has no ratings")
        frame = frame.filter(pl.col("rating") >= cfg.min_rating)
    return frame.select("row", *COLUMNS)


def _typed(lf: pl.LazyFrame, user: str, item: str, time: str, rating: str | None) -> pl.LazyFrame:
    return lf.select(user=pl.col(user).cast(pl.String), item=pl.col(item).cast(pl.String),
                     time=pl.col(time).cast(pl.Float64).round().cast(pl.Int64),
                     rating=pl.col(rating).cast(pl.Float64) if rating else pl.lit(None, dtype=pl.Float64))


def _atomic(path: Path, cfg: NextItemConfig) -> pl.LazyFrame:
    with open(path, encoding="utf-8-sig") as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
    names = [cell.split(":")[0] for cell in header]
    wanted = {"user_id": "user", "item_id": "item", "timestamp": "time"}
    missing = [name for name in wanted if name not in names]
    if missing:
        raise MDAFError(f"{path}: missing field(s) {missing} in the atomic header {header}")
    lf = pl.scan_csv(path, separator="\t", has_header=False, skip_rows=1, new_columns=names,
                     schema={n: pl.String for n in names}, quote_char=None)
    return _typed(lf, "user_id", "item_id", "timestamp", "rating" if "rating" in names else None)


def _movielens_100k(path: Path, cfg: NextItemConfig) -> pl.LazyFrame:
    names = ["user", "item", "rating", "time"]
    lf = pl.scan_csv(path, separator="\t", has_header=False, schema={n: pl.String for n in names})
    return _typed(lf, "user", "item", "time", "rating")


def _movielens_1m(path: Path, cfg: NextItemConfig) -> pl.LazyFrame:
    # "::" is two separators: the fields land in every other column
    names = ["user", "_a", "item", "_b", "rating", "_c", "time"]
    lf = pl.scan_csv(path, separator=":", has_header=False, schema={n: pl.String for n in names})
    return _typed(lf, "user", "item", "time", "rating")


def _table(lf: pl.LazyFrame, path: Path, cfg: NextItemConfig) -> pl.LazyFrame:
    present = lf.collect_schema().names()
    wanted = [cfg.user_column, cfg.item_column, cfg.time_column, *([cfg.rating_column] if cfg.rating_column else [])]
    missing = [c for c in wanted if c not in present]
    if missing:
        raise MDAFError(f"{path}: missing column(s) {missing} (config keys user_column, item_column, time_column, "
                        f"rating_column); it has {present}")
    return _typed(lf, cfg.user_column, cfg.item_column, cfg.time_column, cfg.rating_column)


def _csv(path: Path, cfg: NextItemConfig) -> pl.LazyFrame:
    return _table(pl.scan_csv(path, separator=cfg.separator, infer_schema=False), path, cfg)


def _parquet(path: Path, cfg: NextItemConfig) -> pl.LazyFrame:
    return _table(pl.scan_parquet(path), path, cfg)


def _userbehavior(path: Path, cfg: NextItemConfig) -> pl.LazyFrame:
    lf = scan_raw(path.parent, USER_BEHAVIOR).filter(pl.col("behavior_type").is_in(cfg.behaviors))
    return _typed(lf, "user_id", "item_id", "timestamp", None)


READERS = {"atomic": _atomic, "movielens_100k": _movielens_100k, "movielens_1m": _movielens_1m,
           "csv": _csv, "parquet": _parquet, "userbehavior": _userbehavior}
