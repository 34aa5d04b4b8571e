"""The shared latent world: categories (Zipf popularity, taste groups) and their brands.

- Category c has popularity pi_c proportional to rank_c^-a (ranks shuffled over c; discretised
  at resolution 64, see grouped.py), a taste group
  g(c) in 0..N_GROUPS-1 and an effect e_c on click / conversion odds.
- Taste: A[gender, age, group] = G[gender, group] + H[age, group], standard normals scaled; users
  prefer groups with high A, and A also enters the click logit (profile x ad interaction).
- Brand b belongs to one category (every category has at least one brand; the rest are spread
  in proportion to pi^0.7) and has a log-normal popularity inside its category.
Raw ids for each data set are drawn by that data set's module; this holds latent indices only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_prep.synthetic.config import SyntheticConfig
from data_prep.synthetic.grouped import Grouped
from data_prep.synthetic.streams import CATALOG, stream

N_GROUPS = 10
N_AGES = 7


@dataclass
class Catalog:
    """Latent categories and brands, indexed 0..n-1."""

    cat_pop: np.ndarray        # (C,) popularity weights
    by_popularity: Grouped     # all categories in one group, weighted by popularity
    cat_group: np.ndarray      # (C,) taste group
    cat_effect: np.ndarray     # (C,) additive effect on event odds
    affinity: np.ndarray       # (2, N_AGES, N_GROUPS) taste of (gender - 1, age) for each group
    cats_by_group: Grouped     # categories of each group, weighted by popularity
    brand_cat: np.ndarray      # (B,) category of each brand
    brands_by_cat: Grouped     # brands of each category, weighted by popularity

    @property
    def n_categories(self) -> int:
        return len(self.cat_pop)

    def popular_categories(self, u: np.ndarray) -> np.ndarray:
        """Categories drawn by popularity from uniforms `u`."""
        return self.by_popularity.pick(0, u)


def build_catalog(cfg: SyntheticConfig) -> Catalog:
    """The latent world for `cfg.seed` (same seed, same world, whatever else is generated)."""
    rng = stream(cfg.seed, CATALOG)
    n_cat, n_brand = cfg.n_categories, cfg.n_brands
    pop = (rng.permutation(n_cat) + 1.0) ** -cfg.category_zipf
    pop /= pop.sum()
    group = rng.integers(0, N_GROUPS, n_cat).astype(np.int32)
    effect = rng.normal(0.0, 0.2, n_cat)
    affinity = rng.normal(0.0, 1.0, (2, 1, N_GROUPS)) + rng.normal(0.0, 0.6, (1, N_AGES, N_GROUPS))
    spread = np.cumsum(pop ** 0.7)
    extra = np.searchsorted(spread, rng.random(n_brand - n_cat) * spread[-1], side="right")
    brand_cat = np.concatenate([np.arange(n_cat), np.minimum(extra, n_cat - 1)]).astype(np.int32)
    brand_pop = rng.lognormal(0.0, 1.2, n_brand)
    return Catalog(
        cat_pop=pop, by_popularity=Grouped.single(pop, resolution=64.0), cat_group=group,
        cat_effect=effect, affinity=affinity,
        cats_by_group=Grouped.build(group, pop, N_GROUPS),
        brand_cat=brand_cat, brands_by_cat=Grouped.build(brand_cat, brand_pop, n_cat))
