"""Raw files for the generic source's tests: a small shop's click log (text user ids, an item table
in Parquet, a behaviour log, numeric columns of each transform) and a file in Criteo's layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

T0 = 1709251200  # 2024-03-01 00:00 UTC
DAY = 86_400
N_ITEMS, MISSING_ITEMS = 300, 1  # the item table leaves out the last MISSING_ITEMS items
SPLIT = {"by": "days", "train_days": ["2024-03-01", "2024-03-06"], "val_days": ["2024-03-07", "2024-03-07"],
         "test_days": ["2024-03-08", "2024-03-08"]}
SHOP_SCHEMA = {
    "utc_offset_hours": 0,
    "impressions": {
        "file": "impressions.csv", "window": ["2024-03-01", "2024-03-08"],
        "columns": [{"column": "user", "kind": "user"},
                    {"column": "item", "kind": "item", "dtype": "int"},
                    {"column": "ts", "kind": "time"},
                    {"column": "clicked", "kind": "label"},
                    {"column": "device", "kind": "categorical", "min_count": 2},
                    {"column": "dwell", "kind": "numeric", "transform": "standardise", "buckets": 6},
                    {"column": "views", "kind": "numeric", "transform": "log"},
                    {"column": "amount", "kind": "numeric", "transform": "quantile", "buckets": 4}]},
    "side_tables": [{
        "file": "items.parquet",
        "columns": [{"column": "item_id", "kind": "item"},
                    {"column": "category", "kind": "categorical", "name": "cate", "history": True},
                    {"column": "stock", "kind": "numeric", "buckets": 3, "min": 0}]}],
    "log": {
        "file": "behaviors.csv", "window": ["2024-02-26", "2024-03-08"],
        "columns": [{"column": "user", "kind": "user"},
                    {"column": "item", "kind": "item"},
                    {"column": "category", "kind": "categorical", "name": "cate"},
                    {"column": "action", "kind": "type", "values": ["view", "cart", "buy"]},
                    {"column": "ts", "kind": "time"}]},
    "split": SPLIT,
}


def shop_files(directory: Path, seed: int = 0, n_users: int = 120) -> Path:
    """impressions.csv (12 per user over 8 days), items.parquet, behaviors.csv (30 per user from
    3 days earlier). A click is likelier when the user viewed the item's category before."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    category = rng.integers(0, 12, N_ITEMS)
    stock = rng.integers(0, 500, N_ITEMS).astype(float)
    stock[3], stock[4] = -1.0, np.nan  # bad values: made missing, counted
    kept = N_ITEMS - MISSING_ITEMS
    pl.DataFrame({"item_id": np.arange(kept), "category": [f"c{c:02d}" for c in category[:kept]],
                  "stock": stock[:kept]}).write_parquet(directory / "items.parquet")
    users = np.repeat([f"u{u:03d}" for u in range(n_users)], 30)
    items = rng.integers(0, N_ITEMS, len(users))
    log = pl.DataFrame({"user": users, "item": items, "category": [f"c{c:02d}" for c in category[items]],
                        "action": rng.choice(["view", "view", "view", "cart", "buy"], len(users)),
                        "ts": T0 - 3 * DAY + rng.integers(0, 11 * DAY, len(users))})
    log.write_csv(directory / "behaviors.csv")
    users = np.repeat([f"u{u:03d}" for u in range(n_users)], 12)
    items = rng.integers(0, N_ITEMS, len(users))
    ts = T0 + rng.integers(0, 8 * DAY, len(users))
    seen = log.select("user", "category", seen=pl.col("ts"))
    imp = pl.DataFrame({"user": users, "item": items, "ts": ts, "category": [f"c{c:02d}" for c in category[items]]})
    viewed = (imp.join(seen, on=["user", "category"], how="left")
              .with_columns(before=pl.col("seen") < pl.col("ts"))
              .group_by("user", "item", "ts").agg(viewed=pl.col("before").any()))
    imp = imp.join(viewed, on=["user", "item", "ts"], how="left").sort("user", "ts", "item")
    p = np.where(imp["viewed"].fill_null(False).to_numpy(), 0.5, 0.08)
    devices = rng.choice(["ios", "android", "web"], imp.height)
    devices[:2] = ["tv", "car"]  # each seen once in train: below min_count 2
    imp = imp.select("user", "item", "ts").with_columns(
        clicked=pl.Series((rng.random(imp.height) < p).astype(int)), device=pl.Series(devices),
        dwell=pl.Series(np.round(rng.normal(30, 10, imp.height), 2)),
        views=pl.Series(rng.integers(0, 40, imp.height)), amount=pl.Series(np.round(rng.gamma(2, 20, imp.height), 2)))
    imp.write_csv(directory / "impressions.csv")
    return directory


def criteo_file(directory: Path, rows: int = 300, seed: int = 0) -> Path:
    """train.txt in Criteo's layout: label, 13 integer columns (some empty, I2 also negative), 26
    hex categorical columns (some empty); tab-separated, no header."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for _ in range(rows):
        ints = ["" if rng.random() < 0.1 else str(int(rng.integers(-3, 60) if i == 1 else rng.geometric(0.1) - 1))
                for i in range(13)]
        cats = ["" if rng.random() < 0.05 else f"{int(rng.integers(0, 4 if j < 10 else 40)):08x}" for j in range(26)]
        lines.append("\t".join([str(int(rng.random() < 0.25)), *ints, *cats]))
    (directory / "train.txt").write_text("\n".join(lines) + "\n")
    return directory


def criteo_table(directory: Path) -> pl.DataFrame:
    """train.txt read back as a table, in file order."""
    names = ["label", *(f"I{i}" for i in range(1, 14)), *(f"C{i}" for i in range(1, 27))]
    return pl.read_csv(directory / "train.txt", separator="\t", has_header=False, new_columns=names,
                       schema_overrides={f"C{i}": pl.String for i in range(1, 27)})
