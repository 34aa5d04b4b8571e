"""Small, valid raw files in the exact Tianchi formats, written by hand for tests to break."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

T0 = 1494000000  # 2017-05-06 00:00 Beijing
DAY = 86_400

RAW_SAMPLE = ["user,time_stamp,adgroup_id,pid,nonclk,clk"] + [
    f"{u},{T0 + d * DAY + 3600 * h},{ad},430548_1007,{1 - c},{c}"
    for u, d, h, ad, c in [(11, 0, 9, 501, 1), (11, 2, 10, 502, 0), (11, 6, 11, 501, 1),
                           (12, 1, 12, 503, 0), (12, 6, 8, 501, 0), (12, 7, 20, 502, 1),
                           (13, 3, 1, 502, 0), (13, 7, 2, 504, 1)]]
AD_FEATURE = ["adgroup_id,cate_id,campaign_id,customer,brand,price",
              "501,7,900,80,4000,3.9", "502,8,901,81,NULL,189.0", "503,7,902,80,4001,59.0",
              "504,9,903,82,4003,12.5"]
USER_PROFILE = ["userid,cms_segid,cms_group_id,final_gender_code,age_level,pvalue_level,"
                "shopping_level,occupation,new_user_class_level ",
                "11,0,3,2,3,,3,0,", "12,5,4,1,2,2,3,1,3"]
BEHAVIOR_LOG = ["user,time_stamp,btag,cate,brand"] + [
    f"{u},{T0 + s},{b},{c},{br}"
    for u, s, b, c, br in [(11, -5 * DAY, "pv", 7, 4000), (11, 9 * 3600, "cart", 7, 4000),
                           (11, 9 * 3600 - 1, "pv", 8, 4002), (12, DAY, "fav", 7, 4001),
                           (12, 7 * DAY + 20 * 3600 - 1, "buy", 8, 4000), (13, 3 * DAY, "pv", 9, 4003),
                           (14, DAY, "pv", 7, 4000)]]
USER_BEHAVIOR = [f"{u},{i},{c},{b},{1511539200 + s}" for u, i, c, b, s in [
    (1, 100, 5, "pv", 3600), (1, 100, 5, "cart", 3700), (1, 101, 6, "pv", 7 * DAY + 60),
    (1, 100, 5, "pv", 8 * DAY + 60), (2, 102, 5, "pv", 100), (2, 102, 5, "buy", 100 + 25 * 3600),
    (2, 103, 7, "pv", 7 * DAY + 5), (2, 103, 7, "fav", 8 * DAY + 10), (2, 104, 7, "pv", 8 * DAY + 20)]]


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


def taobao_ad_raw(directory: Path, behavior_log: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    files = {"raw_sample.csv": RAW_SAMPLE, "ad_feature.csv": AD_FEATURE, "user_profile.csv": USER_PROFILE}
    if behavior_log:
        files["behavior_log.csv"] = BEHAVIOR_LOG
    for name, lines in files.items():
        write_lines(directory / name, lines)
    return directory


def userbehavior_raw(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    write_lines(directory / "UserBehavior.csv", USER_BEHAVIOR)
    return directory


# ----- next-item: interactions (user, item, time) -----
INTER_HEADER = "user_id:token\titem_id:token\ttimestamp:float"
NEXT_ITEM_EXPERIMENT = {"experiment": "tiny", "label": "Mamba4Rec",
                        "model": {"base": "configs/model/mamba4rec.yaml", "hidden": 16, "d_state": 8},
                        "train": {"base": "configs/train/next_item.yaml", "epochs": 1, "batch_size": 64, "seq_len": 12,
                                  "threads": 1},
                        "data": {"source": "next_item"}, "ranking": {"train_on": "all"}}


def interactions(seed: int = 0) -> list[tuple[int, int, int]]:
    """(user, item, time): users 1..30 (so their sorted text differs from their numeric order),
    items 0..19, 10 interactions each, times increasing per user."""
    rng = np.random.default_rng(seed)
    return [(u, int(rng.integers(20)), 1000 + 60 * t + u) for u in range(1, 31) for t in range(10)]


def write_inter(path: Path, rows: list[tuple], header: str = INTER_HEADER) -> Path:
    """A RecBole atomic file of `rows`."""
    path.write_text("\n".join([header, *("\t".join(map(str, r)) for r in rows)]) + "\n")
    return path


def next_item_experiment(folder: Path) -> Path:
    """NEXT_ITEM_EXPERIMENT as a YAML in `folder`."""
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(NEXT_ITEM_EXPERIMENT))
    return path
