"""User timelines and the pointers that index them.

A timeline holds every behaviour of every user, grouped by user and ordered by time within a
user. A sample does not copy its history; it stores the row range [start, end) of its user's
behaviours strictly before its own time:

    start = first row of the user,   end = first row of the user with time >= t_sample.

Timelines are written bucket by bucket as NumPy chunks, then joined into one `.npy` per field so
the loader can memory-map them.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl

_TIME_BITS = 32
RAW_SUFFIX = "_raw"


def raw_column(field: str) -> str:
    """The column (and batch key suffix) holding the raw ids of `field`: `item` -> `item_raw`."""
    return field + RAW_SUFFIX


def history_pointers(tl_user: np.ndarray, tl_time: np.ndarray, user: np.ndarray,
                     time: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row ranges [start, end) of each sample's behaviours strictly before its time.

    tl_user, tl_time: (N,) the timeline, sorted by (user, time).
    user, time: (S,) the samples (fastest when sorted by (user, time) too).
    Returns start, end: (S,) int64 rows into the timeline (start == end: no history).
    Each user's block is found by binary search over the block heads; within the block, `end` is
    the first row with time >= the sample's time (binary search over time offsets packed below
    the block number: key = block << 32 | time - t0).
    """
    if len(tl_user) == 0 or len(user) == 0:
        return np.zeros(len(user), np.int64), np.zeros(len(user), np.int64)
    heads = np.flatnonzero(np.r_[True, tl_user[1:] != tl_user[:-1]])
    block_users = tl_user[heads]
    block = np.minimum(np.searchsorted(block_users, user), len(heads) - 1)
    known = block_users[block] == user  # users with no behaviour get the empty range [0, 0)
    t0 = min(int(tl_time.min()), int(time.min()))
    if max(int(tl_time.max()), int(time.max())) - t0 >= 2**_TIME_BITS:
        raise ValueError("timestamps span more than 2^32 seconds")
    tl_block = np.repeat(np.arange(len(heads), dtype=np.int64), np.diff(np.r_[heads, len(tl_user)]))
    tl_key = (tl_block << _TIME_BITS) | (tl_time - t0)
    key = (block.astype(np.int64) << _TIME_BITS) | (time - t0)
    start = np.where(known, heads[block], 0).astype(np.int64)
    end = np.where(known, np.searchsorted(tl_key, key, side="left"), 0).astype(np.int64)
    return start, end


def reachable(log: pl.DataFrame, samples: pl.DataFrame, user: str, time: str) -> tuple[pl.DataFrame, int, int]:
    """The rows of one bucket's `log` (columns `user`, `time`) that some sample can read: those of
    users with a sample, before the user's last one; and how many rows belong to users without a
    sample, and how many come after the user's last. `samples` has columns user_id and time."""
    last = samples.group_by("user_id").agg(last=pl.col("time").max())
    known = log.join(last, left_on=user, right_on="user_id", how="inner")
    used = known.filter(pl.col(time) < pl.col("last"))
    return used, log.height - known.height, known.height - used.height


def point_samples(samples: pl.DataFrame, histories: dict[str, pl.DataFrame],
                  timelines: dict[str, "TimelineWriter"]) -> pl.DataFrame:
    """Store one bucket's `histories[name]` in `timelines[name]`, and return its `samples` (sorted by
    user_id and time) with the pointers `<name>_start` and `<name>_end` into each."""
    user, time = samples["user_id"].to_numpy(), samples["time"].to_numpy()
    pointers = {}
    for name, writer in timelines.items():
        frame, offset = writer.add(histories[name])
        start, end = history_pointers(frame["user_id"].to_numpy(), frame["time"].to_numpy(), user, time)
        pointers[f"{name}_start"], pointers[f"{name}_end"] = start + offset, end + offset
    return samples.with_columns(**{k: pl.Series(v) for k, v in pointers.items()})


class TimelineWriter:
    """Collects one timeline bucket by bucket, then writes `timelines/<name>/<field>.npy`.

    Every bucket's frame must hold `user_id`, `time`, the index fields and `<f>_raw` for each of
    `raw_ids` (the raw ids of fields a candidate can match); rows are sorted here.
    """

    def __init__(self, work_dir: Path, name: str, fields: list[str], raw_ids: list[str]) -> None:
        self.name = name
        self.columns = ["user_id", "time", *fields, *(raw_column(f) for f in raw_ids)]
        self.rows = 0
        self._chunks = work_dir / f"timeline_{name}"
        self._chunks.mkdir(parents=True, exist_ok=True)
        self._n_chunks = 0

    def add(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
        """Sort one bucket's rows, store them, and return (sorted frame, its first global row)."""
        frame = frame.select(self.columns).sort(self.columns)
        offset = self.rows
        frame.write_ipc(self._chunks / f"{self._n_chunks:05d}.arrow", compression="uncompressed")
        self._n_chunks += 1
        self.rows += frame.height
        return frame, offset

    def finish(self, out_dir: Path) -> int:
        """Join the chunks into one memory-mappable array per field; returns the row count."""
        target = out_dir / "timelines" / self.name
        target.mkdir(parents=True, exist_ok=True)
        chunks = sorted(self._chunks.glob("*.arrow"))
        for column in self.columns:
            dtype = np.int64 if column in ("user_id", "time") or column.endswith(RAW_SUFFIX) else np.int32
            array = np.lib.format.open_memmap(target / f"{column}.npy", mode="w+", dtype=dtype,
                                              shape=(self.rows,))
            at = 0
            for chunk in chunks:
                values = pl.read_ipc(chunk, columns=[column])[column].to_numpy()
                array[at: at + len(values)] = values
                at += len(values)
            array.flush()
            del array
        shutil.rmtree(self._chunks)
        return self.rows
