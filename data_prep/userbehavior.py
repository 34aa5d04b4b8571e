"""Taobao user behaviour data (Tianchi 649) -> processed dataset.

Every `pv` is a sample. Its label is 1 when the same user carts, favours or buys the same item at
or after the view and no later than min(view + horizon, end of the view's split): a label never
depends on an event in a later split, so the train labels carry nothing of validation or test.
The `behavior` timeline holds every behaviour (item, category, type), read strictly before each
view. Rows outside the documented window are dropped and counted.
"""
from __future__ import annotations

import logging
from pathlib import Path

import polars as pl
from tqdm import tqdm

from data_prep import checks
from data_prep.buckets import count_buckets, drop_duplicates, read_bucket, scan_buckets, write_buckets
from data_prep.config import PrepConfig
from data_prep.oracle import check_oracle, join_oracle
from data_prep.raw_files import (USER_BEHAVIOR, USER_BEHAVIOR_ORACLE, explain_read_error, last_line_cut,
                                 require_file, scan_raw)
from data_prep.samples import SampleWriter, split_column
from data_prep.static_features import calendar_columns
from data_prep.timeline import TimelineWriter, point_samples, raw_column
from data_prep.vocab import Reused, ValueCounts, Vocab, encode, fixed_vocab, vocab_meta

log = logging.getLogger(__name__)

BTAGS = ["pv", "cart", "fav", "buy"]
CONVERSIONS = ["cart", "fav", "buy"]
STATIC = {"user": "user", "item": "item", "cate": "cate"}
TIMELINE = {"item": "item", "cate": "cate", "btag": "btag"}
RAW_IDS = ["item", "cate"]  # raw ids kept beside the indices, in the samples and the timeline
_RENAME = {"user_id": "user", "item_id": "item", "category_id": "cate", "behavior_type": "btag",
           "timestamp": "time"}


def prepare_userbehavior(raw_dir: Path, cfg: PrepConfig, work: Path, out: Path,
                         reused: Reused | None = None) -> dict:
    """Run the whole pipeline; writes vocab/, timelines/, samples/ under `out`, returns meta.

    reused: the vocabularies and meta.json of an existing dataset (vocab.load_vocabularies) to
    encode with; None fits them on the train split.
    """
    try:
        return _prepare(raw_dir, cfg, work, out, reused)
    except pl.exceptions.PolarsError as exc:
        raise explain_read_error(exc, raw_dir, [USER_BEHAVIOR, USER_BEHAVIOR_ORACLE]) from None


def _prepare(raw_dir: Path, cfg: PrepConfig, work: Path, out: Path,
             reused: Reused | None) -> dict:
    path = require_file(raw_dir, USER_BEHAVIOR)
    has_oracle = (raw_dir / USER_BEHAVIOR_ORACLE.name).is_file()
    cut = last_line_cut(path)
    raw = scan_raw(raw_dir, USER_BEHAVIOR, drop_last_line=cut).rename(_RENAME)
    n_buckets = count_buckets([path], cfg.bucket_mb)
    log.info("streaming %s (%.0f MB) once, into %d user bucket(s)", path,
             path.stat().st_size / 2**20, n_buckets)
    write_buckets(raw, "user", n_buckets, work / "rows")
    rows = scan_buckets(work / "rows")
    checks.require_no_nulls(rows, list(_RENAME.values()), path)
    checks.require_none(rows, ~pl.col("btag").is_in(BTAGS), path, "behavior_type", f"one of {BTAGS}")
    n_rows, n_out = checks.count_outside_window(rows, "time", cfg.sample_window, path,
                                                cfg.max_out_of_window_fraction)
    start, end = cfg.sample_window
    in_window = pl.col("time").is_between(start, end, closed="left")
    n_between = checks.count_between_splits(rows, "time", cfg.sample_window, cfg.split_bounds)
    drops = {f"{path.name}: last line cut short (no newline after it)": checks.limit_cut_line(
                 cut, n_rows, cfg.max_cut_line_fraction, path),
             f"{path.name}: timestamp outside {cfg.sample_days[0]}..{cfg.sample_days[1]}": n_out,
             f"{path.name}: inside the window but in no split (kept in histories only)": n_between}

    oracle_schema = None
    if has_oracle:
        opath = raw_dir / USER_BEHAVIOR_ORACLE.name
        oracle = scan_raw(raw_dir, USER_BEHAVIOR_ORACLE).rename({"user_id": "user", "timestamp": "time"})
        write_buckets(oracle, "user", n_buckets, work / "oracle")
        check_oracle(scan_buckets(work / "oracle"), ["user", "time"], opath)
        oracle_schema = oracle.collect_schema()

    schema = raw.collect_schema()
    buckets = [read_bucket(work / "rows", k, schema).filter(in_window) for k in range(n_buckets)]
    vocabs = _fit_vocabularies([b.unique() for b in buckets], cfg) if reused is None else reused[0]
    for vocab in vocabs.values():
        vocab.save(out / "vocab")

    timeline = TimelineWriter(work, "behavior", list(TIMELINE), RAW_IDS)
    samples = SampleWriter(work)
    n_duplicates = 0
    for k in tqdm(range(n_buckets), desc="userbehavior buckets", unit="bucket", disable=n_buckets < 2):
        oracle_k = read_bucket(work / "oracle", k, oracle_schema).collect() if has_oracle else None
        unique, dropped = drop_duplicates(buckets[k].collect())
        n_duplicates += dropped
        _prepare_bucket(unique, oracle_k, vocabs, cfg, timeline, samples)
    drops[f"{path.name}: exact duplicate of an earlier row (dropped)"] = checks.limit_duplicates(
        n_duplicates, n_rows, cfg.max_duplicate_fraction, path, "dropped")

    sample_schema = pl.Schema({"label": pl.Int8, "time": pl.Int64, "user_id": pl.Int64,
                               **{f: pl.Int32 for f in [*STATIC, "hour", "dow"]},
                               "behavior_start": pl.Int64, "behavior_end": pl.Int64,
                               **({"oracle_p": pl.Float32} if has_oracle else {}),
                               **{raw_column(f): pl.Int64 for f in RAW_IDS}})
    rows_per_split = samples.finish(out, sample_schema)
    return {
        "source": "userbehavior",
        "synthetic": has_oracle,
        **vocab_meta(vocabs),
        "static_fields": dict(STATIC) | {"hour": "hour", "dow": "dow"},
        "target_fields": {"item": "item", "cate": "cate"},
        "raw_ids": RAW_IDS,
        "timelines": {"behavior": {"rows": timeline.finish(out), "fields": TIMELINE, "raw_ids": RAW_IDS}},
        "rows": rows_per_split,
        "label_horizon_hours": cfg.label_horizon_hours,
        "drops": drops,
        "user_buckets": n_buckets,
    }


