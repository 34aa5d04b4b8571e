"""Interactions (user, item, time) -> a processed next-item dataset, whole or not at all.

The dataset has the CTR side's shape (docs/data_format.md), so the same loader, trainer and
reports read it:
- timelines/history/: every interaction, grouped by user, in time order on the exact times (a
  fraction of a second counts; times are stored in whole seconds, after the sort); ties in time
  keep the file's order (a stable sort on (user, time, line)), which MovieLens, with many equal
  timestamps, needs to be reproducible;
- samples/{train,val,test}: one row per target, its `item` the target's index and
  [history_start, history_end) the rows of the same user before it in that order;
- vocab/item.parquet: raw item id -> index (0 padding, 1 out of vocabulary, 2.. by decreasing
  count), over every item that survives the filtering: all of them are ranked at evaluation;
- vocab/user.parquet: raw user id -> the index `user_id` holds (0.., in sorted order of the ids).

Filtering: exact duplicates (user, item, time) are dropped and counted; with `repeats:
drop_consecutive` an item repeated right after itself is kept once; then users and items with
fewer than `k_core` interactions are dropped, again and again until both hold (a k-core).
Protocols: leave-one-out (RecBole's default for sequential models: per user, the last item is
the test target, the second-last the validation target, every earlier position but the first
a training target), temporal (targets split by global time cut-offs at quantiles of the times, so
no training target comes after a test target of any user) or days (the cut-offs are calendar
days: validation and test days, as the CTR split of the same data). Under both time protocols a
user's first interaction is never a target, and histories reach back over every earlier one.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import polars as pl

from common.atomic import atomic_dir, build_lock, remove_stale
from common.errors import MDAFError
from data_prep.calendar import to_day, utc_zone, zone_name
from data_prep.config import load_prep_config
from data_prep.dataset import SCHEMA_VERSION
from data_prep.next_item.config import DAY_KEYS, NextItemConfig
from data_prep.next_item.readers import detect_format, read_interactions, require_interactions_file
from data_prep.prepare import MARKER, file_stats
from data_prep.samples import SPLITS
from data_prep.vocab import ValueCounts, vocab_meta

log = logging.getLogger(__name__)

TIMELINE = "history"
ORACLE_SUFFIX = ".oracle.parquet"  # beside a synthetic file: each event's rank under the true distribution
PREPARATION = 2  # in the copy's key: bump when the same file and config prepare differently
                 # (2: exact time order, ids stripped, vocab/user.parquet)


def prepare_copy(path: str | Path, root: str | Path, cfg: NextItemConfig) -> Path:
    """The interactions of `path` prepared under `root`/next_item-<file stem>-<hash of the inputs>;
    returns that directory. The inputs are the file's resolved path, size and modification time
    and the resolved `cfg` (and, on synthetic data, the oracle file's): unchanged inputs reuse the
    copy, changed ones prepare a new one beside it. Runs preparing the same copy at once take
    turns (the second waits, then reuses it); what a run killed mid-build left is removed."""
    path = Path(path)
    require_interactions_file(path)
    inputs = {"schema_version": SCHEMA_VERSION, "preparation": PREPARATION, "input": str(path.resolve()),
              "config": config_inputs(cfg), "files": file_stats(path.parent, [path.name, oracle_path(path).name])}
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:8]
    out = Path(root) / f"next_item-{path.name.split('.')[0]}-{digest}"
    remove_stale(root)
    with build_lock(out):
        if (out / MARKER).is_file():
            log.info("reusing %s (prepared from %s; unchanged since)", out, path)
            return out
        prepare_next_item(path, out, cfg, {"inputs": inputs})
    return out


def config_inputs(cfg: NextItemConfig) -> dict:
    """The config as a copy's key records it: the keys of protocol days only when it is used (so
    copies prepared before it existed keep their key)."""
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in DAY_KEYS or cfg.protocol == "days"}


def oracle_path(path: Path) -> Path:
    """Where a synthetic interactions file keeps its oracle ranks."""
    return path.with_name(path.name.rsplit(".", 1)[0] + ORACLE_SUFFIX)


def prepare_next_item(path: str | Path, out_dir: str | Path, cfg: NextItemConfig, inputs: dict | None = None) -> dict:
    """Prepare the interactions of `path` into `out_dir` (module docstring); returns the summary.
    `inputs` (what the dataset is built from) is recorded in meta.json."""
    path, out_dir = Path(path), Path(out_dir)
    began = time.perf_counter()
    frame, dropped = read_interactions(path, cfg)
    frame, drops = filtered(frame, cfg)
    drops = dropped | drops
    oracle = oracle_path(path)
    if oracle.is_file():
        frame = frame.join(pl.read_parquet(oracle).with_columns(pl.col("user").cast(pl.String),
                                                                pl.col("time").cast(pl.Float64)),
                           on=["user", "time"], how="left")
    counts = ValueCounts()
    counts.add("item", frame["item"])
    item_vocab = counts.vocab("item", 1)
    users = frame["user"].unique().sort()
    frame = frame.join(item_vocab.table.select(item=pl.col("raw"), item_idx=pl.col("index")), on="item") \
        .with_columns(user_idx=pl.col("user").replace_strict(users, pl.int_range(len(users), eager=True),
                                                             return_dtype=pl.Int64)) \
        .sort("user_idx", "time", "row")
    days = split_days(cfg, path) if cfg.protocol == "days" else None
    samples = split_targets(frame, cfg, days)
    check_targets(samples, frame, cfg, path, days)
    with atomic_dir(out_dir) as tmp:
        item_vocab.save(tmp / "vocab")
        pl.DataFrame({"raw": users, "index": np.arange(len(users))}).write_parquet(tmp / "vocab" / "user.parquet")
        folder = tmp / "timelines" / TIMELINE
        folder.mkdir(parents=True)
        for name, values, dtype in (("user_id", frame["user_idx"], np.int64), ("time", frame["time"].round(), np.int64),
                                    ("item", frame["item_idx"], np.int32)):
            np.save(folder / f"{name}.npy", values.to_numpy().astype(dtype))
        (tmp / "samples").mkdir()
        rows = {}
        for split in SPLITS:
            part = samples.filter(pl.col("split") == split).drop("split")
            part.write_parquet(tmp / "samples" / f"{split}.parquet")
            rows[split] = part.height
        meta = {"schema_version": SCHEMA_VERSION, "task": "next_item", "source": "next_item", "input": path.name,
                "synthetic": oracle.is_file(), **vocab_meta({"item": item_vocab}),
                "static_fields": {"item": "item"}, "target_fields": {"item": "item"}, "raw_ids": [],
                "timelines": {TIMELINE: {"rows": frame.height, "fields": {"item": "item"}}},
                "rows": rows, "protocol": cfg.protocol, "drops": drops, **(inputs or {})}
        summary = {"source": path.name, "protocol": cfg.protocol, "users": len(users), "items": item_vocab.size - 2,
                   "interactions": frame.height, "rows": rows, "drops": drops,
                   "sequence_length": sequence_lengths(frame)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
        (tmp / MARKER).write_text(json.dumps({"written_by": "data_prep.next_item", "schema_version": SCHEMA_VERSION}))
    log.info("wrote %s in %.1f s: %d users, %d items, %d interactions; targets %s", out_dir,
             time.perf_counter() - began, len(users), item_vocab.size - 2, frame.height, rows)
    return summary


def filtered(frame: pl.DataFrame, cfg: NextItemConfig) -> tuple[pl.DataFrame, dict[str, int]]:
    """Duplicates and repeats out, then the k-core (module docstring); and what each step dropped."""
    drops = {}
    unique = frame.unique(["user", "item", "time"], keep="first", maintain_order=True)
    drops["duplicate (user, item, time)"] = frame.height - unique.height
    frame = unique.sort("user", "time", "row")
    if cfg.repeats == "drop_consecutive":
        again = (pl.col("item") == pl.col("item").shift()) & (pl.col("user") == pl.col("user").shift())
        kept = frame.filter(~again.fill_null(False))
        drops["the same item right after itself"] = frame.height - kept.height
        frame = kept
    before = frame.height
    while True:
        kept = frame.filter((pl.len().over("user") >= cfg.k_core) & (pl.len().over("item") >= cfg.k_core))
        if kept.height == frame.height:
            break
        frame = kept
    drops[f"outside the {cfg.k_core}-core of users and items"] = before - frame.height
    if frame.height == 0:
        raise MDAFError(f"no interactions left after the {cfg.k_core}-core filter; lower 'k_core'")
    return frame, drops


def split_targets(frame: pl.DataFrame, cfg: NextItemConfig,
                  days: tuple[tuple[int, int], tuple[int, int]] | None = None) -> pl.DataFrame:
    """One row per target: split, label, time, user_id, item, history_start, history_end
    [, oracle_rank]; `frame` sorted by (user, time, line); `days`: protocol days' [start, end) of
    the validation and of the test days (`split_days`)."""
    frame = frame.with_columns(_row=pl.int_range(pl.len()), position=pl.int_range(pl.len()).over("user_idx"),
                               n=pl.len().over("user_idx"))
    frame = frame.with_columns(first=pl.col("_row") - pl.col("position"))  # the user's first row
    if cfg.protocol == "loo":
        split = (pl.when(pl.col("position") == pl.col("n") - 1).then(pl.lit("test"))
                 .when(pl.col("position") == pl.col("n") - 2).then(pl.lit("val"))
                 .when(pl.col("position") >= 1).then(pl.lit("train")))
    elif cfg.protocol == "temporal":
        t1, t2 = temporal_cutoffs(frame, cfg)
        split = (pl.when(pl.col("position") == 0).then(None)
                 .when(pl.col("time") < t1).then(pl.lit("train"))
                 .when(pl.col("time") < t2).then(pl.lit("val"))
                 .otherwise(pl.lit("test")))
    else:
        (val_start, val_end), (test_start, test_end) = days
        time = pl.col("time")
        split = (pl.when(pl.col("position") == 0).then(None)
                 .when(time < val_start).then(pl.lit("train"))
                 .when(time < val_end).then(pl.lit("val"))
                 .when((time >= test_start) & (time < test_end)).then(pl.lit("test")))
    targets = frame.with_columns(split=split).filter(pl.col("split").is_not_null())
    columns = [pl.col("split"), pl.lit(1, dtype=pl.Int8).alias("label"), pl.col("time").round().cast(pl.Int64),
               pl.col("user_idx").alias("user_id"), pl.col("item_idx").alias("item"),
               pl.col("first").cast(pl.Int64).alias("history_start"), pl.col("_row").cast(pl.Int64).alias("history_end")]
    if "oracle_rank" in targets.columns:
        columns.append(pl.col("oracle_rank").cast(pl.Int32))
    return targets.select(columns)


def split_days(cfg: NextItemConfig, path: Path) -> tuple[tuple[int, int], tuple[int, int]]:
    """Protocol days' [start, end) in Unix seconds of the validation and of the test days: the
    config's, or for UserBehavior.csv (when unset) those of its CTR split (configs/data/userbehavior.yaml)."""
    days = {"val": cfg.val_days, "test": cfg.test_days}
    if None in days.values():
        if (detect_format(path) if cfg.format == "auto" else cfg.format) != "userbehavior":
            raise MDAFError(f"{path}: protocol 'days' needs the next-item config's keys 'val_days' and 'test_days' "
                            "([first, last] calendar days; set in data.prep of the experiment config); only "
                            "UserBehavior.csv has them by default")
        ctr = load_prep_config("userbehavior")
        days = {split: chosen if chosen is not None else getattr(ctr, f"{split}_days") for split, chosen in days.items()}
    return cfg.day_bounds(days["val"], days["test"])


