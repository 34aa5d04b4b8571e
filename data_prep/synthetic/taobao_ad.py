"""Tianchi 56 (display-ad clicks): ads, users, 22 days of behaviour, 8 of impressions, clicks.

Per block of users: profiles; behaviour counts ~ Poisson(behaviors_per_user * activity) and
impression counts 1 + Poisson((impressions_per_user - 1) * activity); intent-driven behaviours
(category, brand, btag with the real pv/cart/fav/buy mix) at diurnal times over 04-22..05-13;
impressions at strictly increasing per-user times over 05-06..05-13, each on pid 430548_1007
(60%) or 430539_1007. With probability target_share (and a non-empty past) the ad is targeted:
take the behaviour r steps back, r ~ Geometric(mean target_recency) - 1, and show an ad of its
brand (half the time, when the brand has ads) or of its category; otherwise, with probability
interest_target_share, an ad of one of the user's preferred categories (its loyal brand's, half the
time), else a popular ad.

Click logit of user u, ad a (category c, brand b, standardised log price z), pid, hour h:
    eta = b0 + bias_u + q_a + e_c + w_A * A[gender_u, age_u, g(c)] + w_P * [c in prefs_u]
          - 0.25 * z * (3 - age_u) / 3 + 0.2 * z * (pvalue_u - 2) [pvalue known]
          + PID_EFFECT[pid] + 0.15 * cos(2 pi (h - 21) / 24)
          + w_L * [b = loyal_u(c)]    (c a preferred category of u, loyal_u(c) its loyal brand)
          + seq(a)   (history.py: category and brand matches, btag weights, recency decay)
    p = E[sigmoid(eta + eps)], eps ~ N(0, noise_std^2);  clk ~ Bernoulli(p)

The long signal (w_L = loyal_brand_weight > 0, off by default), argued from what SIM (Pi et al.
2020) and ETA (Chen et al. 2021) report of Taobao users: the behaviours that decide a click on a
candidate are the user's earlier ones in its category, often months old, and retrieving them by
category beats reading the latest few hundred. Here a user keeps a loyal brand per preferred
category for life; it shows in the history only where an intent on that category led with it
(intents.py), and an intent on any one preferred category comes round every
~n_pref_categories * intent_mean_len / pref_share behaviours. With many preferred categories and
long histories, the brand that lifts the click lies far back; with interest_target_share > 0
the ads themselves come from those interests. The oracle's p includes the term; the evidence for
it is in the history only as far back as the category's last intent (tests/test_synthetic.py).
b0 is solved on the first CALIBRATION_BLOCKS blocks so that mean p = target_ctr.
The profile drives the logit even for the users whose profile row is left out of the file.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from data_prep.calendar import TAOBAO_AD_BEHAVIOR_DAYS, TAOBAO_AD_IMPRESSION_DAYS
from data_prep.synthetic import ids
from data_prep.synthetic.catalog import Catalog, build_catalog
from data_prep.synthetic.chunks import Frames, run_chunks
from data_prep.synthetic.clock import Clock, beijing_hour
from data_prep.synthetic.config import SyntheticConfig
from data_prep.synthetic.csv_out import CsvSink, CsvSpec
from data_prep.synthetic.grouped import Grouped
from data_prep.synthetic.history import decayed_matches, recency_weights, window
from data_prep.synthetic.intents import Sequence, simulate_intents
from data_prep.synthetic.link import expected_sigmoid, solve_intercept
from data_prep.synthetic.listings import Listings, build_listings
from data_prep.synthetic.streams import (BLOCK_USERS, TAOBAO_BLOCK, TAOBAO_CATALOG, block_size,
                                         n_blocks, stream)
from data_prep.synthetic.users import Users, draw_users

log = logging.getLogger(__name__)

FILES = [
    CsvSpec("raw_sample.csv"),
    CsvSpec("ad_feature.csv", null_value="NULL"),
    CsvSpec("user_profile.csv"),
    CsvSpec("behavior_log.csv"),
    CsvSpec("raw_sample_oracle.csv"),
]
PROFILE_COLUMNS = ["userid", "cms_segid", "cms_group_id", "final_gender_code", "age_level",
                   "pvalue_level", "shopping_level", "occupation", "new_user_class_level "]
PIDS = ["430548_1007", "430539_1007"]
PID_SHARE = 0.6                           # share of the first pid
PID_EFFECT = np.array([0.1, -0.1])
BTAGS = ["pv", "cart", "fav", "buy"]
BTAG_P = np.array([0.896, 0.055, 0.029, 0.020])
BRAND_NULL_SHARE = 0.27                   # ads whose brand is written NULL (and has no brand)
BRAND_SLOTS = np.array([0.6, 0.25, 0.15])  # how an intent spreads over its brands
BRAND_TARGETING = 0.5                     # targeted ads chosen by brand rather than category
CALIBRATION_BLOCKS = 4
MAX_BEHAVIORS = 500_000                   # per user, a guard on the heavy activity tail
MAX_IMPRESSIONS = 20_000

_BTAG_ENUM = pl.Series(BTAGS, dtype=pl.Enum(BTAGS))
_PID_ENUM = pl.Series(PIDS, dtype=pl.Enum(PIDS))


@dataclass
class Ads:
    """The ad catalogue (latent indices) and the Tianchi-56 raw ids."""

    ad_id: np.ndarray        # raw adgroup_id
    cat: np.ndarray          # latent category
    brand: np.ndarray        # latent brand, -1 = none (written NULL)
    campaign_id: np.ndarray
    customer_id: np.ndarray
    price: np.ndarray
    z_price: np.ndarray      # standardised log price
    quality: np.ndarray      # q_a
    by_popularity: Grouped   # all ads, for untargeted impressions
    by_cat: Grouped
    by_brand: Grouped
    cate_ids: np.ndarray     # raw cate id of each latent category
    brand_ids: np.ndarray    # raw brand id of each latent brand

    def popular(self, u: np.ndarray) -> np.ndarray:
        """Ads drawn by popularity from uniforms `u`."""
        return self.by_popularity.pick(0, u)


def build_ads(cfg: SyntheticConfig, catalog: Catalog) -> Ads:
    """Ads: category by popularity, a brand of it (or none), campaigns within customers,
    log-normal price by category, quality q_a ~ N(0, ad_quality_std^2)."""
    rng = stream(cfg.seed, TAOBAO_CATALOG)
    n, n_cat, n_brand = cfg.n_ads, cfg.n_categories, cfg.n_brands
    cate_ids = ids.sparse_ids(rng, n_cat, ids.TAOBAO_CATE_MAX)
    brand_ids = ids.sparse_ids(rng, n_brand, ids.TAOBAO_BRAND_MAX)
    cat = catalog.popular_categories(rng.random(n))
    brand = catalog.brands_by_cat.pick(cat, rng.random(n))
    brand[rng.random(n) < BRAND_NULL_SHARE] = -1
    # a customer per brand for most of its ads; campaigns are runs of one customer's ads
    n_customers = max(1, n // 3)
    brand_customer = rng.integers(0, n_customers, n_brand)
    own = (brand >= 0) & (rng.random(n) < 0.8)
    customer = np.where(own, brand_customer[np.maximum(brand, 0)], rng.integers(0, n_customers, n))
    order = np.argsort(customer, kind="stable")
    new = np.ones(n, dtype=bool)
    new[1:] = (customer[order][1:] != customer[order][:-1]) | (rng.random(n - 1) < 0.5)
    campaign = np.empty(n, dtype=np.int64)
    campaign[order] = np.cumsum(new) - 1
    campaign_ids = ids.sparse_ids(rng, int(campaign.max()) + 1, ids.TAOBAO_CAMPAIGN_MAX)
    customer_ids = ids.sparse_ids(rng, n_customers, ids.TAOBAO_CUSTOMER_MAX)
    price_mu = rng.normal(4.0, 1.0, n_cat)
    raw_price = np.exp(price_mu[cat] + rng.normal(0.0, 0.6, n))
    price = np.maximum(np.where(raw_price >= 50, np.round(raw_price), np.round(raw_price, 1)), 0.1)
    log_price = np.log(price)
    z_price = (log_price - log_price.mean()) / max(log_price.std(), 1e-9)
    quality = rng.normal(0.0, cfg.ad_quality_std, n)
    weight = rng.lognormal(0.0, 1.0, n)
    return Ads(ad_id=ids.sparse_ids(rng, n, ids.TAOBAO_ADGROUP_MAX), cat=cat, brand=brand,
               campaign_id=campaign_ids[campaign], customer_id=customer_ids[customer],
               price=price, z_price=z_price, quality=quality,
               by_popularity=Grouped.single(weight),
               by_cat=Grouped.build(cat, weight, n_cat),
               by_brand=Grouped.build(brand, weight, n_brand),
               cate_ids=cate_ids, brand_ids=brand_ids)


def ad_feature_frame(ads: Ads, listings: Listings) -> pl.DataFrame:
    """ad_feature.csv: adgroup_id,cate_id,campaign_id,customer,brand,price (brand NULL if none),
    a row for every listing of every ad (one per ad without churn)."""
    ad, raw = listings.rows()
    brand = pl.Series("brand", ads.brand_ids[np.maximum(ads.brand[ad], 0)])
    return pl.DataFrame({
        "adgroup_id": raw, "cate_id": ads.cate_ids[ads.cat[ad]], "campaign_id": ads.campaign_id[ad],
        "customer": ads.customer_id[ad],
        "brand": brand.scatter(np.flatnonzero(ads.brand[ad] < 0), None),
        "price": ads.price[ad]})


@dataclass
class World:
    """What every block shares."""

    cfg: SyntheticConfig
    catalog: Catalog
    ads: Ads
    behavior_clock: Clock
    impression_clock: Clock
    weights: np.ndarray      # recency weights exp(-k / tau)
    btag_weights: np.ndarray
    listings: Listings       # the raw adgroup_id of each ad over time (listings.py)


def build_world(cfg: SyntheticConfig) -> World:
    catalog = build_catalog(cfg)
    ads = build_ads(cfg, catalog)
    impressions = Clock(TAOBAO_AD_IMPRESSION_DAYS)
    listings = build_listings(cfg.seed, TAOBAO_CATALOG, ads.ad_id, cfg.relist_days,
                              (impressions.lo, impressions.hi), ids.TAOBAO_ADGROUP_MAX)
    return World(cfg, catalog, ads, Clock(TAOBAO_AD_BEHAVIOR_DAYS), impressions,
                 recency_weights(cfg.history_len, cfg.recency_tau),
                 np.asarray(cfg.btag_weights, dtype=np.float64), listings)


@dataclass
class Block:
    """One block simulated up to the click logit (without b0)."""

    user_ids: np.ndarray
    users: Users
    seq: Sequence            # behaviours: user, category, brand
    btag: np.ndarray
    beh_t: np.ndarray
    imp_user: np.ndarray     # block-local user of each impression
    imp_t: np.ndarray
    ad: np.ndarray
    pid: np.ndarray
    end: np.ndarray          # one past each impression's last earlier behaviour
    begin: np.ndarray        # its user's first behaviour
    static: np.ndarray       # eta - b0 - seq
    seq_score: np.ndarray
    u_click: np.ndarray


def _btags(rng: np.random.Generator, n: int) -> np.ndarray:
    """Behaviour types 0..3 (pv, cart, fav, buy) with the real mix."""
    level = rng.bit_generator.random_raw(n) & np.uint64(0xFFFF)
    code = np.zeros(n, dtype=np.int8)
    for threshold in (np.cumsum(BTAG_P)[:-1] * 65536).astype(np.uint64):
        code += level >= threshold
    return code


def _choose_ads(rng: np.random.Generator, world: World, seq: Sequence, end: np.ndarray,
                history: np.ndarray, users: Users, imp_user: np.ndarray) -> np.ndarray:
    """Targeted (at a recent behaviour's brand or category, or at a preferred category) or popular
    ads, one per impression."""
    cfg, ads = world.cfg, world.ads
    n = len(end)
    draws = rng.random((4, n))
    ad = ads.popular(draws[0])
    if cfg.interest_target_share > 0:  # drawn only when asked, so default sets stay as they were
        interest = rng.random((3, n))
        chosen = np.flatnonzero(interest[0] < cfg.interest_target_share)
        rank = (interest[1, chosen] * users.pref_cats.shape[1]).astype(np.int64)
        cats, brands = users.pref_cats[imp_user[chosen], rank], users.pref_brands[imp_user[chosen], rank]
        by_brand = ads.by_brand.pick(np.maximum(brands, 0), interest[2, chosen])
        pick = np.where((brands >= 0) & (by_brand >= 0) & (interest[2, chosen] < 0.5), by_brand,
                        ads.by_cat.pick(cats, interest[2, chosen]))
        ad[chosen] = np.where(pick >= 0, pick, ad[chosen])
    targeted = np.flatnonzero((history > 0) & (draws[1] < cfg.target_share))
    if len(targeted):
        back = rng.geometric(1.0 / cfg.target_recency, len(targeted)) - 1
        pos = end[targeted] - 1 - np.minimum(back, history[targeted] - 1)
        by_cat = ads.by_cat.pick(seq.cat[pos], draws[2, targeted])
        brand = seq.obj[pos]
        by_brand = ads.by_brand.pick(np.maximum(brand, 0), draws[2, targeted])
        use_brand = (brand >= 0) & (by_brand >= 0) & (draws[3, targeted] < BRAND_TARGETING)
        pick = np.where(use_brand, by_brand, by_cat)
        ad[targeted] = np.where(pick >= 0, pick, ad[targeted])
    return ad


def simulate_block(world: World, block: int) -> Block:
    """Users, behaviours, impressions and click logits of block `block` (its own stream)."""
    cfg, catalog, ads = world.cfg, world.catalog, world.ads
    rng = stream(cfg.seed, TAOBAO_BLOCK, block)
    n = block_size(cfg.n_users, block)
    user_ids = ids.block_user_ids(rng, cfg.n_users, block, n, BLOCK_USERS, ids.TAOBAO_USER_MAX)
    users = draw_users(rng, n, catalog, cfg)
    n_beh = np.minimum(rng.poisson(cfg.behaviors_per_user * users.activity), MAX_BEHAVIORS)
    n_imp = 1 + np.minimum(rng.poisson((cfg.impressions_per_user - 1) * users.activity),
                           MAX_IMPRESSIONS - 1)
    seq = simulate_intents(rng, n_beh, users.pref_cats, users.pref_brands, catalog,
                           catalog.brands_by_cat, BRAND_SLOTS, cfg.pref_share, cfg.brand_loyalty,
                           cfg.intent_mean_len)
    btag = _btags(rng, len(seq.user))
    beh_t = world.behavior_clock.sorted_times(rng, n_beh)
    clock = world.impression_clock
    imp_t = clock.strictly_increasing(clock.sorted_times(rng, n_imp), n_imp)
    imp_user = np.repeat(np.arange(n, dtype=np.int32), n_imp)
    pid = (rng.random(len(imp_t)) >= PID_SHARE).astype(np.int8)
    # behaviours strictly before each impression: keys (user, time) in one sorted int64
    lo = world.behavior_clock.lo
    beh_key = (seq.user.astype(np.int64) << 22) | (beh_t - lo)
    imp_key = (imp_user.astype(np.int64) << 22) | (imp_t - lo)
    end = np.searchsorted(beh_key, imp_key, side="left")
    begin = seq.offsets[imp_user]
    ad = _choose_ads(rng, world, seq, end, end - begin, users, imp_user)
    cat, brand = ads.cat[ad], ads.brand[ad]
    if len(seq.user):
        pos, valid = window(end, begin, cfg.history_len)
        seq_score = decayed_matches([seq.cat[pos], seq.obj[pos]], [cat, brand],
                                    [cfg.cate_match_weight, cfg.brand_match_weight],
                                    world.weights, valid, world.btag_weights[btag[pos]])
    else:
        seq_score = np.zeros(len(ad))
    age, pvalue = users.age[imp_user], users.pvalue[imp_user]
    z = ads.z_price[ad]
    static = (users.bias[imp_user] + ads.quality[ad] + catalog.cat_effect[cat]
              + cfg.affinity_weight * catalog.affinity[users.gender[imp_user] - 1, age,
                                                       catalog.cat_group[cat]]
              + cfg.pref_weight * (users.pref_cats[imp_user] == cat[:, None]).any(axis=1)
              + cfg.loyal_brand_weight * ((users.pref_cats[imp_user] == cat[:, None])
                                          & (users.pref_brands[imp_user] == brand[:, None])).any(axis=1)
              - 0.25 * z * (3 - age) / 3 + np.where(pvalue > 0, 0.2 * z * (pvalue - 2), 0.0)
              + PID_EFFECT[pid] + 0.15 * np.cos(2 * np.pi * (beijing_hour(imp_t) - 21) / 24))
    return Block(user_ids, users, seq, btag, beh_t, imp_user, imp_t, ad, pid, end, begin, static,
                 seq_score, rng.random(len(ad)))


def block_frames(world: World, block: Block, intercept: float) -> Frames:
    """The block's rows of raw_sample, its oracle, user_profile and behavior_log."""
    ads, users = world.ads, block.users
    p = expected_sigmoid(block.static + block.seq_score + intercept, world.cfg.noise_std)
    clk = (block.u_click < p).astype(np.int8)
    user = block.user_ids[block.imp_user]
    raw = pl.DataFrame({"user": user, "time_stamp": block.imp_t,
                        "adgroup_id": world.listings.raw(block.ad, block.imp_t),
                        "pid": _PID_ENUM.gather(pl.Series(block.pid.astype(np.uint32))),
                        "nonclk": 1 - clk, "clk": clk})
    oracle = pl.DataFrame({"user": user, "time_stamp": block.imp_t, "p": p})
    keep = users.has_profile
    fields = [block.user_ids, users.cms_segid, users.cms_group_id, users.gender, users.age,
              users.pvalue, users.shopping, users.occupation, users.new_user_class]
    profile = pl.DataFrame({name: values[keep] for name, values in zip(PROFILE_COLUMNS, fields)})
    profile = profile.with_columns(
        pl.when(pl.col(c) > 0).then(pl.col(c)) for c in (PROFILE_COLUMNS[5], PROFILE_COLUMNS[8]))
    seq = block.seq
    behavior = pl.DataFrame({
        "user": block.user_ids[seq.user], "time_stamp": block.beh_t,
        "btag": _BTAG_ENUM.gather(pl.Series(block.btag.astype(np.uint32))),
        "cate": ads.cate_ids[seq.cat], "brand": ads.brand_ids[seq.obj]})
    return {"raw_sample.csv": raw, "raw_sample_oracle.csv": oracle,
            "user_profile.csv": profile, "behavior_log.csv": behavior}


def calibrate(world: World) -> tuple[float, dict[int, Block]]:
    """b0 solving mean p = target_ctr on the first blocks, and those blocks for reuse."""
    cfg = world.cfg
    first = range(min(CALIBRATION_BLOCKS, n_blocks(cfg.n_users)))
    blocks = {b: simulate_block(world, b) for b in first}
    eta = np.concatenate([blk.static + blk.seq_score for blk in blocks.values()])
    return solve_intercept(eta, cfg.target_ctr, cfg.noise_std), blocks


def generate_taobao_ad(cfg: SyntheticConfig, out_dir: str | Path) -> dict:
    """Write raw_sample, ad_feature, user_profile, behavior_log and raw_sample_oracle CSVs.

    Returns {"rows": {file: rows written}, "mean_p", "click_rate", "intercept", "seconds"}.
    """
    started = time.perf_counter()
    world = build_world(cfg)
    intercept, cached = calibrate(world)
    log.info("taobao_ad: intercept b0 = %.4f for target click rate %.4f", intercept, cfg.target_ctr)
    totals = {"p": 0.0, "clk": 0}

    def simulate(b: int) -> Frames:
        block = cached.pop(b, None) or simulate_block(world, b)
        frames = block_frames(world, block, intercept)
        totals["p"] += float(frames["raw_sample_oracle.csv"]["p"].sum())
        totals["clk"] += int(frames["raw_sample.csv"]["clk"].sum())
        return frames

    with CsvSink(out_dir, FILES, crlf=cfg.crlf) as sink:
        sink.write("ad_feature.csv", ad_feature_frame(world.ads, world.listings))
        run_chunks(cfg.n_users, cfg.chunk_users, simulate, sink, desc="taobao_ad")
    n_imp = sink.rows["raw_sample.csv"]
    summary = {"rows": dict(sink.rows), "mean_p": totals["p"] / n_imp,
               "click_rate": totals["clk"] / n_imp, "intercept": intercept,
               "seconds": time.perf_counter() - started}
    log.info("taobao_ad: wrote %s to %s (click rate %.4f, mean p %.4f) in %.1f s", summary["rows"],
             out_dir, summary["click_rate"], summary["mean_p"], summary["seconds"])
    return summary
