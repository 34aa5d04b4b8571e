"""The real public samples in ../shared/data parse with their real quirks (skipped if absent)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from data_prep.config import load_prep_config
from data_prep.prepare import prepare

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} not present")


@needs_shared
def test_fuxictr_tiny_taobao_ad(tmp_path):
    out = tmp_path / "ad"
    summary = prepare(SHARED / "taobao_ad_tiny", out, load_prep_config("taobao_ad"))
    train = summary["splits"]["train"]
    assert (train["rows"], train["users"], train["items"]) == (100, 24, 94)
    # the trailing space of `new_user_class_level ` and the empty cells are read, not rejected
    profile = pl.read_parquet(out / "vocab" / "new_user_class_level.parquet")
    assert -1 in profile["raw"].to_list()
    assert -1 in pl.read_parquet(out / "vocab" / "pvalue_level.parquet")["raw"].to_list()
    assert -1 in pl.read_parquet(out / "vocab" / "brand.parquet")["raw"].to_list()  # NULL brands
    meta = json.loads((out / "meta.json").read_text())
    assert list(meta["timelines"]) == ["click"]  # the sample has no behavior_log.csv


@needs_shared
def test_userbehavior_sample(tmp_path):
    out = tmp_path / "ub"
    summary = prepare(SHARED / "userbehavior_sample", out, load_prep_config("userbehavior"))
    assert summary["drops"]["UserBehavior.csv: timestamp outside 2017-11-25..2017-12-03"] == 35
    rows = sum(s["rows"] for s in summary["splits"].values())
    pv = pl.read_csv(SHARED / "userbehavior_sample" / "UserBehavior.csv", has_header=False,
                     new_columns=["u", "i", "c", "b", "t"])
    in_window = pv.filter(pl.col("t").is_between(1511539200, 1512316800, closed="left"))
    assert rows == in_window.filter(pl.col("b") == "pv").height
    assert np.load(out / "timelines" / "behavior" / "time.npy").shape[0] == in_window.height
    for split in summary["splits"].values():
        assert 0 < split["label_rate"] < 0.1
