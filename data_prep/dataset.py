"""Read a processed dataset directory (docs/data_format.md, schema version 1).

`ProcessedDataset(root)` checks `meta.json` up front, then loads splits and timelines lazily and
caches them: a split's sample columns go into memory (`SplitTable`), a timeline's fields stay
memory-mapped (`np.load(..., mmap_mode="r")`), so a timeline larger than memory can be indexed.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from common.errors import MDAFError
from data_prep.samples import SPLITS
from data_prep.timeline import raw_column

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: raw ids of the candidate and history fields beside their indices
REQUIRED_META_KEYS = ("schema_version", "vocab_sizes", "static_fields", "timelines")


@dataclass
class SplitTable:
    """The sample columns of one split, as NumPy arrays of N rows (stored dtypes kept).

    label: (N,) int8; time: (N,) int64; user_id: (N,) int64;
    static: column -> (N,) int32; start, end: timeline -> (N,) int64 ([start, end) rows);
    raw: field -> (N,) int64 raw ids of the candidate (meta.json `raw_ids`; -1 where missing);
    oracle_p: (N,) float32, or None when the dataset is not synthetic.
    """

    name: str
    label: np.ndarray
    time: np.ndarray
    user_id: np.ndarray
    static: dict[str, np.ndarray]
    start: dict[str, np.ndarray]
    end: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]
    oracle_p: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def take(self, rows: np.ndarray) -> "SplitTable":
        """The samples at `rows` (indices into this split), in that order."""
        def pick(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {k: v[rows] for k, v in columns.items()}

        return SplitTable(self.name, self.label[rows], self.time[rows], self.user_id[rows], pick(self.static),
                          pick(self.start), pick(self.end), pick(self.raw),
                          None if self.oracle_p is None else self.oracle_p[rows])


class ProcessedDataset:
    """A processed dataset directory: `meta.json`, `samples/<split>.parquet`, `timelines/<name>/<field>.npy`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.meta = self._read_meta()
        for split in SPLITS:  # found missing now, not after a training run
            if not (self.root / "samples" / f"{split}.parquet").is_file():
                raise MDAFError(f"{self.root / 'samples' / (split + '.parquet')}: missing; a processed dataset "
                                f"has the splits {list(SPLITS)} (rebuild it with python -m data_prep)")
        self._splits: dict[str, SplitTable] = {}
        self._timelines: dict[str, dict[str, np.ndarray]] = {}

    def fingerprint(self) -> dict:
        """What identifies this dataset's content: a hash of meta.json (its inputs, vocabulary sizes
        and row counts), the vocabulary sizes and the rows per split. A checkpoint stores it, so a
        dataset rebuilt in place is never taken for the one a model was trained on."""
        return {"meta_sha256": self.meta_sha256, "vocab_sizes": self.vocab_sizes,
                "rows": {split: len(self.split(split)) for split in SPLITS}}

    @property
    def meta_sha256(self) -> str:
        """The hash of meta.json: what the dataset was built from, its vocabulary sizes and rows."""
        return hashlib.sha256((self.root / "meta.json").read_bytes()).hexdigest()

    @property
    def prepared_from(self) -> str:
        """The interactions file (next-item) or raw folder (CTR) it was prepared from; "" if unknown."""
        meta = self.meta
        return (meta.get("inputs") or {}).get("input") or meta.get("input") or meta.get("raw_dir") or ""

    # ----- meta -----
    def _read_meta(self) -> dict:
        path = self.root / "meta.json"
        if not path.is_file():
            raise MDAFError(f"{path}: missing; expected the meta.json of a processed dataset (docs/data_format.md)")
        try:
            meta = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MDAFError(f"{path}: cannot read it as JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise MDAFError(f"{path}: expected a JSON object, got {type(meta).__name__}")
        for key in REQUIRED_META_KEYS:
            if key not in meta:
                raise MDAFError(f"{path}: missing key {key!r}")
        if meta["schema_version"] != SCHEMA_VERSION:
            raise MDAFError(
                f"{path}: key 'schema_version' is {meta['schema_version']!r}; this code reads {SCHEMA_VERSION}"
            )
        vocab = meta["vocab_sizes"]
        spaces = dict(meta["static_fields"])
        for tl_name, tl in meta["timelines"].items():
            if not isinstance(tl, dict) or "fields" not in tl:
                raise MDAFError(f"{path}: missing key 'timelines.{tl_name}.fields'")
            spaces.update({f"timelines.{tl_name}.{f}": s for f, s in tl["fields"].items()})
        for column, space in spaces.items():
            if space not in vocab:
                raise MDAFError(f"{path}: field {column!r} uses vocabulary {space!r}, missing from key 'vocab_sizes'")
        return meta

    @property
    def static_fields(self) -> dict[str, str]:
        """Static column -> vocabulary space."""
        return dict(self.meta["static_fields"])

    @property
    def vocab_sizes(self) -> dict[str, int]:
        """Vocabulary space -> size (indices 0 .. size-1; 0 = padding, 1 = out of vocabulary)."""
        return {k: int(v) for k, v in self.meta["vocab_sizes"].items()}

    @property
    def timeline_names(self) -> list[str]:
        return list(self.meta["timelines"])

    def timeline_fields(self, name: str) -> dict[str, str]:
        """Index field -> vocabulary space for timeline `name` (excludes `user_id` and `time`)."""
        return dict(self._timeline_meta(name)["fields"])

    @property
    def raw_ids(self) -> list[str]:
        """Candidate fields whose raw ids the samples hold (`<field>_raw`)."""
        return list(self.meta.get("raw_ids", []))

    def timeline_raw_ids(self, name: str) -> list[str]:
        """Fields of timeline `name` whose raw ids it holds (`<field>_raw.npy`)."""
        return list(self._timeline_meta(name).get("raw_ids", []))

    def _timeline_meta(self, name: str) -> dict:
        if name not in self.meta["timelines"]:
            raise MDAFError(f"{self.root / 'meta.json'}: no timeline {name!r}; available: {self.timeline_names}")
        return self.meta["timelines"][name]

    # ----- splits -----
    @property
    def split_names(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "samples").glob("*.parquet"))

    def split(self, name: str) -> SplitTable:
        """The sample columns of split `name`, loaded once and cached."""
        if name not in self._splits:
            self._splits[name] = self._load_split(name)
        return self._splits[name]

    def _load_split(self, name: str) -> SplitTable:
        path = self.root / "samples" / f"{name}.parquet"
        if not path.is_file():
            raise MDAFError(f"{path}: no split {name!r}; available: {self.split_names}")
        try:
            schema = pl.read_parquet_schema(path)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise MDAFError(f"{path}: not a readable Parquet file ({_first_line(exc)}); rebuild the dataset "
                            "with python -m data_prep") from None
        static = list(self.static_fields)
        pointers = [f"{t}_{side}" for t in self.timeline_names for side in ("start", "end")]
        raw = [raw_column(f) for f in self.raw_ids]
        wanted = ["label", "time", "user_id", *static, *pointers, *raw]
        missing = [c for c in wanted if c not in schema]
        if missing:
            raise MDAFError(f"{path}: missing column(s) {missing}")
        if "oracle_p" in schema:
            wanted.append("oracle_p")
        try:
            frame = pl.read_parquet(path, columns=wanted)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise MDAFError(f"{path}: not a readable Parquet file ({_first_line(exc)}); rebuild the dataset "
                            "with python -m data_prep") from None
        nulls = [c for c in wanted if frame[c].null_count()]
        if nulls:
            raise MDAFError(f"{path}: column(s) {nulls} contain nulls; expected none")

        def col(c: str, dtype: type) -> np.ndarray:
            return np.ascontiguousarray(frame[c].to_numpy(), dtype=dtype)

        table = SplitTable(
            name=name,
            label=col("label", np.int8),
            time=col("time", np.int64),
            user_id=col("user_id", np.int64),
            static={c: col(c, np.int32) for c in static},
            start={t: col(f"{t}_start", np.int64) for t in self.timeline_names},
            end={t: col(f"{t}_end", np.int64) for t in self.timeline_names},
            raw={f: col(raw_column(f), np.int64) for f in self.raw_ids},
            oracle_p=col("oracle_p", np.float32) if "oracle_p" in frame.columns else None,
        )
        log.info("dataset %s: split %s, %d samples", self.root, name, len(table))
        return table

    # ----- timelines -----
    def timeline(self, name: str) -> dict[str, np.ndarray]:
        """Field -> (rows,) memory-mapped array for timeline `name`: `user_id`, `time` and its index fields."""
        if name not in self._timelines:
            self._timelines[name] = self._load_timeline(name)
        return self._timelines[name]

    def _load_timeline(self, name: str) -> dict[str, np.ndarray]:
        tl_meta = self._timeline_meta(name)
        folder = self.root / "timelines" / name
        arrays: dict[str, np.ndarray] = {}
        for field in ("user_id", "time", *tl_meta["fields"], *map(raw_column, tl_meta.get("raw_ids", []))):
            path = folder / f"{field}.npy"
            if not path.is_file():
                raise MDAFError(f"{path}: missing; timeline {name!r} needs field {field!r}")
            try:
                arr = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise MDAFError(f"{path}: cannot read it as a NumPy array ({exc})") from None
            if arr.ndim != 1:
                raise MDAFError(f"{path}: expected a 1-D array, got shape {arr.shape}")
            arrays[field] = arr
        lengths = {f: a.shape[0] for f, a in arrays.items()}
        expected = int(tl_meta.get("rows", lengths["time"]))
        if any(n != expected for n in lengths.values()):
            raise MDAFError(
                f"{folder}: field lengths {lengths} differ; expected {expected} rows each "
                f"(key 'timelines.{name}.rows' of meta.json)"
            )
        return arrays


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
