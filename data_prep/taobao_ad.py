"""Alibaba display-ad click data (Tianchi 56) -> processed dataset.

Samples are raw_sample impressions (label `clk`) with the ad's features (ad_feature), the user's
profile (user_profile) and context (pid, hour and weekday in Beijing time). Two timelines:
`behavior` from behavior_log (category, brand, behaviour type) and `click` from the user's
earlier clicked impressions (ad, category, brand). Both are read up to, never at or after, each
impression's time. behavior_log (~700M rows) is streamed into user buckets first, so memory is
bounded by the bucket size.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl
from tqdm import tqdm

from common.errors import MDAFError
from data_prep import checks
from data_prep.buckets import count_buckets, drop_duplicates, read_bucket, scan_buckets, write_buckets
from data_prep.config import PrepConfig
from data_prep.oracle import check_oracle, join_oracle
from data_prep.raw_files import (AD_FEATURE, BEHAVIOR_LOG, RAW_SAMPLE, RAW_SAMPLE_ORACLE,
                                 USER_PROFILE, compressed_copy, explain_read_error, last_line_cut,
                                 read_keyed, require_file, scan_raw, unpack_hint)
from data_prep.samples import SampleWriter, split_column
from data_prep.static_features import calendar_columns, price_edges, price_index
from data_prep.timeline import TimelineWriter, point_samples, raw_column, reachable
from data_prep.vocab import Reused, ValueCounts, Vocab, encode, fill_missing, fixed_vocab, vocab_meta

log = logging.getLogger(__name__)

BTAGS = ["pv", "cart", "fav", "buy"]
PROFILE = ["cms_segid", "cms_group_id", "final_gender_code", "age_level", "pvalue_level",
           "shopping_level", "occupation", "new_user_class_level"]
# static field -> (raw column after the joins, vocabulary space)
STATIC = {"user": ("user", "user"), "item": ("adgroup_id", "item"), "cate": ("cate_id", "cate"),
          "brand": ("brand", "brand"), "campaign": ("campaign_id", "campaign"),
          "customer": ("customer", "customer"), "pid": ("pid", "pid"),
          **{f: (f, f) for f in PROFILE}}
TIMELINES = {"behavior": {"cate": "cate", "brand": "brand", "btag": "btag"},
             "click": {"item": "item", "cate": "cate", "brand": "brand"}}
# raw ids kept beside the indices, so a candidate matches its history even where ids are out of
# vocabulary: candidate field -> raw column; each timeline's fields with raw ids
RAW_IDS = {"item": "adgroup_id", "cate": "cate_id", "brand": "brand"}
TIMELINE_RAW_IDS = {"behavior": ["cate", "brand"], "click": ["item", "cate", "brand"]}


def prepare_taobao_ad(raw_dir: Path, cfg: PrepConfig, work: Path, out: Path,
                      reused: Reused | None = None) -> dict:
    """Run the whole pipeline; writes vocab/, timelines/, samples/ under `out`, returns meta.

    reused: the vocabularies and meta.json of an existing dataset (vocab.load_vocabularies) to
    encode with, price edges included; None fits them on the train split.
    """
    specs = [RAW_SAMPLE, AD_FEATURE, USER_PROFILE, BEHAVIOR_LOG, RAW_SAMPLE_ORACLE]
    try:
        return _prepare(raw_dir, cfg, work, out, reused)
    except pl.exceptions.PolarsError as exc:
        raise explain_read_error(exc, raw_dir, specs) from None


def _prepare(raw_dir: Path, cfg: PrepConfig, work: Path, out: Path,
             reused: Reused | None) -> dict:
    drops: dict[str, int] = {}
    has_log = (raw_dir / BEHAVIOR_LOG.name).is_file()
    packed_log = compressed_copy(raw_dir, BEHAVIOR_LOG.name)
    if not has_log and packed_log is not None:  # never fall back to click histories over a packed log
        raise unpack_hint(packed_log, BEHAVIOR_LOG.name)
    if not has_log:
        if cfg.require_behavior_log:
            raise MDAFError(f"{raw_dir / BEHAVIOR_LOG.name}: file not found (require_behavior_log is true)")
        log.warning("%s not found: histories come from earlier clicks in raw_sample only",
                    raw_dir / BEHAVIOR_LOG.name)
    has_oracle = (raw_dir / RAW_SAMPLE_ORACLE.name).is_file()

    ads, drops[f"{AD_FEATURE.name}: price NaN, infinite or negative (kept, price missing)"] = _read_ads(raw_dir, cfg)
    profiles = read_keyed(raw_dir, USER_PROFILE, "userid").rename({"userid": "user"})
    big = [require_file(raw_dir, RAW_SAMPLE), raw_dir / BEHAVIOR_LOG.name]
    n_buckets = count_buckets(big, cfg.bucket_mb)
    log.info("streaming %.0f MB of raw files once, into %d user bucket(s)",
             sum(p.stat().st_size for p in big if p.is_file()) / 2**20, n_buckets)

    tables = {"imp": (RAW_SAMPLE, "user")}
    if has_log:
        tables["beh"] = (BEHAVIOR_LOG, "user")
    if has_oracle:
        tables["oracle"] = (RAW_SAMPLE_ORACLE, "user")
    scans, cut = {}, {}
    for name, (spec, user) in tables.items():
        cut[name] = last_line_cut(require_file(raw_dir, spec))
        raw = scan_raw(raw_dir, spec, drop_last_line=cut[name])
        write_buckets(raw, user, n_buckets, work / name)
        scans[name] = (scan_buckets(work / name), raw.collect_schema())

    log.info("checking the raw rows")
    rows: dict[str, int] = {}
    rows["imp"] = _check_impressions(scans["imp"][0], raw_dir / RAW_SAMPLE.name, cfg, ads, profiles, drops)
    if has_log:
        rows["beh"] = _check_behaviors(scans["beh"][0], raw_dir / BEHAVIOR_LOG.name, cfg, drops)
    for name, n in rows.items():
        path = raw_dir / tables[name][0].name
        drops[f"{path.name}: last line cut short (no newline after it)"] = checks.limit_cut_line(
            cut[name], n, cfg.max_cut_line_fraction, path)
    if has_oracle:
        check_oracle(scans["oracle"][0], ["user", "time_stamp"], raw_dir / RAW_SAMPLE_ORACLE.name)

    def bucket(k: int) -> dict[str, pl.LazyFrame]:
        return {name: read_bucket(work / name, k, schema) for name, (_, schema) in scans.items()}

    if reused is None:
        log.info("fitting vocabularies on the train split")
        vocabs, edges = _fit_vocabularies([bucket(k) for k in range(n_buckets)], ads, profiles, cfg)
    else:
        vocabs, edges = reused[0], np.asarray(reused[1]["price_edges"], dtype=np.float64)
    for vocab in vocabs.values():
        vocab.save(out / "vocab")

    timelines = {"click": TimelineWriter(work, "click", list(TIMELINES["click"]), TIMELINE_RAW_IDS["click"])}
    if has_log:
        timelines["behavior"] = TimelineWriter(work, "behavior", list(TIMELINES["behavior"]),
                                               TIMELINE_RAW_IDS["behavior"])
    samples = SampleWriter(work)
    counts = {"no_impression": 0, "after_last_impression": 0, "imp_duplicates": 0, "beh_duplicates": 0}
    for k in tqdm(range(n_buckets), desc="taobao_ad buckets", unit="bucket", disable=n_buckets < 2):
        _prepare_bucket(bucket(k), ads, profiles, vocabs, edges, cfg, timelines, samples, counts)
    for name, spec, fate in (("imp", RAW_SAMPLE, "dropped"), ("beh", BEHAVIOR_LOG, "kept: no item id")):
        if name in rows:
            drops[f"{spec.name}: exact duplicate of an earlier row ({fate})"] = checks.limit_duplicates(
                counts[f"{name}_duplicates"], rows[name], cfg.max_duplicate_fraction, raw_dir / spec.name, fate)
    if has_log:
        drops["behavior_log.csv: user has no impression in any split"] = counts["no_impression"]
        drops["behavior_log.csv: after the user's last impression (in no history)"] = \
            counts["after_last_impression"]

    log.info("joining the buckets' samples and timelines")
    sample_schema = _sample_schema(list(timelines), has_oracle)
    rows = samples.finish(out, sample_schema)
    tl_meta = {name: {"rows": writer.finish(out), "fields": TIMELINES[name], "raw_ids": TIMELINE_RAW_IDS[name]}
               for name, writer in timelines.items()}
    return {
        "source": "taobao_ad",
        "synthetic": has_oracle,
        **vocab_meta(vocabs),
        "static_fields": {f: space for f, (_, space) in STATIC.items()} | {
            "price": "price", "hour": "hour", "dow": "dow"},
        "target_fields": {"item": "item", "cate": "cate", "brand": "brand"},
        "raw_ids": list(RAW_IDS),
        "timelines": tl_meta,
        "price_edges": edges.tolist(),
        "rows": rows,
        "drops": drops,
        "user_buckets": n_buckets,
    }


def _read_ads(raw_dir: Path, cfg: PrepConfig) -> tuple[pl.DataFrame, int]:
    """ad_feature.csv, and how many of its prices were NaN, infinite or negative (now missing)."""
    ads = read_keyed(raw_dir, AD_FEATURE, "adgroup_id")
    bad = checks.bad_number("price", minimum=0)
    n_bad = checks.limit_share(int(ads.select(bad.sum()).item()), ads.height, cfg.max_bad_price_fraction,
                               "max_bad_price_fraction", raw_dir / AD_FEATURE.name,
                               "have a price that is NaN, infinite or negative (kept, price missing)")
    return ads.with_columns(price=pl.when(bad).then(None).otherwise(pl.col("price"))), n_bad


def _check_impressions(lf: pl.LazyFrame, path: Path, cfg: PrepConfig, ads: pl.DataFrame,
                       profiles: pl.DataFrame, drops: dict[str, int]) -> int:
    """Fail on bad rows; count into `drops` what is dropped or flagged; returns the row count."""
    checks.require_no_nulls(lf, ["user", "time_stamp", "adgroup_id", "clk"], path)
    checks.require_none(lf, ~pl.col("clk").is_in([0, 1]), path, "clk", "a label in {0, 1}")
    checks.require_none(lf, pl.col("nonclk").is_not_null() & (pl.col("nonclk") != 1 - pl.col("clk")),
                        path, "nonclk", "1 - clk")
    rows, n_out = checks.count_outside_window(lf, "time_stamp", cfg.sample_window, path,
                                              cfg.max_out_of_window_fraction)
    drops[f"{path.name}: time_stamp outside {cfg.sample_days[0]}..{cfg.sample_days[1]}"] = n_out
    drops[f"{path.name}: inside the window but in no split"] = checks.count_between_splits(
        lf, "time_stamp", cfg.sample_window, cfg.split_bounds)

    def unmatched(table: pl.DataFrame, key: str) -> int:
        return lf.join(table.lazy().select(key), on=key, how="anti").select(pl.len()).collect(engine="streaming").item()

    drops[f"{path.name}: ad missing from {AD_FEATURE.name} (kept, ad features missing)"] = checks.limit_share(
        unmatched(ads, "adgroup_id"), rows, cfg.max_missing_ad_fraction, "max_missing_ad_fraction", path,
        f"show an ad missing from {AD_FEATURE.name} (kept, its ad features missing)")
    # real data: about 7 % of users have no profile row, a known property of the files, not an error
    drops[f"{path.name}: user missing from {USER_PROFILE.name} (kept, profile missing)"] = unmatched(profiles, "user")
    return rows


def _check_behaviors(lf: pl.LazyFrame, path: Path, cfg: PrepConfig, drops: dict[str, int]) -> int:
    checks.require_no_nulls(lf, ["user", "time_stamp", "btag"], path)
    checks.require_none(lf, ~pl.col("btag").is_in(BTAGS), path, "btag", f"one of {BTAGS}")
    rows, n_out = checks.count_outside_window(lf, "time_stamp", cfg.history_window, path,
                                              cfg.max_out_of_window_fraction)
    drops[f"{path.name}: time_stamp outside {cfg.history_days[0]}..{cfg.history_days[1]}"] = n_out
    return rows


def _fit_vocabularies(buckets: list[dict[str, pl.LazyFrame]], ads: pl.DataFrame,
                      profiles: pl.DataFrame, cfg: PrepConfig) -> tuple[dict[str, Vocab], np.ndarray]:
    """Every vocabulary from train-split impressions and behaviours before the train split ends.

    Counted one user bucket at a time, so memory stays bounded by a bucket.
    """
    start, end = cfg.split_bounds["train"]
    h_start, _ = cfg.history_window
    counts = ValueCounts()
    for frames in tqdm(buckets, desc="vocabularies", unit="bucket", disable=len(buckets) < 2):
        train = (frames["imp"].unique().filter(pl.col("time_stamp").is_between(start, end, closed="left"))
                 .join(ads.lazy(), on="adgroup_id", how="left")
                 .join(profiles.lazy(), on="user", how="left").collect())
        for column, space in STATIC.values():
            counts.add(space, train[column])
        counts.add("price", train["price"].drop_nulls())
        if "beh" in frames:
            early = frames["beh"].filter(pl.col("time_stamp").is_between(h_start, end, closed="left"))
            early = early.select("cate", "brand").collect()
            counts.add("cate", early["cate"])
            counts.add("brand", early["brand"])
    vocabs = {space: counts.vocab(space, cfg.min_count) for _, space in STATIC.values()}
    edges = price_edges(counts.table("price"), cfg.price_buckets)
    vocabs |= {"btag": fixed_vocab("btag", BTAGS), "hour": fixed_vocab("hour", list(range(24))),
               "dow": fixed_vocab("dow", list(range(7))),
               "price": fixed_vocab("price", list(range(len(edges) + 1)))}
    return vocabs, edges


def _prepare_bucket(frames: dict[str, pl.LazyFrame], ads: pl.DataFrame, profiles: pl.DataFrame,
                    vocabs: dict[str, Vocab], edges: np.ndarray, cfg: PrepConfig,
                    timelines: dict[str, TimelineWriter], samples: SampleWriter,
                    counts: dict[str, int]) -> None:
    """One user bucket: drop exact duplicates (counted), encode its impressions, write its timelines,
    point samples into them."""
    imp = _unique(frames["imp"], "imp_duplicates", counts)
    imp = (imp.lazy().with_columns(split=split_column("time_stamp", cfg.split_bounds))
           .filter(pl.col("split").is_not_null())
           .join(ads.lazy(), on="adgroup_id", how="left")
           .join(profiles.lazy(), on="user", how="left")
           .with_columns(calendar_columns("time_stamp"))
           .collect())
    if "oracle" in frames:
        imp = join_oracle(imp, frames["oracle"], ["user", "time_stamp"], RAW_SAMPLE_ORACLE.name)
    imp = encode(imp, {f"{field}_idx": (column, vocabs[space]) for field, (column, space) in STATIC.items()})
    encoded = imp.select(
        "split", label=pl.col("clk").cast(pl.Int8), time=pl.col("time_stamp"), user_id=pl.col("user"),
        **{field: pl.col(f"{field}_idx") for field in STATIC},
        price=price_index("price", edges), hour=pl.col("hour"), dow=pl.col("dow"),
        **({"oracle_p": pl.col("oracle_p")} if "oracle_p" in imp.columns else {}),
        **{raw_column(f): fill_missing(pl.col(c), pl.Int64) for f, c in RAW_IDS.items()})
    # joins do not keep row order: sort, by user and time first so pointer searches run in order
    encoded = encoded.sort(["user_id", "time", *encoded.columns])

    histories = {"click": encoded.filter(pl.col("label") == 1)}
    if "behavior" in timelines:
        h_start, h_end = cfg.history_window
        beh = frames["beh"].collect()
        counts["beh_duplicates"] += beh.height - beh.unique().height  # counted, kept (see _unique)
        beh = beh.filter(pl.col("time_stamp").is_between(h_start, h_end, closed="left"))
        used, no_impression, after_last = reachable(beh, encoded, "user", "time_stamp")
        counts["no_impression"] += no_impression
        counts["after_last_impression"] += after_last
        histories["behavior"] = encode(used, {"cate_idx": ("cate", vocabs["cate"]),
                                              "brand_idx": ("brand", vocabs["brand"]),
                                              "btag_idx": ("btag", vocabs["btag"])}).select(
            user_id=pl.col("user"), time=pl.col("time_stamp"), cate=pl.col("cate_idx"),
            brand=pl.col("brand_idx"), btag=pl.col("btag_idx"),
            **{raw_column(f): fill_missing(pl.col(f), pl.Int64) for f in TIMELINE_RAW_IDS["behavior"]})

    samples.add(point_samples(encoded, histories, timelines))


def _unique(rows: pl.LazyFrame, counter: str, counts: dict[str, int]) -> pl.DataFrame:
    """raw_sample rows without exact duplicates (an impression names its ad, so a repeated row
    is one impression logged twice). behavior_log's repeats are counted but kept: it has no item
    id, so two views of different items of one category and brand in the same second are
    identical rows, and real events."""
    frame, n_duplicates = drop_duplicates(rows.collect())
    counts[counter] += n_duplicates
    return frame


def _sample_schema(timelines: list[str], oracle: bool) -> pl.Schema:
    schema = {"label": pl.Int8, "time": pl.Int64, "user_id": pl.Int64,
              **{field: pl.Int32 for field in [*STATIC, "price", "hour", "dow"]}}
    for name in sorted(timelines):
        schema |= {f"{name}_start": pl.Int64, f"{name}_end": pl.Int64}
    if oracle:
        schema["oracle_p"] = pl.Float32
    schema |= {raw_column(f): pl.Int64 for f in RAW_IDS}
    return pl.Schema(schema)
