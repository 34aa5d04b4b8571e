"""The raw Tianchi files: their expected columns, and a scan that checks them before trusting them.

`scan_raw` returns a lazy Polars scan with the documented column names and types. A missing or
empty file, a missing or renamed column, or a value of the wrong type raises MDAFError naming
the file, the column and an example of the bad row. Files as users have them are read as they
are: stray spaces around header names (the real user_profile.csv ends with
`new_user_class_level `), a UTF-8 byte-order mark, and fully quoted cells. The generic source
(data_prep/generic/) describes its files with the same `RawFile`: any separator, a header or a
list of names, or a Parquet file. A compressed download
(`behavior_log.csv.gz`, the Tianchi `.tar.gz` archives) is named with the command that unpacks
it: the pipeline streams plain CSV, which a compressed file cannot be without holding it whole.
A last line with no newline after it is a download cut short mid-row (`last_line_cut`): the
pipelines drop it and count it.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from common.errors import MDAFError
from data_prep import checks


@dataclass(frozen=True)
class RawFile:
    """One raw file: its name, columns in the documented order, and how it is written.

    names: a file without a header: every column's name in file order (default: `columns`).
    keys: column -> the schema key that declared it (generic source), named in errors.
    A name ending in `.parquet` is read as Parquet (no separator, header or text cells).
    """

    name: str
    columns: dict[str, pl.DataType]
    has_header: bool = True
    null_values: tuple[str, ...] = ()
    separator: str = ","
    names: tuple[str, ...] = ()
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def parquet(self) -> bool:
        return self.name.endswith(".parquet")

    def where(self, column: str) -> str:
        """' (schema key ...)' for a column a schema declared, else ''."""
        return f" (schema key {self.keys[column]})" if column in self.keys else ""


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

# the files each source reads (its oracle file only on synthetic data)
SOURCE_FILES = {"taobao_ad": (RAW_SAMPLE, AD_FEATURE, USER_PROFILE, BEHAVIOR_LOG, RAW_SAMPLE_ORACLE),
                "userbehavior": (USER_BEHAVIOR, USER_BEHAVIOR_ORACLE)}
# compressed forms of a raw file, and the command that unpacks each into the raw folder
UNPACK = {".tar.gz": "tar -xzf {f} -C {d}", ".tgz": "tar -xzf {f} -C {d}", ".tar": "tar -xf {f} -C {d}",
          ".gz": "gunzip -k {f}", ".zip": "unzip {f} -d {d}", ".bz2": "bunzip2 -k {f}", ".xz": "unxz -k {f}",
          ".zst": "unzstd {f}"}

_PARSE_ERROR = re.compile(r"could not parse `(?P<value>.*?)` as dtype `(?P<dtype>[^`]+)` "
                          r"at column '(?P<column>[^']+)'", re.DOTALL)


def _first_lines(path: Path, n: int) -> list[str]:
    with open(path, "rb") as fh:
        lines = [fh.readline() for _ in range(n)]
    return [line.decode("utf-8", errors="replace").rstrip("\r\n") for line in lines]


def compressed_copy(raw_dir: Path, name: str) -> Path | None:
    """A compressed download of raw file `name` in `raw_dir` (`name.gz`, `stem.tar.gz`, ...), if any."""
    stem = name.rsplit(".", 1)[0]
    for base in (name, stem):
        for ext in UNPACK:
            if (Path(raw_dir) / (base + ext)).is_file():
                return Path(raw_dir) / (base + ext)
    return None


def unpack_hint(packed: Path, name: str) -> MDAFError:
    """'<file>: compressed; unpack it first (<command>)', for a raw file found only compressed."""
    ext = next(e for e in UNPACK if packed.name.endswith(e))
    command = UNPACK[ext].format(f=packed, d=packed.parent)
    return MDAFError(f"{packed}: compressed; unpack it first ({command}) so that {packed.parent / name} "
                     "exists: the pipeline streams plain CSV files")


def require_file(raw_dir: Path, spec: RawFile) -> Path:
    """The path of `spec` in `raw_dir`; not found is an MDAFError, with the unpack command when only
    a compressed copy is there."""
    path = Path(raw_dir) / spec.name
    if not path.is_file():
        packed = compressed_copy(raw_dir, spec.name)
        if packed is not None:
            raise unpack_hint(packed, spec.name)
        raise MDAFError(f"{path}: file not found (expected the raw {spec.name})")
    return path


def last_line_cut(path: Path) -> bool:
    """True when `path` does not end with a newline: its last row was cut short (a download that
    stopped mid-row) or, rarely, written without one; either way it cannot be trusted whole."""
    with open(path, "rb") as fh:
        if fh.seek(0, os.SEEK_END) == 0:
            return False
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) != b"\n"


def _cells(line: str, separator: str) -> list[str]:
    """The cells of a line, without a byte-order mark, quotes or stray spaces."""
    return [c.strip().strip('"').strip() for c in line.lstrip("\ufeff").split(separator)]


def _separated(separator: str) -> str:
    return {",": "comma-separated", "\t": "tab-separated"}.get(separator, f"{separator!r}-separated")


def _file_columns(path: Path, spec: RawFile) -> list[str]:
    """The file's column names in file order (header names stripped of stray spaces and quotes)."""
    require_file(path.parent, spec)
    if spec.parquet:
        try:
            names = list(pl.read_parquet_schema(path))
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise MDAFError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None
        return _require_columns(path, spec, names, "the Parquet file's columns")
    first, second = _first_lines(path, 2)
    if path.stat().st_size == 0 or not first.strip():
        raise MDAFError(f"{path}: file is empty (expected {spec.name} with columns {list(spec.columns)})")
    if spec.has_header and not second.strip():
        raise MDAFError(f"{path}: no rows after the header (expected at least one row)")
    cells = _cells(first, spec.separator)
    expected = list(spec.names or spec.columns)
    if not spec.has_header:
        if len(cells) != len(expected):
            raise MDAFError(f"{path}: expected {len(expected)} {_separated(spec.separator)} columns "
                            f"({', '.join(expected)}) and no header, got {len(cells)} in line 1: {first!r}")
        if spec.columns.get(expected[0], pl.String).is_integer() and not cells[0].lstrip("-").isdigit():
            raise MDAFError(f"{path}: expected no header row (columns {', '.join(expected)}), "
                            f"but line 1 looks like one: {first!r}")
        return _require_columns(path, spec, expected, "the schema's names")
    return _require_columns(path, spec, cells, "the header")


