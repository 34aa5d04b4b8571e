"""Weighted sampling inside groups (brands of a category, ads of a brand, ...) in O(1) per pick.

Popularity is discretised: member m of weight w_m gets multiplicity
    n_m = max(1, round(resolution * w_m / mean(w)))     (resolution 4 unless stated)
and appears n_m times in its group's run of a flat pool (runs sorted by group, offsets
`start`). A pick for group g with uniform u is pool[start[g] + floor(u * size_g)], so
P(m | g) = n_m / sum of n over g: exact for the discretised weights, two gathers per pick.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np



@dataclass
class Grouped:
    """Members of `n_groups` groups, ready for weighted picks within a group."""

    pool: np.ndarray    # member indices, each repeated by its multiplicity, grouped
    start: np.ndarray   # (n_groups + 1,) offsets of each group's run in `pool`

    @classmethod
    def build(cls, group: np.ndarray, weight: np.ndarray, n_groups: int,
              resolution: float = 4.0) -> "Grouped":
        """Group member i under group[i] in [0, n_groups); group < 0 leaves it out."""
        keep = np.flatnonzero(group >= 0)
        order = keep[np.argsort(group[keep], kind="stable")]
        mean = weight[keep].mean() if len(keep) else 1.0
        mult = np.maximum(1, np.rint(resolution * weight[order] / mean)).astype(np.int64)
        sizes = np.bincount(group[order], weights=mult, minlength=n_groups).astype(np.int64)
        start = np.concatenate([[0], np.cumsum(sizes)])
        return cls(np.repeat(order, mult).astype(np.int32), start)

    @classmethod
    def single(cls, weight: np.ndarray, resolution: float = 4.0) -> "Grouped":
        """All members in one group 0."""
        return cls.build(np.zeros(len(weight), dtype=np.int64), weight, 1, resolution)

    def pick(self, groups: np.ndarray | int, u: np.ndarray) -> np.ndarray:
        """One member per entry of `groups` (weighted), or -1 where the group is empty."""
        lo = self.start[groups]
        size = self.start[np.asarray(groups) + 1] - lo
        pos = lo + (u * size).astype(np.int64)
        if len(self.pool) == 0:
            return np.full(len(u), -1, dtype=np.int32)
        out = self.pool[np.minimum(pos, len(self.pool) - 1)]
        return np.where(size > 0, out, -1).astype(np.int32)