def temporal_cutoffs(frame: pl.DataFrame, cfg: NextItemConfig) -> tuple[float, float]:
    """The temporal protocol's cut-offs: the `temporal_quantiles` of all interaction times."""
    t1, t2 = (float(frame["time"].quantile(q, "lower")) for q in cfg.temporal_quantiles)
    return t1, t2


def check_targets(samples: pl.DataFrame, frame: pl.DataFrame, cfg: NextItemConfig, path: Path,
                  days: tuple[tuple[int, int], tuple[int, int]] | None = None) -> None:
    """MDAFError naming the protocol's requirement when it leaves no train or no validation target
    (nor, with protocol days, no test target)."""
    needed = ("train", "val", "test") if cfg.protocol == "days" else ("train", "val")
    empty = [split for split in needed if samples.filter(pl.col("split") == split).height == 0]
    if not empty:
        return
    if cfg.protocol == "days":
        zone = utc_zone(cfg.utc_offset_hours)
        first, last = (to_day(int(frame["time"].min()), zone), to_day(int(frame["time"].max()), zone))
        (val_start, _), (test_start, test_end) = days
        why = (f"its interactions run from {first} to {last} ({zone_name(zone)}), and the validation days start "
               f"{to_day(val_start, zone)}, the test days {to_day(test_start, zone)} to {to_day(test_end - 1, zone)}: "
               "set data.prep.val_days and test_days inside them")
    elif cfg.protocol == "loo":
        why = ("leave-one-out trains on users with at least 4 interactions (the first has no history, the last "
               "two validate and test): raise data.prep.k_core to 4 or more")
    else:
        t1, t2 = temporal_cutoffs(frame, cfg)
        why = (f"its interaction times take {frame['time'].n_unique()} distinct value(s), and the cut-offs at their "
               f"{cfg.temporal_quantiles} quantiles ({t1:.10g}, {t2:.10g}) leave none before them: use --protocol "
               "loo, or data.prep.temporal_quantiles that fall between distinct times")
    raise MDAFError(f"{path}: protocol {cfg.protocol!r} leaves no {' and no '.join(empty)} targets; {why}")


def sequence_lengths(frame: pl.DataFrame) -> dict[str, float]:
    lengths = frame.group_by("user_idx").len()["len"]
    return {"mean": float(lengths.mean()), "median": float(lengths.median()), "max": int(lengths.max())}