def _require_columns(path: Path, spec: RawFile, names: list[str], what: str) -> list[str]:
    """`names` (the file's columns), unless one of `spec.columns` is missing from them."""
    missing = [c for c in spec.columns if c not in names]
    if missing:
        extra = [n for n in names if n not in spec.columns]
        hint = f"; found unexpected {extra}" if extra else ""
        raise MDAFError(f"{path}: missing column(s) {missing} in {what} {names}{hint}{spec.where(missing[0])}")
    return names


def scan_raw(raw_dir: Path, spec: RawFile, drop_last_line: bool = False) -> pl.LazyFrame:
    """Lazily scan `raw_dir/spec.name` with the documented names and types.

    Columns may come in any order; extra columns are dropped. `drop_last_line` leaves out the
    file's last row (one `last_line_cut` found cut short). Type errors surface when the scan is
    collected: wrap that in `explain_read_error`. A Parquet file's column types are checked here
    and cast to the documented ones (a datetime becomes Unix seconds).
    """
    path = Path(raw_dir) / spec.name
    names = _file_columns(path, spec)
    if spec.parquet:
        return _scan_parquet(path, spec)
    schema = {n: spec.columns.get(n, pl.String) for n in names}
    if len(set(names)) != len(names):
        raise MDAFError(f"{path}: duplicate column names in the header {names}")
    # The header was checked above; skipping it lets stripped names stand for stray-spaced ones.
    lf = pl.scan_csv(path, has_header=False, skip_lines=int(spec.has_header), schema=schema,
                     null_values=list(spec.null_values) or None, separator=spec.separator)
    if drop_last_line:
        rows = pl.scan_csv(path, has_header=False, skip_lines=int(spec.has_header), separator=spec.separator,
                           schema={n: pl.String for n in names}).select(pl.len()).collect().item()
        lf = lf.head(max(rows - 1, 0))
    return lf.select(list(spec.columns))


def _scan_parquet(path: Path, spec: RawFile) -> pl.LazyFrame:
    """The Parquet file's columns of `spec`, each cast to its documented type (checked first)."""
    file_types = pl.read_parquet_schema(path)
    columns = []
    for column, dtype in spec.columns.items():
        have = file_types[column]
        if have.is_temporal() and dtype.is_integer():
            columns.append(pl.col(column).dt.epoch("s").alias(column))
            continue
        fits = (dtype == pl.String or have == pl.Null or (dtype.is_float() and have.is_numeric())
                or (dtype.is_integer() and have.is_integer()))
        if not fits:
            raise MDAFError(f"{path}: column '{column}' expected {_kind(dtype)}, but the Parquet file "
                            f"stores it as {have}{spec.where(column)}")
        columns.append(pl.col(column).cast(dtype))
    return pl.scan_parquet(path).select(columns)


def read_keyed(raw_dir: Path, spec: RawFile, key: str) -> pl.DataFrame:
    """A small side table (ad_feature, user_profile) read whole, with its key present and unique."""
    path = Path(raw_dir) / spec.name
    table = scan_raw(raw_dir, spec).collect()
    checks.require_no_nulls(table.lazy(), [key], path)
    checks.require_unique(table.lazy(), [key], path)
    return table


def explain_read_error(exc: Exception, raw_dir: Path, specs: list[RawFile]) -> MDAFError:
    """Turn a Polars error met while reading raw files into an MDAFError naming the file.

    A value of the wrong type is reported with its column, line number and row; a malformed
    file (a row with too many fields, an unclosed quote) with the file and Polars' reason.
    """
    match = _PARSE_ERROR.search(str(exc))
    for spec in specs:
        path = Path(raw_dir) / spec.name
        if not path.is_file() or spec.parquet or (match is not None and match["column"] not in spec.columns):
            continue
        names = _file_columns(path, spec)
        text = pl.scan_csv(path, has_header=False, skip_lines=int(spec.has_header), separator=spec.separator,
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
            row = spec.separator.join("" if v is None else str(v) for v in bad.drop("row").row(0))
            return MDAFError(f"{path}: column '{column}' expected {_kind(spec.columns[column])}, "
                             f"got {value!r} at line {line}: {row}{spec.where(column)}")
    return MDAFError(f"{raw_dir}: could not read the raw files: {_first_line(exc)}")


def _first_line(exc: Exception) -> str:
    """The first paragraph of Polars' message, on one line."""
    return str(exc).strip().split("\n\n")[0].replace("\n", "\\n") or type(exc).__name__


def _kind(dtype: pl.DataType) -> str:
    return "an integer" if dtype.is_integer() else "a number" if dtype.is_float() else "text"
