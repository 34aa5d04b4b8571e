"""Latent users: a Taobao-like profile, an activity level, a click bias and preferred categories.

Profile fields follow the real marginals roughly (final_gender_code 2 ~62%, age_level 0..6
peaking at 2-3, pvalue_level missing ~50%, shopping_level mostly 3, occupation 1 ~6% and more
often for the young, new_user_class_level missing ~30%); cms_group_id is a function of gender and
age as in the real file (age for gender 2, age + 6 for gender 1).
activity ~ Gamma(k, 1/k) (mean 1) scales a user's behaviour and impression counts.
Preferred categories: K draws of a taste group g ~ softmax(1.5 * A[gender, age, :]), then a
category of g by popularity; each preferred category gets one loyal brand (by popularity).
bias ~ N(0, user_bias_std^2) + 0.1 * (shopping_level - 2.5): how click-happy the user is.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_prep.synthetic.catalog import N_GROUPS, Catalog
from data_prep.synthetic.config import SyntheticConfig

AGE_P = np.array([0.01, 0.10, 0.30, 0.30, 0.17, 0.09, 0.03])
PVALUE_P = np.array([0.30, 0.60, 0.10])             # levels 1..3 when present
SHOPPING_P = np.array([0.06, 0.14, 0.80])           # levels 1..3
NEW_USER_CLASS_P = np.array([0.10, 0.35, 0.35, 0.20])  # levels 1..4 when present
SEGID_ZERO = 0.55                                   # share of cms_segid 0; the rest 1..96
PVALUE_MISSING, NEW_USER_CLASS_MISSING = 0.5, 0.3


@dataclass
class Users:
    """One block of latent users (arrays of length n; prefs are (n, K))."""

    gender: np.ndarray          # 1 or 2
    age: np.ndarray             # 0..6
    cms_segid: np.ndarray
    cms_group_id: np.ndarray
    pvalue: np.ndarray          # 1..3, 0 = missing
    shopping: np.ndarray        # 1..3
    occupation: np.ndarray      # 0/1
    new_user_class: np.ndarray  # 1..4, 0 = missing
    has_profile: np.ndarray     # bool: written to user_profile.csv
    activity: np.ndarray
    bias: np.ndarray
    pref_cats: np.ndarray       # (n, K) preferred categories, most preferred first
    pref_brands: np.ndarray     # (n, K) the loyal brand of each preferred category


def _levels(rng: np.random.Generator, n: int, probs: np.ndarray) -> np.ndarray:
    """Levels 1..len(probs) drawn with `probs`."""
    return (np.searchsorted(np.cumsum(probs), rng.random(n) * probs.sum(), side="right") + 1
            ).astype(np.int8)


def draw_users(rng: np.random.Generator, n: int, catalog: Catalog, cfg: SyntheticConfig) -> Users:
    """`n` users from `rng` (the block's stream)."""
    gender = np.where(rng.random(n) < 0.62, 2, 1).astype(np.int8)
    age = (_levels(rng, n, AGE_P) - 1).astype(np.int8)
    segid = np.where(rng.random(n) < SEGID_ZERO, 0,
                     _levels(rng, n, np.arange(1, 97) ** -0.8)).astype(np.int16)
    group_id = np.where(gender == 2, age, age + 6).astype(np.int8)
    pvalue = np.where(rng.random(n) < PVALUE_MISSING, 0, _levels(rng, n, PVALUE_P)).astype(np.int8)
    shopping = _levels(rng, n, SHOPPING_P)
    occupation = (rng.random(n) < np.where(age <= 2, 0.12, 0.02)).astype(np.int8)
    new_class = np.where(rng.random(n) < NEW_USER_CLASS_MISSING, 0,
                         _levels(rng, n, NEW_USER_CLASS_P)).astype(np.int8)
    has_profile = rng.random(n) >= cfg.profile_missing
    activity = rng.gamma(cfg.activity_shape, 1.0 / cfg.activity_shape, n)
    bias = rng.normal(0.0, cfg.user_bias_std, n) + 0.1 * (shopping - 2.5)
    k = cfg.n_pref_categories
    taste = 1.5 * catalog.affinity[gender - 1, age]                    # (n, N_GROUPS)
    gumbel = -np.log(-np.log(rng.random((n, k, N_GROUPS))))
    groups = np.argmax(taste[:, None, :] + gumbel, axis=2)             # (n, K)
    pref_cats = catalog.cats_by_group.pick(groups.ravel(), rng.random(n * k))
    empty = pref_cats < 0                                              # a group with no category
    pref_cats[empty] = catalog.popular_categories(rng.random(int(empty.sum())))
    pref_brands = catalog.brands_by_cat.pick(pref_cats, rng.random(n * k))
    return Users(gender, age, segid, group_id, pvalue, shopping, occupation, new_class, has_profile,
                 activity, bias, pref_cats.reshape(n, k), pref_brands.reshape(n, k))

