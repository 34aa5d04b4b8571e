"""The generator's settings: sizes, the seed, the knobs of the latent click / conversion model."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.config import load_config
from common.errors import MDAFError


@dataclass
class SyntheticConfig:
    """Every number the generator uses; configs/data/synthetic.yaml documents each key."""

    seed: int = 0
    n_users: int = 20_000
    chunk_users: int = 10_000
    # catalogue
    n_categories: int = 2_000
    n_brands: int = 20_000
    n_ads: int = 20_000
    n_items: int = 200_000
    category_zipf: float = 1.1
    # users and their behaviour
    impressions_per_user: float = 25.0
    behaviors_per_user: float = 150.0
    ub_behaviors_per_user: float = 100.0
    activity_shape: float = 1.0
    n_pref_categories: int = 5
    pref_share: float = 0.7
    brand_loyalty: float = 0.6
    intent_mean_len: float = 5.0
    profile_missing: float = 0.05
    # impressions and clicks (Tianchi 56)
    target_ctr: float = 0.05
    target_share: float = 0.5
    target_recency: float = 3.0
    history_len: int = 50
    recency_tau: float = 3.0
    cate_match_weight: float = 0.35
    brand_match_weight: float = 0.35
    btag_weights: list[float] = field(default_factory=lambda: [1.0, 1.6, 1.3, 2.0])
    user_bias_std: float = 0.3
    ad_quality_std: float = 0.3
    affinity_weight: float = 0.25
    pref_weight: float = 0.4
    # long-lived interests (Tianchi 56): loyalty to a brand, seen wherever the user last shopped its category
    loyal_brand_weight: float = 0.0
    interest_target_share: float = 0.0
    noise_std: float = 0.8
    # views and conversions (Tianchi 649)
    ub_target_cvr: float = 0.03
    item_match_weight: float = 0.5
    ub_outside_share: float = 0.0005
    # catalogue churn (both data sets): items and ad groups listed anew under fresh ids
    relist_days: float = 0.0
    # output
    crlf: bool = False

    def __post_init__(self) -> None:
        where = type(self).__name__
        positive_ints = ("n_users", "chunk_users", "n_categories", "n_brands", "n_ads", "n_items",
                         "n_pref_categories", "history_len")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise MDAFError(f"{where}.{name}: expected a positive integer, got {value!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise MDAFError(f"{where}.seed: expected a non-negative integer, got {self.seed!r}")
        for name in ("category_zipf", "behaviors_per_user", "ub_behaviors_per_user",
                     "activity_shape", "recency_tau"):
            _check(where, name, getattr(self, name), low=0.0, low_open=True)
        _check(where, "impressions_per_user", self.impressions_per_user, low=1.0)
        _check(where, "intent_mean_len", self.intent_mean_len, low=1.0)
        _check(where, "target_recency", self.target_recency, low=1.0)
        for name in ("target_ctr", "ub_target_cvr"):
            _check(where, name, getattr(self, name), low=0.0, high=1.0, low_open=True,
                   high_open=True)
        for name in ("pref_share", "brand_loyalty", "profile_missing", "target_share", "interest_target_share"):
            _check(where, name, getattr(self, name), low=0.0, high=1.0)
        _check(where, "ub_outside_share", self.ub_outside_share, low=0.0, high=0.5)
        _check(where, "relist_days", self.relist_days, low=0.0)
        for name in ("cate_match_weight", "brand_match_weight", "item_match_weight",
                     "user_bias_std", "ad_quality_std", "affinity_weight", "pref_weight", "loyal_brand_weight"):
            _check(where, name, getattr(self, name), low=0.0)
        _check(where, "noise_std", self.noise_std, low=0.0, high=3.0)  # 12-node quadrature stays accurate
        if not isinstance(self.btag_weights, (list, tuple)) or len(self.btag_weights) != 4:
            raise MDAFError(f"{where}.btag_weights: expected 4 weights for pv, cart, fav, buy, "
                            f"got {self.btag_weights!r}")
        for i, value in enumerate(self.btag_weights):
            _check(where, f"btag_weights[{i}]", value, low=0.0)
        if self.n_brands < self.n_categories:
            raise MDAFError(f"{where}.n_brands: expected at least n_categories "
                            f"({self.n_categories}) so every category has a brand, "
                            f"got {self.n_brands}")
        if self.n_items < self.n_categories:
            raise MDAFError(f"{where}.n_items: expected at least n_categories "
                            f"({self.n_categories}) so every category has an item, "
                            f"got {self.n_items}")
        if not isinstance(self.crlf, bool):
            raise MDAFError(f"{where}.crlf: expected true or false, got {self.crlf!r}")


def _check(where: str, name: str, value: Any, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> None:
    """Raise MDAFError unless `value` is a finite number inside the stated bounds."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise MDAFError(f"{where}.{name}: expected a number in {span}, got {value!r}")


def load_synthetic_config(path: str | Path | None = None,
                          overrides: dict[str, Any] | None = None) -> SyntheticConfig:
    """Defaults, updated by the YAML at `path` (if given), then by `overrides` (e.g. CLI flags)."""
    return load_config(SyntheticConfig, path, overrides)

