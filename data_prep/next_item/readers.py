"""Interaction files in the formats public next-item data comes in, read into one frame.

Every reader returns columns user, item (raw ids, as text, surrounding spaces stripped), time
(Float64 seconds as written: a fraction is kept, so the time order is exact), rating (Float64,
null when the file has none) and row (the line's place in the file, for a stable tie-break):
- atomic: RecBole's `.inter` files, tab-separated, a typed header (`user_id:token`, `item_id:token`,
  `rating:float`, `timestamp:float`, one tab between each), the format RecBole distributes dozens
  of public sets in;
- movielens_100k: MovieLens-100K's `u.data` (tab-separated user, item, rating, timestamp);
- movielens_1m: MovieLens-1M's `ratings.dat` (`UserID::MovieID::Rating::Timestamp`);
- csv, parquet: any table, its columns named in the config;
- userbehavior: Taobao's UserBehavior.csv (the behaviour types in the config's `behaviors`).
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from common.errors import MDAFError
from data_prep.next_item.config import FORMATS, NextItemConfig
from data_prep.raw_files import USER_BEHAVIOR, RawFile, explain_read_error, scan_raw
from data_prep.userbehavior import BTAGS

log = logging.getLogger(__name__)

COLUMNS = ("user", "item", "time", "rating")
EXPECTED = ("an interactions file (a RecBole .inter, MovieLens u.data or ratings.dat, a CSV or Parquet of user, "
            "item, time, or UserBehavior.csv)")
# the delimited formats without a header: separator and fields
FIXED = {"movielens_100k": ("\t", ["user", "item", "rating", "timestamp"]),
         "movielens_1m": ("::", ["UserID", "MovieID", "Rating", "Timestamp"])}


def format_of(name: str) -> str | None:
    """The reader `auto` picks for a file called `name`; None when the name does not tell."""
    name = name.lower()
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
    return None


def detect_format(path: Path) -> str:
    """The reader `auto` picks for `path`, by its name."""
    fmt = format_of(path.name)
    if fmt is None:
        raise MDAFError(f"{path}: cannot tell its format from its name (*.inter, u.data, ratings.dat, "
                        "UserBehavior.csv, *.csv or *.parquet); rename it, or set the experiment config's key "
                        f"data.prep.format to one of {', '.join(FORMATS[1:])}")
    return fmt


def require_interactions_file(path: Path) -> None:
    """MDAFError unless `path` is a file, naming what --data expects (and, for a folder, the
    interaction files in it)."""
    if path.is_file():
        return
    if not path.is_dir():
        raise MDAFError(f"{path}: interactions file not found; --data expects {EXPECTED}")
    found = sorted(p.name for p in path.iterdir() if p.is_file() and format_of(p.name))
    hint = f": pass {path / found[0]}" if len(found) == 1 else f" (it holds {found[:5]})" if found else ""
    raise MDAFError(f"{path}: a folder, but --data expects {EXPECTED}{hint}")


def read_interactions(path: str | Path, cfg: NextItemConfig) -> tuple[pl.DataFrame, dict[str, int]]:
    """The interactions of `path` (module docstring), UserBehavior types outside `cfg.behaviors`
    and ratings below `cfg.min_rating` dropped; and the rows left out, counted by reason."""
    path = Path(path)
    require_interactions_file(path)
    fmt = detect_format(path) if cfg.format == "auto" else cfg.format
    try:
        frame = READERS[fmt](path, cfg).with_row_index("row").collect()
    except pl.exceptions.PolarsError as exc:
        raise _read_error(exc, path, fmt, cfg) from None
    for column in ("user", "item", "time"):
        if frame[column].null_count():
            raise MDAFError(f"{path}: column {column!r} has empty values; every interaction needs a user, an item "
                            "and a time")
    if frame.height == 0:
        raise MDAFError(f"{path}: no interactions")
    drops: dict[str, int] = {}
    if fmt == "userbehavior":
        frame = _kept_behaviors(frame, path, cfg, drops)
    if cfg.min_rating is not None:
        if frame["rating"].null_count() == frame.height:
            raise MDAFError(f"{path}: 'min_rating' is set but the file has no ratings")
        kept = frame.filter(pl.col("rating") >= cfg.min_rating)
        drops["rating below 'min_rating'"] = frame.height - kept.height
        frame = kept
    return frame.select("row", *COLUMNS), drops


def _kept_behaviors(frame: pl.DataFrame, path: Path, cfg: NextItemConfig, drops: dict[str, int]) -> pl.DataFrame:
    """The rows of the types in `cfg.behaviors`; the others counted in `drops`, unknown types
    (not one of BTAGS: `click`, `PV`) with a warning naming them."""
    types = dict(frame["behavior"].value_counts(sort=True).iter_rows())
    unknown = {t: n for t, n in types.items() if t not in BTAGS}
    drops[f"unknown behaviour type (not one of {', '.join(BTAGS)})"] = sum(unknown.values())
    if unknown:
        log.warning("%s: %d row(s) of unknown behaviour type(s) dropped: %s (expected %s)", path,
                    sum(unknown.values()), dict(list(unknown.items())[:5]), BTAGS)
    kept = frame.filter(pl.col("behavior").is_in(cfg.behaviors))
    drops["behaviour type left out by 'behaviors'"] = frame.height - kept.height - sum(unknown.values())
    if kept.height == 0:
        raise MDAFError(f"{path}: no rows of the behaviour types kept ('behaviors' {cfg.behaviors}); its types are "
                        f"{dict(list(types.items())[:5])}")
    return kept


def _read_error(exc: pl.exceptions.PolarsError, path: Path, fmt: str, cfg: NextItemConfig) -> MDAFError:
    """A Polars error met reading `path` as `fmt`, as one line naming the file and, for delimited
    text, the first line with the wrong number of fields."""
    if fmt == "userbehavior":
        return explain_read_error(exc, path.parent, [_userbehavior_file(path)])
    layout = _layout(path, fmt, cfg)
    bad = _bad_line(path, fmt, *layout) if layout is not None else None
    return bad or MDAFError(f"{path}: cannot read it as {fmt} ({str(exc).strip().splitlines()[0]})")


def _layout(path: Path, fmt: str, cfg: NextItemConfig) -> tuple[str, list[str], int] | None:
    """(separator, field names, header lines) of a delimited text format; None for Parquet."""
    if fmt in FIXED:
        return (*FIXED[fmt], 0)
    if fmt in ("atomic", "csv"):
        separator = "\t" if fmt == "atomic" else cfg.separator
        return separator, _header(path, separator), 1
    return None


def _bad_line(path: Path, fmt: str, separator: str, names: list[str], skip: int) -> MDAFError | None:
    """The first non-empty line after the header whose number of fields is not len(names), as an
    error naming it; None when there is none."""
    for number, line in enumerate(_lines(path), 1):
        n = len(line.split(separator))
        if number > skip and line and n != len(names):
            shown = {"\t": "tab", ",": "comma"}.get(separator, repr(separator))
            return MDAFError(f"{path}: line {number} has {n} {shown}-separated field(s), expected {len(names)} "
                             f"({', '.join(names)}) as format {fmt} is written: {line[:100]!r}")
    return None


def _lines(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for line in fh:
            yield line.rstrip("\r\n")


def _header(path: Path, separator: str) -> list[str]:
    return next(_lines(path), "").split(separator)


def _typed(lf: pl.LazyFrame, user: str, item: str, time: str, rating: str | None, **extra: pl.Expr) -> pl.LazyFrame:
    schema = lf.collect_schema()

    def number(column: str) -> pl.Expr:
        value = pl.col(column)
        return (value.str.strip_chars() if schema[column] == pl.String else value).cast(pl.Float64)

    return lf.select(user=pl.col(user).cast(pl.String).str.strip_chars(),
                     item=pl.col(item).cast(pl.String).str.strip_chars(), time=number(time),
                     rating=number(rating) if rating else pl.lit(None, dtype=pl.Float64), **extra)


def _atomic(path: Path, cfg: NextItemConfig) -> pl.LazyFrame:
    header = _header(path, "\t")
    if len(header) == 1 and len(header[0].split()) > 1:
        raise MDAFError(f"{path}: the atomic header must be tab-separated (RecBole's format: one tab between "
                        f"fields such as user_id:token, item_id:token, timestamp:float), got {header[0]!r}")
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


def _userbehavior_file(path: Path) -> RawFile:
    """UserBehavior.csv's layout under the name `path` has (`userbehavior.csv` is the same file type)."""
    return dataclasses.replace(USER_BEHAVIOR, name=path.name)


def _userbehavior(path: Path, cfg: NextItemConfig) -> pl.LazyFrame:
    lf = scan_raw(path.parent, _userbehavior_file(path))
    return _typed(lf, "user_id", "item_id", "timestamp", None, behavior=pl.col("behavior_type").str.strip_chars())


READERS = {"atomic": _atomic, "movielens_100k": _movielens_100k, "movielens_1m": _movielens_1m,
           "csv": _csv, "parquet": _parquet, "userbehavior": _userbehavior}
