"""The pipelines on hand-made raw files whose every pointer and label is worked out by hand."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from data_prep.config import load_prep_config
from data_prep.prepare import prepare
from raw_builders import taobao_ad_raw, userbehavior_raw


def lengths(out, split, timeline):
    s = pl.read_parquet(out / "samples" / f"{split}.parquet").sort("time", "user_id")
    return list(zip(s["user_id"], (s[f"{timeline}_end"] - s[f"{timeline}_start"]).to_list(), s["label"]))


@pytest.fixture(scope="module")
def taobao_ad(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ad")
    out = tmp / "out"
    prepare(taobao_ad_raw(tmp / "raw"), out, load_prep_config("taobao_ad"))
    return out


def test_taobao_ad_histories_stop_strictly_before_each_impression(taobao_ad):
    # user 11 carts at exactly 09:00 on day 0, the time of its first impression: not in its history
    assert lengths(taobao_ad, "train", "behavior") == [(11, 2, 1), (12, 1, 0), (11, 3, 0), (13, 1, 0)]
    assert lengths(taobao_ad, "val", "behavior") == [(12, 1, 0), (11, 3, 1)]
    assert lengths(taobao_ad, "test", "behavior") == [(13, 1, 1), (12, 2, 1)]
    # the click history holds user 11's day-0 click only from the next impression on
    assert lengths(taobao_ad, "train", "click") == [(11, 0, 1), (12, 0, 0), (11, 1, 0), (13, 0, 0)]


def test_taobao_ad_vocabularies_see_only_the_train_split(taobao_ad):
    item = pl.read_parquet(taobao_ad / "vocab" / "item.parquet")
    assert sorted(item["raw"]) == [501, 502, 503]  # 504 is shown on the test day only
    test = pl.read_parquet(taobao_ad / "samples" / "test.parquet")
    assert test.filter(pl.col("user_id") == 13)["item"].to_list() == [1]  # out of vocabulary
    brand = pl.read_parquet(taobao_ad / "vocab" / "brand.parquet")
    assert sorted(brand["raw"]) == [-1, 4000, 4001, 4002, 4003]  # -1: the NULL brand of ad 502
    meta = json.loads((taobao_ad / "meta.json").read_text())
    assert meta["vocab_sizes"]["item"] == 5 and meta["vocab_sizes"]["cate"] == 5


def test_taobao_ad_counts_what_it_drops(taobao_ad):
    summary = json.loads((taobao_ad / "summary.json").read_text())
    assert summary["drops"]["behavior_log.csv: user has no impression in any split"] == 1
    assert summary["splits"]["train"]["rows"] == 4 and summary["splits"]["train"]["label_rate"] == 0.25


def test_taobao_ad_timeline_is_grouped_by_user_and_ordered_by_time(taobao_ad):
    users = np.load(taobao_ad / "timelines" / "behavior" / "user_id.npy")
    times = np.load(taobao_ad / "timelines" / "behavior" / "time.npy")
    assert set(users.tolist()) == {11, 12, 13}
    # each user's rows are contiguous and time-ordered
    for u in set(users.tolist()):
        rows = np.flatnonzero(users == u)
        assert rows.max() - rows.min() + 1 == len(rows)
        assert np.all(np.diff(times[rows]) >= 0)


def test_taobao_ad_without_behavior_log_uses_click_histories_only(tmp_path, caplog):
    out = tmp_path / "out"
    prepare(taobao_ad_raw(tmp_path / "raw", behavior_log=False), out, load_prep_config("taobao_ad"))
    meta = json.loads((out / "meta.json").read_text())
    assert list(meta["timelines"]) == ["click"]
    assert "behavior_log.csv not found" in caplog.text


def test_userbehavior_labels_and_histories(tmp_path):
    out = tmp_path / "out"
    prepare(userbehavior_raw(tmp_path / "raw"), out, load_prep_config("userbehavior"))
    # user 1 carts item 100 100 s after viewing it: positive. User 2 buys 102 after 25 h (> 24 h):
    # negative. User 2 favours 103 on the test day, 24 h after a val-day view: the label of a
    # val sample never reads the test day, so negative.
    assert lengths(out, "train", "behavior") == [(2, 0, 0), (1, 0, 1)]
    assert lengths(out, "val", "behavior") == [(2, 2, 0), (1, 2, 0)]
    assert lengths(out, "test", "behavior") == [(2, 4, 0), (1, 3, 0)]


def test_userbehavior_horizon_is_configurable(tmp_path):
    out = tmp_path / "out"
    prepare(userbehavior_raw(tmp_path / "raw"), out,
            load_prep_config("userbehavior", label_horizon_hours=26))
    assert lengths(out, "train", "behavior") == [(2, 0, 1), (1, 0, 1)]
