"""Event times: sorted per user, in a Beijing-time window, with a diurnal traffic pattern.

The time density is piecewise constant by hour, proportional to DIURNAL[Beijing hour] inside
[start, end) and, optionally, a small mass `outside_share` spread over `margin_hours` on each
side (the real UserBehavior.csv has such rows). A user's n events are n sorted uniforms pushed
through the inverse of that density's CDF; the sorted uniforms come from exponential spacings
(U_i = S_i / S_{n+1}, S_i = E_1 + ... + E_i, E ~ Exp(1)), so no sort is needed.
"""
from __future__ import annotations

import numpy as np

from data_prep.calendar import window

HOUR = 3600
BEIJING_OFFSET = 8 * HOUR
# relative traffic by Beijing hour 0..23: a night trough, a daytime plateau, an evening peak
DIURNAL = np.array([0.55, 0.30, 0.18, 0.12, 0.10, 0.12, 0.25, 0.50, 0.75, 0.90, 1.00, 1.00,
                    0.95, 0.95, 1.00, 1.00, 0.95, 0.90, 0.95, 1.10, 1.30, 1.40, 1.30, 0.95])


def beijing_hour(t: np.ndarray) -> np.ndarray:
    """Hour of day 0..23 in Beijing of Unix times `t`."""
    return ((t + BEIJING_OFFSET) // HOUR) % 24


class Clock:
    """Draws per-user sorted event times for one documented window."""

    def __init__(self, days: tuple[str, str], margin_hours: int = 0, outside_share: float = 0.0):
        self.start, self.end = window(*days)
        margin = margin_hours * HOUR if outside_share > 0 else 0
        self.lo, self.hi = self.start - margin, self.end + margin
        edges = np.arange(self.lo, self.hi + 1, HOUR, dtype=np.float64)
        weight = DIURNAL[beijing_hour(edges[:-1].astype(np.int64))]
        if margin:
            inside = (edges[:-1] >= self.start) & (edges[:-1] < self.end)
            weight[inside] *= (1.0 - outside_share) / weight[inside].sum()
            weight[~inside] *= outside_share / weight[~inside].sum()
        cdf = np.concatenate([[0.0], np.cumsum(weight)])
        self._cdf = cdf / cdf[-1]
        self._edges = edges

    def sorted_times(self, rng: np.random.Generator, counts: np.ndarray) -> np.ndarray:
        """Concatenated per-user times (int64), non-decreasing within each user, in [lo, hi)."""
        counts = counts.astype(np.int64)
        n_users, total = len(counts), int(counts.sum())
        cs = np.cumsum(rng.standard_exponential(total + n_users))
        last = np.cumsum(counts + 1) - 1                 # each user's extra (n+1)-th spacing
        before = np.concatenate([[0.0], cs[last[:-1]]])  # running sum before the user's first
        keep = np.ones(total + n_users, dtype=bool)
        keep[last] = False
        user = np.repeat(np.arange(n_users), counts)
        u = (cs[keep] - before[user]) / (cs[last] - before)[user]
        t = np.floor(np.interp(u, self._cdf, self._edges)).astype(np.int64)
        return np.minimum(t, self.hi - 1)

    def strictly_increasing(self, t: np.ndarray, counts: np.ndarray,
                            stay_inside: bool = True) -> np.ndarray:
        """Nudge sorted per-user times by whole seconds so each user's are strictly increasing.

        Forward: t'_i = max_{j<=i}(t_j + i - j) (ties pushed later); with `stay_inside`, also
        capped at hi - (n - i) so nothing leaves [lo, hi). Both are strictly increasing, so is
        their min. Requires every count to be at most the window length in seconds.
        """
        counts = counts.astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        user = np.repeat(np.arange(len(counts)), counts)
        rank = np.arange(len(t), dtype=np.int64) - offsets[user]
        lift = user * (np.int64(1) << 34)
        forward = np.maximum.accumulate(t - rank + lift) - lift + rank
        return np.minimum(forward, self.hi - counts[user] + rank) if stay_inside else forward
