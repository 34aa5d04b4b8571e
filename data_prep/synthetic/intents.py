"""Intent-driven behaviour sequences: what each user looks at, in order (times come separately).

A user's sequence is cut into intents: before each behaviour the intent switches with
probability 1 / intent_mean_len (a Markov chain whose stay probability is 1 - 1/mean), and the
first behaviour starts one. A new intent picks its category
    with probability pref_share: the user's preferred category of rank r, P(r) ~ 1 / (r + 1),
    otherwise: a category by global popularity.
It then picks S objects of that category (brands or items) by popularity; slot 0 is the user's
loyal object for that category with probability `loyalty` when the category is a preferred one.
Each behaviour of the intent looks, with probability fresh_share, at a fresh object of the
category (by popularity), otherwise at slot s with probability slot_weights[s], so an intent
keeps returning to a few objects (re-views of the same item, one dominant brand).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_prep.synthetic.catalog import Catalog
from data_prep.synthetic.grouped import Grouped


@dataclass
class Sequence:
    """Concatenated per-user sequences (users in block order)."""

    user: np.ndarray     # (N,) block-local user index, non-decreasing
    cat: np.ndarray      # (N,) latent category
    obj: np.ndarray      # (N,) latent brand or item
    offsets: np.ndarray  # (n_users + 1,) where each user's behaviours start


def simulate_intents(rng: np.random.Generator, counts: np.ndarray, pref_cats: np.ndarray,
                     pref_objs: np.ndarray | None, catalog: Catalog, objects: Grouped,
                     slot_weights: np.ndarray, pref_share: float, loyalty: float,
                     intent_mean_len: float, fresh_share: float = 0.0) -> Sequence:
    """Sequences of `counts[u]` behaviours for each user u of a block."""
    n_users, k = pref_cats.shape
    counts = counts.astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    total = int(offsets[-1])
    user = np.repeat(np.arange(n_users, dtype=np.int32), counts)
    bits = rng.bit_generator.random_raw(total)
    starts = (bits & 0xFFFF) < int(65536 / intent_mean_len)
    starts[offsets[:-1][counts > 0]] = True
    seg = np.cumsum(starts, dtype=np.int32) - 1
    seg_user = user[starts]
    n_seg = len(seg_user)
    # one category per intent
    draws = rng.random((4, n_seg))
    from_pref = draws[0] < pref_share
    rank_cdf = np.cumsum(1.0 / np.arange(1, k + 1))
    rank = np.minimum(np.searchsorted(rank_cdf, draws[1] * rank_cdf[-1], side="right"), k - 1)
    seg_cat = np.where(from_pref, pref_cats[seg_user, rank], catalog.popular_categories(draws[2]))
    # S objects per intent, slot 0 possibly the loyal one
    n_slots = len(slot_weights)
    slots = objects.pick(np.repeat(seg_cat, n_slots), rng.random(n_seg * n_slots))
    slots = slots.reshape(n_seg, n_slots)
    if pref_objs is not None:
        loyal = from_pref & (draws[3] < loyalty)
        slots[loyal, 0] = pref_objs[seg_user[loyal], rank[loyal]]
    # each behaviour looks at one slot of its intent
    slot_cdf = np.cumsum(slot_weights) / np.sum(slot_weights)
    thresholds = (slot_cdf[:-1] * 65536).astype(np.uint64)
    level = (bits >> np.uint64(16)) & np.uint64(0xFFFF)
    slot = np.zeros(total, dtype=np.int32)
    for threshold in thresholds:
        slot += level >= threshold
    obj = slots.ravel()[seg.astype(np.int64) * n_slots + slot]
    cat = seg_cat[seg]
    if fresh_share > 0:
        level = (bits >> np.uint64(32)) & np.uint64(0xFFFF)
        fresh = np.flatnonzero(level < int(65536 * fresh_share))
        obj[fresh] = objects.pick(cat[fresh], rng.random(len(fresh)))
    return Sequence(user=user, cat=cat, obj=obj, offsets=offsets)
