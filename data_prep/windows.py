"""History windows: turn timeline pointers [start, end) into fixed-length, left-padded row indices.

Why left padding. Each window holds the last L behaviours before the impression, oldest first,
and its pads come first:

    position   0 .. L-n-1   |  L-n  ..  L-1
    content    pads (mask 0) |  the n most recent behaviours, the newest at L-1

- Position p always means "L-1-p behaviours before the impression", in every sample, so a
  position embedding has one meaning, and the most recent behaviour is always at L-1: a sequential
  model's "last output" is the slice `out[:, -1]`, with no gather by length, and a shorter window
  (L' < L) is just the suffix `[:, -L':]` of a longer one.
- A causal scan (Mamba) reads the pads before the real behaviours, so it is exact only if the model
  zeroes its input branch at pad positions (after `in_proj` and after the causal conv): then the
  SSM state stays 0 through the pads and the first real behaviour starts from the same zero state
  as it would with no pads at all (models/ssm/mamba.py, "Padding"). The mask returned here exists for
  exactly that, and for key padding in attention (BST, DIN).

Pad rows point at row 0, an in-bounds index whenever the timeline has any rows; `gather` zeroes
whatever they read, and handles an empty timeline (where every position is a pad).
"""
from __future__ import annotations

import numpy as np


def history_window(start: np.ndarray, end: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """The last `length` rows of each range [start, end), left-padded.

    Args:
        start: (B,) first timeline row of each sample's history.
        end: (B,) one past its last row (the history is rows start .. end-1, oldest first).
        length: L >= 1, the window length.
    Returns:
        rows: (B, L) int64 timeline rows; position L-1 holds row end-1; pads hold 0.
        mask: (B, L) bool, True at real behaviours; the pads are exactly the first
            L - min(end - start, L) positions.
    """
    if length < 1:
        raise ValueError(f"window length must be >= 1, got {length}")
    start = np.asarray(start, dtype=np.int64)
    end = np.asarray(end, dtype=np.int64)
    if start.ndim != 1 or start.shape != end.shape:
        raise ValueError(f"start and end must be 1-D and of one shape, got {start.shape} and {end.shape}")
    offsets = np.arange(-length, 0, dtype=np.int64)  # (L,): -L .. -1
    rows = end[:, None] + offsets[None, :]  # (B, L): end-L .. end-1
    mask = rows >= start[:, None]  # (B, L)
    np.multiply(rows, mask, out=rows)  # pads -> row 0
    return rows, mask


def gather(column: np.ndarray, rows: np.ndarray, mask: np.ndarray, dtype: np.dtype | type | None = None) -> np.ndarray:
    """column[rows] with 0 at the pads (values are vocabulary indices or times; 0 = padding).

    Args:
        column: (N,) one timeline field (may be a read-only memory map).
        rows, mask: (B, L) from `history_window`.
        dtype: output dtype; default the column's.
    Returns:
        (B, L) array of `dtype`, a fresh writable copy.
    """
    dtype = np.dtype(column.dtype if dtype is None else dtype)
    if column.shape[0] == 0:  # empty timeline: every position is a pad
        return np.zeros(rows.shape, dtype=dtype)
    values = np.take(np.asarray(column), rows).astype(dtype, copy=False)
    np.multiply(values, mask, out=values)
    return values