def _fit_vocabularies(buckets: list[pl.LazyFrame], cfg: PrepConfig) -> dict[str, Vocab]:
    """Users from train views; items and categories from every row before the train split ends;
    the fixed behaviour-type, hour and weekday vocabularies.

    Counted one user bucket at a time (rows already inside the window).
    """
    t_start, t_end = cfg.split_bounds["train"]
    counts = ValueCounts()
    for rows in tqdm(buckets, desc="vocabularies", unit="bucket", disable=len(buckets) < 2):
        early = rows.filter(pl.col("time") < t_end).select("user", "item", "cate", "btag", "time").collect()
        views = early.filter((pl.col("time") >= t_start) & (pl.col("btag") == "pv"))
        counts.add("user", views["user"])
        counts.add("item", early["item"])
        counts.add("cate", early["cate"])
    return {**{space: counts.vocab(space, cfg.min_count) for space in ("user", "item", "cate")},
            "btag": fixed_vocab("btag", BTAGS), "hour": fixed_vocab("hour", list(range(24))),
            "dow": fixed_vocab("dow", list(range(7)))}


def label_views(rows: pl.DataFrame, bounds: dict[str, tuple[int, int]], horizon_s: int, view: str = "pv",
                conversions: list[str] = CONVERSIONS) -> pl.DataFrame:
    """The `view` rows with `label`: a conversion of the same item in [t, min(t + horizon, split end)].

    rows: one user bucket with columns user, item, btag, time; bounds: each split's [start, end).
    """
    split_end = pl.lit(None, dtype=pl.Int64)
    for name, (s, e) in bounds.items():
        split_end = pl.when(pl.col("split") == name).then(pl.lit(e)).otherwise(split_end)
    views = (rows.filter(pl.col("btag") == view)
             .with_columns(split=split_column("time", bounds))
             .filter(pl.col("split").is_not_null())
             .with_columns(deadline=pl.min_horizontal(pl.col("time") + horizon_s, split_end - 1))
             .sort("time"))
    conversions = (rows.filter(pl.col("btag").is_in(conversions))
                   .select("user", "item", converted_at=pl.col("time")).sort("converted_at"))
    joined = views.join_asof(conversions, left_on="time", right_on="converted_at",
                             by=["user", "item"], strategy="forward",
                             check_sortedness=False)  # both sorted by time just above
    label = pl.col("converted_at").is_not_null() & (pl.col("converted_at") <= pl.col("deadline"))
    return joined.with_columns(label=label.cast(pl.Int8)).drop("deadline", "converted_at")


def _prepare_bucket(rows: pl.DataFrame, oracle: pl.DataFrame | None, vocabs: dict[str, Vocab],
                    cfg: PrepConfig, timeline: TimelineWriter, samples: SampleWriter) -> None:
    # encode every row once; the views are a subset, labelled on raw ids (OOV items differ)
    fields = STATIC | TIMELINE
    rows = encode(rows, {f"{field}_idx": (field, vocabs[space]) for field, space in fields.items()})
    views = label_views(rows, cfg.split_bounds, cfg.label_horizon_s)
    if oracle is not None:
        views = join_oracle(views, oracle.lazy(), ["user", "time"], USER_BEHAVIOR_ORACLE.name)
    encoded = views.select(
        "split", "label", "time", *calendar_columns("time"), user_id=pl.col("user"),
        **{field: pl.col(f"{field}_idx") for field in STATIC},
        **({"oracle_p": pl.col("oracle_p")} if oracle is not None else {}),
        **{raw_column(f): pl.col(f) for f in RAW_IDS})
    # joins do not keep row order: sort, by user and time first so pointer searches run in order
    encoded = encoded.sort(["user_id", "time", *encoded.columns])
    history = rows.select(user_id=pl.col("user"), time=pl.col("time"),
                          **{field: pl.col(f"{field}_idx") for field in TIMELINE},
                          **{raw_column(f): pl.col(f) for f in RAW_IDS})
    samples.add(point_samples(encoded, {"behavior": history}, {"behavior": timeline}))
