"""The raw Tianchi files: their expected columns, and a scan that checks them before trusting them.

`scan_raw` returns a lazy Polars scan with the documented column names and types. A missing or
empty file, a missing or renamed column, or a value of the wrong type raises MDAFError naming
the file, the column and an example of the bad row. Stray spaces around header names (the real
user_profile.csv ends with `new_user_class_level `) are tolerated.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from common.errors import MDAFError


@dataclass(frozen=True)
class RawFile:
    """One raw file: its name, columns in the documented order, and how it is written."""

    name: str
    columns: dict[str, pl.DataType]
    has_header: bool = True
    null_values: tuple[str, ...] = ()


RAW_SAMPLE = RawFile("raw_sample.csv", {
    "user": pl.Int64, "time_stamp": pl.Int64, "adgroup_id": pl.Int64, "pid": pl.String,
    "nonclk": pl.Int64, "clk": pl.Int64})
AD_FEATURE = RawFile("ad_feature.csv", {
    "adgroup_id": pl.Int64, "cate_id": pl.Int64, "campaign_id": pl.Int64, "customer": pl.Int64,
    "brand": pl.Int64, "price": pl.Float64}, null_values=("NULL",))
USER_PROFILE = RawFile("user_profile.csv", {
    "userid": pl.Int64, "cms_segid": pl.Int64, "cms_group_id": pl.Int64,
    "final_gender_code": pl.Int64, "age_level": pl.Int64, "pvalue_level": pl.Int64,
    "shopping_level": pl.Int64, "occupation": pl.Int64, "new_user_class_level": pl.Int64})
BEHAVIOR_LOG = RawFile("behavior_log.csv", {
    "user": pl.Int64, "time_stamp": pl.Int64, "btag": pl.String, "cate": pl.Int64,
    "brand": pl.Int64}, null_values=("NULL",))
RAW_SAMPLE_ORACLE = RawFile("raw_sample_oracle.csv", {
    "user": pl.Int64, "time_stamp": pl.Int64, "p": pl.Float64})
USER_BEHAVIOR = RawFile("UserBehavior.csv", {
    "user_id": pl.Int64, "item_id": pl.Int64, "category_id": pl.Int64,
    "behavior_type": pl.String, "timestamp": pl.Int64}, has_header=False)
USER_BEHAVIOR_ORACLE = RawFile("UserBehavior_oracle.csv", {
    "user_id": pl.Int64, "timestamp": pl.Int64, "p": pl.Float64})

_PARSE_ERROR = re.compile(r"could not parse `(?P<value>.*?)` as dtype `(?P<dtype>[^`]+)` "
                          r"at column '(?P<column>[^']+)'", re.DOTALL)


def _first_lines(path: Path, n: int) -> list[str]:
    with open(path, "rb") as fh:
        lines = [fh.readline() for _ in range(n)]
    return [line.decode("utf-8", errors="replace").rstrip("\r\n") for line in lines]


def _file_columns(path: Path, spec: RawFile) -> list[str]:
    """The file's column names in file order (header names stripped of stray spaces)."""
    if not path.is_file():
        raise MDAFError(f"{path}: file not found (expected the raw {spec.name})")
    first, second = _first_lines(path, 2)
    if path.stat().st_size == 0 or not first.strip():
        raise MDAFError(f"{path}: file is empty (expected {spec.name} with columns {list(spec.columns)})")
    if spec.has_header and not second.strip():
        raise MDAFError(f"{path}: no rows after the header (expected at least one row)")
    cells = first.split(",")
    expected = list(spec.columns)
    if not spec.has_header:
        if len(cells) != len(expected):
            raise MDAFError(f"{path}: expected {len(expected)} comma-separated columns "
                            f"({', '.join(expected)}) and no header, got {len(cells)} in line 1: {first!r}")
        if not cells[0].strip().lstrip("-").isdigit():
            raise MDAFError(f"{path}: expected no header row (columns {', '.join(expected)}), "
                            f"but line 1 looks like one: {first!r}")
        return expected
    names = [c.strip() for c in cells]
    missing = [c for c in expected if c not in names]
    if missing:
        extra = [n for n in names if n not in expected]
        hint = f"; found unexpected {extra}" if extra else ""
        raise MDAFError(f"{path}: missing column(s) {missing} in the header {names}{hint}")
    return names


def scan_raw(raw_dir: Path, spec: RawFile) -> pl.LazyFrame:
    """Lazily scan `raw_dir/spec.name` with the documented names and types.

    Columns may come in any order; extra columns are dropped. Type errors surface when the
    scan is collected: wrap that in `explain_read_error`.
    """
    path = Path(raw_dir) / spec.name
    names = _file_columns(path, spec)
    schema = {n: spec.columns.get(n, pl.String) for n in names}
    if len(set(names)) != len(names):
        raise MDAFError(f"{path}: duplicate column names in the header {names}")
    # The header was checked above; skipping it lets stripped names stand for stray-spaced ones.
    lf = pl.scan_csv(path, has_header=False, skip_lines=int(spec.has_header), schema=schema,
                     null_values=list(spec.null_values) or None)
    return lf.select(list(spec.columns))


def explain_read_error(exc: Exception, raw_dir: Path, specs: list[RawFile]) -> MDAFError:
    """Turn a Polars error met while reading raw files into an MDAFError naming the file.

    A value of the wrong type is reported with its column, line number and row; a malformed
    file (a row with too many fields, an unclosed quote) with the file and Polars' reason.
    """
    match = _PARSE_ERROR.search(str(exc))
    for spec in specs:
        path = Path(raw_dir) / spec.name
        if not path.is_file() or (match is not None and match["column"] not in spec.columns):
            continue
        names = _file_columns(path, spec)
        text = pl.scan_csv(path, has_header=False, skip_lines=int(spec.has_header),
                           schema={n: pl.String for n in names},
                           null_values=list(spec.null_values) or None).with_row_index("row")
        try:
            if match is None:  # a malformed file: find which one by parsing each as text
                text.select(pl.all().max()).collect(engine="streaming")
                continue
            column, value = match["column"], match["value"]
            bad = text.filter(pl.col(column).str.strip_chars() == value).head(1).collect()
        except pl.exceptions.PolarsError as err:
            return MDAFError(f"{path}: not a well-formed {spec.name}: {_first_line(err)}")
        if bad.height:
            line = int(bad["row"][0]) + 1 + int(spec.has_header)
            row = ",".join("" if v is None else str(v) for v in bad.drop("row").row(0))
            return MDAFError(f"{path}: column '{column}' expected {_kind(spec.columns[column])}, "
                             f"got {value!r} at line {line}: {row}")
    return MDAFError(f"{raw_dir}: could not read the raw files: {_first_line(exc)}")


def _first_line(exc: Exception) -> str:
    """The first paragraph of Polars' message, on one line."""
    return str(exc).strip().split("\n\n")[0].replace("\n", "\\n") or type(exc).__name__


def _kind(dtype: pl.DataType) -> str:
    return "an integer" if dtype.is_integer() else "a number" if dtype.is_float() else "text"
