"""Batches of a processed dataset as PyTorch tensors, with each sample's last L behaviours.

Everything is gathered with NumPy fancy indexing, one batch at a time (no per-sample loop), from
the in-memory sample columns and the memory-mapped timelines, then wrapped with `torch.from_numpy`.

Sharding for DistributedDataParallel (`rank`, `world_size`):
- `shuffle=True` (training): all indices are permuted (from `seed` and the epoch), then made a
  multiple of `world_size`, by repeating the first few permuted indices (default, like torch's
  DistributedSampler) or, with `drop_last`, by dropping the last few; rank r takes every
  `world_size`-th index from r. Every rank has the same number of samples and of batches, so
  DDP's collective calls line up.
- `shuffle=False` (evaluation): rank r takes the contiguous block
  `[r*N // world_size, (r+1)*N // world_size)`: no padding, so the ranks together cover every
  sample exactly once, and concatenating their predictions in rank order restores the split's
  order. Shares may differ by one sample (and the ranks' batch counts by one), which is harmless
  for evaluation but means DDP training should shuffle.
`drop_last` also drops each rank's final, incomplete batch.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import torch

from common.errors import MDAFError
from data_prep.dataset import ProcessedDataset, SplitTable
from data_prep.timeline import raw_column
from data_prep.windows import gather, history_window

log = logging.getLogger(__name__)


def batch_key(timeline: str, field: str) -> str:
    """The batch key of `field` of a timeline's window: an index field (`cate`), a raw-id field
    (`cate_raw`), or `mask`, `time_gap`, `length`; e.g. batch_key("behavior", "mask") ->
    "behavior_mask". Models read windows through this one function."""
    return f"{timeline}_{field}"


def shard_indices(
    n: int, rank: int, world_size: int, shuffle: bool, seed: int, epoch: int, drop_last: bool
) -> np.ndarray:
    """The sample indices (int64, in visiting order) that `rank` reads this epoch; see the module doc."""
    if not shuffle:
        lo, hi = rank * n // world_size, (rank + 1) * n // world_size
        return np.arange(lo, hi, dtype=np.int64)
    order = np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64)
    if world_size > 1 and n % world_size:
        total = (n // world_size) * world_size if drop_last else -(-n // world_size) * world_size
        order = np.resize(order, total)  # truncates, or repeats from the front
    return order[rank::world_size]


class BatchLoader:
    """Iterable over batches (`dict[str, torch.Tensor]`) of one split; B = batch size, L = seq_len.

    Keys: every static field (B,) int64; `label` (B,) float32; `time` (B,) int64;
    `user_id` (B,) int64; `oracle_p` (B,) float32 when the dataset has it; `F_raw` (B,) int64 the
    candidate's raw id of each field F of meta `raw_ids`; and for every timeline T and each of its
    index fields F: `T_F` (B, W) int64 (0 at pads), `T_F_raw` (B, W) int64 raw ids for the fields
    of its `raw_ids` (0 at pads), `T_mask` (B, W) bool (True at real behaviours), `T_time_gap`
    (B, W) int64 (impression time minus behaviour time in seconds, 0 at pads), `T_length` (B,)
    int64 (number of real positions). Windows are left-padded: the newest behaviour is at W-1
    (see data_prep/windows.py for why). W = min(L, the longest history in the batch): columns
    that would be padding in every row are not built, so a window of L 1,000 over histories of
    50 costs what one of 50 does (every model ignores left padding; tests check it).

    The order is fixed by (`seed`, epoch); call `set_epoch` before each epoch to reshuffle.
    `rows`: read only these samples of the split (indices into it), e.g. one per user.
    """

    def __init__(
        self,
        dataset: ProcessedDataset,
        split: str,
        seq_len: int,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        timelines: list[str] | None = None,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        rows: np.ndarray | None = None,
    ):
        for what, value, low in (("seq_len", seq_len, 1), ("batch_size", batch_size, 1), ("world_size", world_size, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise MDAFError(f"loader: {what} must be an integer >= {low}, got {value!r}")
        if not 0 <= rank < world_size:
            raise MDAFError(f"loader: rank must be in [0, {world_size}), got {rank!r}")
        self.dataset = dataset
        self.split = split
        self.seq_len = int(seq_len)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.table = dataset.split(split) if rows is None else dataset.split(split).take(rows)
        self.timelines = list(dataset.timeline_names if timelines is None else timelines)
        self._fields = {t: [*dataset.timeline_fields(t), *map(raw_column, dataset.timeline_raw_ids(t))]
                        for t in self.timelines}
        self._arrays = {t: dataset.timeline(t) for t in self.timelines}
        self._check()
        log.info(
            "loader %s: %d samples, rank %d/%d takes %d in %d batches of %d, L=%d, timelines %s",
            split, len(self.table), rank, world_size, self._share_size(), len(self), batch_size,
            seq_len, self.timelines,
        )

    def _check(self) -> None:
        """Pointers inside their timelines, and batch keys that do not collide."""
        where = self.dataset.root / "samples" / f"{self.split}.parquet"
        for t in self.timelines:
            rows = self._arrays[t]["time"].shape[0]
            start, end = self.table.start[t], self.table.end[t]
            bad = (start < 0) | (end < start) | (end > rows)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise MDAFError(
                    f"{where}: columns {t}_start/{t}_end must satisfy 0 <= start <= end <= {rows} "
                    f"(rows of timeline {t!r}); row {i} has [{start[i]}, {end[i]})"
                )
        keys = [*self.table.static, "label", "time", "user_id", "oracle_p", *map(raw_column, self.table.raw)]
        for t in self.timelines:
            keys += [batch_key(t, f) for f in [*self._fields[t], "mask", "time_gap", "length"]]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise MDAFError(f"{self.dataset.root / 'meta.json'}: field names give colliding batch keys {dup}")

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation for `epoch` (same seed and epoch -> same order, on every rank)."""
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """(n,) int64 sample indices this rank visits this epoch, in order."""
        return shard_indices(
            len(self.table), self.rank, self.world_size, self.shuffle, self.seed, self.epoch, self.drop_last
        )

    def _share_size(self) -> int:
        n, ws = len(self.table), self.world_size
        if not self.shuffle:
            return (self.rank + 1) * n // ws - self.rank * n // ws
        return n // ws if self.drop_last else -(-n // ws)

    def __len__(self) -> int:
        share = self._share_size()
        return share // self.batch_size if self.drop_last else -(-share // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self.batches()

    def batches(self, start: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        """This epoch's batches from batch number `start` on (to resume inside an epoch)."""
        order = self.indices()
        for b in range(start, len(self)):
            yield self.batch(order[b * self.batch_size : (b + 1) * self.batch_size])

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        """The batch of samples `idx` ((B,) int indices into the split)."""
        return make_batch(self.table, idx, self._arrays, self._fields, self.seq_len)


def make_batch(t: SplitTable, idx: np.ndarray, arrays: dict[str, dict[str, np.ndarray]],
               fields: dict[str, list[str]], seq_len: int) -> dict[str, torch.Tensor]:
    """The batch (keys of `BatchLoader`) of samples `idx` of table `t`, whose pointers index the
    timelines `arrays` (name -> field -> (rows,), with `time`); `fields`: the timeline fields read.
    The one place batches are built: the loader's, and the scoring service's (serving/scorer.py)."""
    idx = np.asarray(idx, dtype=np.int64)
    time = t.time[idx]  # (B,) int64, a copy
    out = {name: torch.from_numpy(col[idx].astype(np.int64)) for name, col in t.static.items()}
    out["label"] = torch.from_numpy(t.label[idx].astype(np.float32))
    out["time"] = torch.from_numpy(time)
    out["user_id"] = torch.from_numpy(t.user_id[idx])
    if t.oracle_p is not None:
        out["oracle_p"] = torch.from_numpy(t.oracle_p[idx].astype(np.float32, copy=False))
    for field, column in t.raw.items():
        out[raw_column(field)] = torch.from_numpy(column[idx])
    for name, timeline in arrays.items():
        start, end = t.start[name][idx], t.end[name][idx]
        width = int(min(seq_len, (end - start).max(initial=1)))  # at least 1 column
        rows, mask = history_window(start, end, width)  # (B, W)
        for field in fields[name]:
            out[batch_key(name, field)] = torch.from_numpy(gather(timeline[field], rows, mask, np.int64))
        gap = gather(timeline["time"], rows, mask, np.int64)  # behaviour times, 0 at pads
        np.subtract(time[:, None], gap, out=gap)
        np.multiply(gap, mask, out=gap)
        out[batch_key(name, "time_gap")] = torch.from_numpy(gap)
        out[batch_key(name, "mask")] = torch.from_numpy(mask)
        out[batch_key(name, "length")] = torch.from_numpy(mask.sum(axis=1, dtype=np.int64))
    return out
