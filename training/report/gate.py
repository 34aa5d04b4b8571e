"""Figures on MDAF's fusion gate g (models/mdaf/fusion.py), the weight of the sequential branch:
g near 1 means the model leans on the behaviour sequence, near 0 on the static features."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from common.errors import MDAFError

# Fixed history-length bins (inclusive bounds, None = open): quantile-free, so runs compare; they
# reach the longest windows trained (5,000), and empty bins are not shown.
HISTORY_BINS: tuple[tuple[int, int | None], ...] = ((0, 0), (1, 5), (6, 20), (21, 50), (51, 100), (101, 200),
                                                    (201, 500), (501, 1000), (1001, 2000), (2001, 5000),
                                                    (5001, None))
LOW, HIGH = 0.1, 0.9  # a gate value below LOW or above HIGH all but picks one branch
GATE_COLUMNS = ("gate_mean",)  # the per-sample column of the test predictions


@dataclass
class GateSummary:
    """summary.json's diagnostics.gate (models/mdaf/gate_diagnostics.py): mean and std of every
    value of g, its histogram (len(hist_edges) = len(hist_counts) + 1), each dimension's mean."""

    mean: float
    std: float
    hist_edges: list[float]
    hist_counts: list[int]
    dim_means: list[float]

    def __post_init__(self) -> None:
        if not self.hist_counts or not self.dim_means:
            raise MDAFError("diagnostics.gate: hist_counts and dim_means must not be empty")
        if len(self.hist_edges) != len(self.hist_counts) + 1:
            raise MDAFError(f"diagnostics.gate: hist_edges must have one more entry than hist_counts, got "
                            f"{len(self.hist_edges)} and {len(self.hist_counts)}")


@dataclass(frozen=True)
class GroupMean:
    """The mean per-sample gate of a group of test samples."""

    name: str
    n: int
    gate: float
    ctr: float


@dataclass(frozen=True)
class GateStats:
    mean: float
    std: float
    share_low: float  # share of gate values < LOW, from the histogram
    share_high: float  # share of gate values > HIGH
    mode: tuple[float, float]  # the histogram's fullest bin
    by_label: list[GroupMean]
    by_history: list[GroupMean]  # non-empty HISTORY_BINS only
    dims: int
    dim_min: float
    dim_median: float
    dim_max: float

    @property
    def share_mid(self) -> float:
        return 1.0 - self.share_low - self.share_high


def gate_stats(gate: GateSummary, predictions: pl.DataFrame) -> GateStats:
    """Gate figures from summary.json's gate (histogram of g, per-dimension means) and the
    per-sample gate_mean of the test predictions."""
    edges = np.asarray(gate.hist_edges, dtype=np.float64)
    counts = np.asarray(gate.hist_counts, dtype=np.float64)
    share = counts / counts.sum() if counts.sum() else np.full_like(counts, np.nan)
    top = int(np.argmax(counts))
    dims = np.asarray(gate.dim_means, dtype=np.float64)
    labels = predictions["label"].to_numpy()
    history = predictions["history_length"].to_numpy()
    values = predictions["gate_mean"].to_numpy().astype(np.float64)
    by_label = [_group(name, labels == value, values, labels)
                for value, name in ((0, "not clicked"), (1, "clicked"))]
    by_history = [_group(bin_name(lo, hi), (history >= lo) & (history <= (np.inf if hi is None else hi)),
                         values, labels) for lo, hi in HISTORY_BINS]
    tol = 1e-9  # thresholds that fall on a bin edge count that whole bin
    return GateStats(
        mean=gate.mean, std=gate.std,
        share_low=float(share[edges[1:] <= LOW + tol].sum()),
        share_high=float(share[edges[:-1] >= HIGH - tol].sum()),
        mode=(float(edges[top]), float(edges[top + 1])),
        by_label=[g for g in by_label if g.n], by_history=[g for g in by_history if g.n],
        dims=len(dims), dim_min=float(dims.min()), dim_median=float(np.median(dims)),
        dim_max=float(dims.max()))


def bin_name(lo: int, hi: int | None) -> str:
    if hi is None:
        return f"{lo}+"
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _group(name: str, mask: np.ndarray, values: np.ndarray, labels: np.ndarray) -> GroupMean:
    n = int(mask.sum())
    if not n:
        return GroupMean(name, 0, float("nan"), float("nan"))
    return GroupMean(name, n, float(values[mask].mean()), float(labels[mask].mean()))


def describe_shape(stats: GateStats) -> str:
    """The histogram's shape in words, from its shares near 0, near 1 and between."""
    shares = (f"{stats.share_low:.1%} of gate values are below {LOW:g}, {stats.share_mid:.1%} "
              f"between, {stats.share_high:.1%} above {HIGH:g}; the fullest bin is "
              f"[{stats.mode[0]:.3f}, {stats.mode[1]:.3f})")
    if stats.share_low + stats.share_high >= 0.5:
        shape = "mostly saturated: for most values the gate all but picks one branch outright"
    elif stats.share_mid >= 0.9:
        shape = "concentrated between the extremes: the gate blends the two branches"
    else:
        shape = "spread out: the gate blends for some values and picks a branch for others"
    if stats.mean == 0.5:
        return f"{shares}. The distribution is {shape}; on average it weighs both branches equally."
    side = "sequential" if stats.mean > 0.5 else "static"
    return f"{shares}. The distribution is {shape}; on average it leans to the {side} branch."
