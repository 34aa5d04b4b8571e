"""Catalogue churn: entities listed anew under fresh raw ids, as real catalogues turn over.

In the real UserBehavior sample (815 users, 2017-11-25 .. 12-03), 68-71 % of each of the last
three days' events are on items with no earlier row in the file, and 72.9 % of the items viewed
on the test day (12-03) never occur in the train days: ids come and go every day. With
`relist_days` D > 0, latent entity i (an item, or an ad group) is listed under generation

    g_i(t) = floor((t - t0) / (86400 D) + phi_i),     phi_i ~ U(0, 1) per entity,

every generation under a raw id of its own, so each day about 1 / D of the entities turn up
under ids never seen before and their old ids stop. The latent entity (its category, brand,
price, quality) stays, so the true probabilities are unchanged: only the identity an id carries
is lost at each relisting. D = 0 keeps one id per entity, and the files byte for byte as before.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from data_prep.synthetic import ids
from data_prep.synthetic.streams import RELIST, stream

DAY_S = 86_400


@dataclass(frozen=True)
class Listings:
    """ids[i, g]: the raw id of entity i's generation g (one generation when churn is off)."""

    ids: np.ndarray        # (n, G) int64
    phase: np.ndarray      # (n,) phi_i
    t0: int                # Unix seconds where generation 0 starts (shifted by phi_i)
    period_s: float        # 86400 D; 0 when off

    def raw(self, entity: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Raw ids of `entity` (latent indices) listed at times `t` (Unix seconds)."""
        if self.period_s == 0:
            return self.ids[entity, 0]
        g = np.floor((np.asarray(t) - self.t0) / self.period_s + self.phase[entity]).astype(np.int64)
        return self.ids[entity, np.clip(g, 0, self.ids.shape[1] - 1)]

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(entity, raw id) of every listing, generation by generation: a catalogue file's rows."""
        n, generations = self.ids.shape
        return np.tile(np.arange(n), generations), self.ids.T.ravel()


def build_listings(seed: int, purpose: int, base_ids: np.ndarray, relist_days: float, window: tuple[int, int],
                   high: int) -> Listings:
    """Listings of len(base_ids) entities over the data set's `window` [start, end) in Unix
    seconds; `base_ids` serve as they are when relist_days is 0, else every generation's id is
    drawn from a stream of its own (`purpose` tells the data sets apart)."""
    n = len(base_ids)
    if relist_days == 0:
        return Listings(base_ids[:, None], np.zeros(n), window[0], 0.0)
    period = relist_days * DAY_S
    generations = math.ceil((window[1] - window[0]) / period) + 1
    rng = stream(seed, RELIST, purpose)
    raw = ids.sparse_ids(rng, n * generations, high).reshape(n, generations)
    return Listings(raw, rng.random(n), window[0], period)
