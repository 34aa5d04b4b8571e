"""Tianchi 649 (UserBehavior): items, intent-driven views, and the carts/favs/buys they lead to.

Per block of users: view counts ~ Poisson(ub_behaviors_per_user * 0.896 * activity); intents as
in intents.py over items (70% fresh items, 30% re-views of 4 items per intent); view times strictly
increasing per user over 11-25..12-03, with a share ub_outside_share in the day on either side
(the real file has such rows; the preparation drops them).

Conversion logit of view j (user u, item i of category c), history = u's earlier views:
    eta_j = c0 + bias_u + q_i + e_c + w_A * A[gender_u, age_u, g(c)] + w_P * [c in prefs_u]
            + sum_{k} exp(-k / tau) * (alpha_c [c_{j-1-k} == c] + alpha_i [i_{j-1-k} == i])
    p_j = E[sigmoid(eta_j + eps)], eps ~ N(0, noise_std^2), c0 solved so mean p = ub_target_cvr.
(The sum runs over at most history_len earlier views, stopping once exp(-k/tau) < 1e-3.)
A view converts with probability p_j; a converting view emits 1-3 actions (cart/fav/buy in the
real 5.5 : 2.9 : 2.0 ratio) on the same item, each 10 s + Exp(mean 10 min) (capped at 3 h) after
the previous one. Other cart/fav/buy rows, on items of the user's preferred categories at random
times, top the mix up to the real pv 89.6 %.

The preparation labels a view positive when the user carts/favs/buys that item within 24 h
after it. p_j is exactly that label's probability when no other view of the same item by the
same user falls within those 24 h (re-views inherit a later view's conversion) and when no
unrelated cart/fav/buy of that item does; elsewhere the label rate is above p_j (with the
defaults about 5 % of views are labelled positive for a mean p of 3 %). Unrelated actions are
often on items the user never viewed, as in the real file.
Conversions are drawn from views only (never from earlier conversions), so the whole block is
vectorised. Timestamps are made distinct per user (all rows), so (user_id, timestamp) is a key.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from data_prep.calendar import USERBEHAVIOR_DAYS
from data_prep.synthetic import ids
from data_prep.synthetic.catalog import Catalog, build_catalog
from data_prep.synthetic.chunks import Frames, run_chunks
from data_prep.synthetic.clock import Clock
from data_prep.synthetic.config import SyntheticConfig
from data_prep.synthetic.csv_out import CsvSink, CsvSpec
from data_prep.synthetic.grouped import Grouped
from data_prep.synthetic.history import decayed_matches_previous
from data_prep.synthetic.intents import Sequence, simulate_intents
from data_prep.synthetic.link import expected_sigmoid, solve_intercept
from data_prep.synthetic.listings import Listings, build_listings
from data_prep.synthetic.streams import (BLOCK_USERS, UB_BLOCK, UB_CATALOG, block_size, n_blocks,
                                         stream)
from data_prep.synthetic.users import Users, draw_users

log = logging.getLogger(__name__)

FILES = [CsvSpec("UserBehavior.csv", header=False),
         CsvSpec("UserBehavior_oracle.csv")]
TYPES = ["pv", "buy", "cart", "fav"]
PV_SHARE = 0.896
ACTION_P = np.array([0.020, 0.055, 0.029])          # buy, cart, fav (type codes 1, 2, 3)
FOLLOW_UPS_P = np.array([0.65, 0.27, 0.08])        # 1, 2 or 3 actions per conversion
ITEM_SLOTS = np.array([0.5, 0.25, 0.15, 0.1])   # re-viewed items of an intent
FRESH_ITEM_SHARE = 0.7                            # views of a fresh item of the intent's category
MARGIN_HOURS = 24
DELAY_MIN_S, DELAY_MEAN_S, DELAY_MAX_S = 10, 600, 3 * 3600
CALIBRATION_BLOCKS = 4
MAX_VIEWS = 200_000

_TYPE_ENUM = pl.Series(TYPES, dtype=pl.Enum(TYPES))


@dataclass
class Items:
    """The item catalogue (latent indices) and the Tianchi-649 raw ids."""

    item_id: np.ndarray      # raw item id
    cat: np.ndarray          # latent category
    quality: np.ndarray      # q_i
    by_cat: Grouped
    cate_ids: np.ndarray     # raw category id of each latent category


def build_items(cfg: SyntheticConfig, catalog: Catalog) -> Items:
    """Items: every category gets one, the rest by category popularity; log-normal popularity."""
    rng = stream(cfg.seed, UB_CATALOG)
    n, n_cat = cfg.n_items, cfg.n_categories
    cate_ids = ids.sparse_ids(rng, n_cat, ids.UB_CATE_MAX)
    item_id = ids.sparse_ids(rng, n, ids.UB_ITEM_MAX)
    cat = np.concatenate([np.arange(n_cat, dtype=np.int32),
                          catalog.popular_categories(rng.random(n - n_cat))])
    weight = rng.lognormal(0.0, 1.0, n)
    quality = rng.normal(0.0, cfg.ad_quality_std, n)
    return Items(item_id, cat, quality, Grouped.build(cat, weight, n_cat), cate_ids)


@dataclass
class World:
    cfg: SyntheticConfig
    catalog: Catalog
    items: Items
    clock: Clock
    listings: Listings       # the raw item id of each item over time (listings.py)


def build_world(cfg: SyntheticConfig) -> World:
    catalog = build_catalog(cfg)
    items = build_items(cfg, catalog)
    clock = Clock(USERBEHAVIOR_DAYS, MARGIN_HOURS, cfg.ub_outside_share)
    listings = build_listings(cfg.seed, UB_CATALOG, items.item_id, cfg.relist_days, (clock.lo, clock.hi),
                              ids.UB_ITEM_MAX)
    return World(cfg, catalog, items, clock, listings)


@dataclass
class Block:
    """One block simulated up to the conversion logit of each view (without c0)."""

    rng: np.random.Generator  # continues into the conversions
    user_ids: np.ndarray
    users: Users
    views: Sequence
    t: np.ndarray
    eta: np.ndarray


def simulate_block(world: World, block: int) -> Block:
    cfg, catalog, items = world.cfg, world.catalog, world.items
    rng = stream(cfg.seed, UB_BLOCK, block)
    n = block_size(cfg.n_users, block)
    user_ids = ids.block_user_ids(rng, cfg.n_users, block, n, BLOCK_USERS, ids.UB_USER_MAX)
    users = draw_users(rng, n, catalog, cfg)
    n_views = np.minimum(rng.poisson(cfg.ub_behaviors_per_user * PV_SHARE * users.activity),
                         MAX_VIEWS)
    views = simulate_intents(rng, n_views, users.pref_cats, None, catalog, items.by_cat,
                             ITEM_SLOTS, cfg.pref_share, 0.0, cfg.intent_mean_len,
                             FRESH_ITEM_SHARE)
    t = world.clock.strictly_increasing(world.clock.sorted_times(rng, n_views), n_views)
    rank = np.arange(len(t), dtype=np.int64) - views.offsets[views.user]
    seq_score = decayed_matches_previous([views.cat, views.obj],
                                         [cfg.cate_match_weight, cfg.item_match_weight], rank,
                                         cfg.history_len, cfg.recency_tau)
    u, cat = views.user, views.cat
    eta = (users.bias[u] + items.quality[views.obj] + catalog.cat_effect[cat]
           + cfg.affinity_weight * catalog.affinity[users.gender[u] - 1, users.age[u],
                                                    catalog.cat_group[cat]]
           + cfg.pref_weight * (users.pref_cats[u] == cat[:, None]).any(axis=1) + seq_score)
    return Block(rng, user_ids, users, views, t, eta)


def _actions(rng: np.random.Generator, n: int) -> np.ndarray:
    """Types 1..3 (buy, cart, fav) in the real ratio."""
    cdf = np.cumsum(ACTION_P) / ACTION_P.sum()
    return (1 + np.searchsorted(cdf, rng.random(n), side="right")).clip(1, 3).astype(np.int8)


def block_frames(world: World, block: Block, intercept: float) -> tuple[Frames, int]:
    """Views, their follow-up actions and unrelated actions, merged in time order per user;
    and how many views converted."""
    cfg, items, rng, views = world.cfg, world.items, block.rng, block.views
    p = expected_sigmoid(block.eta + intercept, cfg.noise_std)
    converts = np.flatnonzero(rng.random(len(p)) < p)
    # follow-ups: k actions per conversion at increasing delays
    k = 1 + np.searchsorted(np.cumsum(FOLLOW_UPS_P)[:-1], rng.random(len(converts)), side="right")
    src = np.repeat(converts, k)
    delay = DELAY_MIN_S + np.minimum(rng.exponential(DELAY_MEAN_S, len(src)), DELAY_MAX_S)
    total = np.cumsum(delay)
    first = np.cumsum(k) - k
    total -= np.repeat(np.concatenate([[0.0], total])[first], k)
    follow_t = block.t[src] + total.astype(np.int64)
    # unrelated actions on items of preferred categories
    n_users = len(block.user_ids)
    n_views = np.diff(views.offsets)
    rate = max(0.0, (1 - PV_SHARE) / PV_SHARE - cfg.ub_target_cvr * float(
        np.dot(FOLLOW_UPS_P, [1, 2, 3])))
    n_other = rng.poisson(n_views * rate)
    other_user = np.repeat(np.arange(n_users, dtype=np.int32), n_other)
    pref = block.users.pref_cats
    other_cat = pref[other_user, rng.integers(0, pref.shape[1], len(other_user))]
    other_item = items.by_cat.pick(other_cat, rng.random(len(other_user)))
    other_t = world.clock.sorted_times(rng, n_other)
    # merge, order by (user, time) with views first on ties, make times distinct per user
    user = np.concatenate([views.user, views.user[src], other_user])
    item = np.concatenate([views.obj, views.obj[src], other_item])
    kind = np.concatenate([np.zeros(len(p), np.int8), _actions(rng, len(src)),
                           _actions(rng, len(other_user))])
    t = np.concatenate([block.t, follow_t, other_t])
    listed_at = np.concatenate([block.t, block.t[src], other_t])  # a view's follow-ups keep its item id
    order = np.argsort((user.astype(np.int64) << 32) | (t - world.clock.lo), kind="stable")
    user, item, kind, t, listed_at = user[order], item[order], kind[order], t[order], listed_at[order]
    counts = np.bincount(user, minlength=n_users)
    t = world.clock.strictly_increasing(t, counts, stay_inside=False)
    raw_user = block.user_ids[user]
    rows = pl.DataFrame({"user_id": raw_user, "item_id": world.listings.raw(item, listed_at),
                         "category_id": items.cate_ids[items.cat[item]],
                         "behavior_type": _TYPE_ENUM.gather(pl.Series(kind.astype(np.uint32))),
                         "timestamp": t})
    is_view = kind == 0
    view_order = order[is_view]                 # original view index of each merged view row
    oracle = pl.DataFrame({"user_id": raw_user[is_view], "timestamp": t[is_view],
                           "p": p[view_order]})
    return {"UserBehavior.csv": rows, "UserBehavior_oracle.csv": oracle}, len(converts)


def calibrate(world: World) -> tuple[float, dict[int, Block]]:
    """c0 solving mean p = ub_target_cvr on the first blocks, and those blocks for reuse."""
    cfg = world.cfg
    first = range(min(CALIBRATION_BLOCKS, n_blocks(cfg.n_users)))
    blocks = {b: simulate_block(world, b) for b in first}
    eta = np.concatenate([blk.eta for blk in blocks.values()])
    return solve_intercept(eta, cfg.ub_target_cvr, cfg.noise_std), blocks


def generate_userbehavior(cfg: SyntheticConfig, out_dir: str | Path) -> dict:
    """Write UserBehavior.csv (no header) and UserBehavior_oracle.csv.

    Returns {"rows": {file: rows written}, "mean_p", "conversion_rate" (share of views that
    converted), "intercept", "seconds"}.
    """
    started = time.perf_counter()
    world = build_world(cfg)
    intercept, cached = calibrate(world)
    log.info("userbehavior: intercept c0 = %.4f for target conversion %.4f", intercept,
             cfg.ub_target_cvr)
    totals = {"p": 0.0, "converted": 0}

    def simulate(b: int) -> Frames:
        block = cached.pop(b, None) or simulate_block(world, b)
        frames, converted = block_frames(world, block, intercept)
        totals["p"] += float(frames["UserBehavior_oracle.csv"]["p"].sum())
        totals["converted"] += converted
        return frames

    with CsvSink(out_dir, FILES, crlf=cfg.crlf) as sink:
        run_chunks(cfg.n_users, cfg.chunk_users, simulate, sink, desc="userbehavior")
    n_views = max(sink.rows["UserBehavior_oracle.csv"], 1)
    summary = {"rows": dict(sink.rows), "mean_p": totals["p"] / n_views,
               "conversion_rate": totals["converted"] / n_views, "intercept": intercept,
               "seconds": time.perf_counter() - started}
    log.info("userbehavior: wrote %s to %s (conversion rate %.4f, mean p %.4f) in %.1f s",
             summary["rows"], out_dir, summary["conversion_rate"], summary["mean_p"],
             summary["seconds"])
    return summary
