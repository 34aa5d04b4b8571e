"""The synthetic generator: exact raw formats, windows, determinism, calibration, and its signal."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from common.errors import MDAFError
from data_prep.calendar import (TAOBAO_AD_BEHAVIOR_DAYS, TAOBAO_AD_IMPRESSION_DAYS,
                                USERBEHAVIOR_DAYS, window)
from data_prep.synthetic import (SyntheticConfig, generate_taobao_ad, generate_userbehavior,
                                 load_synthetic_config)
from data_prep.synthetic.__main__ import main

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(n_users=2500, chunk_users=1000, n_categories=200, n_brands=1500, n_ads=3000,
             n_items=8000, impressions_per_user=12.0, behaviors_per_user=80.0,
             ub_behaviors_per_user=60.0)
TAOBAO_FILES = ["raw_sample.csv", "ad_feature.csv", "user_profile.csv", "behavior_log.csv",
                "raw_sample_oracle.csv"]
UB_FILES = ["UserBehavior.csv", "UserBehavior_oracle.csv"]
UB_COLUMNS = ["user_id", "item_id", "category_id", "behavior_type", "timestamp"]


def _generate(root: Path, **overrides) -> tuple[Path, dict, dict]:
    cfg = SyntheticConfig(**{**SMALL, **overrides})
    return root, generate_taobao_ad(cfg, root), generate_userbehavior(cfg, root)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, dict, dict]:
    return _generate(tmp_path_factory.mktemp("synthetic"))


def _read(root: Path, name: str) -> pl.DataFrame:
    return pl.read_csv(root / name, infer_schema_length=0)  # all strings: check the text itself


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    """Mann-Whitney AUC (ties averaged)."""
    ranks = pl.Series(score).rank("average").to_numpy()
    pos = label.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def test_taobao_headers_and_line_format(generated):
    root, summary, _ = generated
    first_lines = {name: (root / name).open("rb").readline() for name in TAOBAO_FILES}
    assert first_lines == {
        "raw_sample.csv": b"user,time_stamp,adgroup_id,pid,nonclk,clk\n",
        "ad_feature.csv": b"adgroup_id,cate_id,campaign_id,customer,brand,price\n",
        "user_profile.csv": b"userid,cms_segid,cms_group_id,final_gender_code,age_level,"
                            b"pvalue_level,shopping_level,occupation,new_user_class_level \n",
        "behavior_log.csv": b"user,time_stamp,btag,cate,brand\n",
        "raw_sample_oracle.csv": b"user,time_stamp,p\n",
    }
    for name in TAOBAO_FILES:
        assert b"\r" not in (root / name).read_bytes()
        assert summary["rows"][name] == len((root / name).read_bytes().splitlines()) - 1


def test_taobao_values_look_like_the_real_files(generated):
    root = generated[0]
    raw = _read(root, "raw_sample.csv")
    assert set(raw["pid"]) == {"430548_1007", "430539_1007"}
    clk, nonclk = raw["clk"].cast(pl.Int8), raw["nonclk"].cast(pl.Int8)
    assert set(clk) == {0, 1} and (clk + nonclk == 1).all()
    ads = _read(root, "ad_feature.csv")
    assert ads["adgroup_id"].n_unique() == ads.height
    null_share = (ads["brand"] == "NULL").mean()
    assert 0.1 < null_share < 0.5
    assert ads.filter(pl.col("brand") != "NULL")["brand"].str.contains(r"^\d+$").all()
    assert ads["price"].str.contains(r"^\d+\.\d+$").all()
    assert ads["price"].str.ends_with(".0").any() and (~ads["price"].str.ends_with(".0")).any()
    assert set(raw["adgroup_id"]) <= set(ads["adgroup_id"])
    # sparse, realistic id ranges
    assert ads["adgroup_id"].cast(pl.Int64).max() > 50 * SMALL["n_ads"]
    assert ads["cate_id"].cast(pl.Int64).max() <= 13_000
    assert raw["user"].cast(pl.Int64).max() > 100 * SMALL["n_users"]


def test_user_profile_quirks(generated):
    root = generated[0]
    profile = _read(root, "user_profile.csv")
    assert profile["userid"].n_unique() == profile.height
    assert set(profile["final_gender_code"]) == {"1", "2"}
    assert set(profile["age_level"]) <= set("0123456")
    group = profile["cms_group_id"].cast(pl.Int64)
    age, gender = profile["age_level"].cast(pl.Int64), profile["final_gender_code"].cast(pl.Int64)
    assert (group == pl.Series(np.where(gender == 2, age, age + 6))).all()
    pvalue, new_class = profile["pvalue_level"], profile["new_user_class_level "]
    assert 0.3 < pvalue.is_null().mean() < 0.7 and set(pvalue.drop_nulls()) <= {"1", "2", "3"}
    assert 0.15 < new_class.is_null().mean() < 0.45
    assert set(new_class.drop_nulls()) <= {"1", "2", "3", "4"}
    assert set(profile["shopping_level"]) <= {"1", "2", "3"}
    assert set(profile["occupation"]) <= {"0", "1"}
    users = set(_read(root, "raw_sample.csv")["user"])
    missing = len(users - set(profile["userid"])) / len(users)
    assert 0.01 < missing < 0.12


def test_behavior_log_mix_and_windows(generated):
    root = generated[0]
    beh = _read(root, "behavior_log.csv")
    mix = beh["btag"].value_counts(normalize=True)
    share = dict(zip(mix["btag"], mix["proportion"]))
    assert set(share) == {"pv", "cart", "fav", "buy"}
    for tag, expected in {"pv": 0.896, "cart": 0.055, "fav": 0.029, "buy": 0.020}.items():
        assert abs(share[tag] - expected) < 0.01, (tag, share[tag])
    lo, hi = window(*TAOBAO_AD_BEHAVIOR_DAYS)
    t = beh["time_stamp"].cast(pl.Int64)
    assert t.min() >= lo and t.max() < hi
    imp_lo, imp_hi = window(*TAOBAO_AD_IMPRESSION_DAYS)
    raw = _read(root, "raw_sample.csv").with_columns(pl.col("time_stamp").cast(pl.Int64))
    assert raw["time_stamp"].min() >= imp_lo and raw["time_stamp"].max() < imp_hi
    # per user strictly increasing: (user, time_stamp) is a key
    steps = raw.select((pl.col("time_stamp").diff().over("user") > 0) | pl.col("time_stamp")
                       .diff().over("user").is_null())
    assert steps.to_series().all()


def test_oracle_aligned_and_click_rate_near_target(generated):
    root, summary, _ = generated
    raw = pl.read_csv(root / "raw_sample.csv")
    oracle = pl.read_csv(root / "raw_sample_oracle.csv")
    assert raw.select("user", "time_stamp").equals(oracle.select("user", "time_stamp"))
    joined = raw.join(oracle, on=["user", "time_stamp"], how="inner")
    assert joined.height == raw.height
    p, clk = oracle["p"].to_numpy(), raw["clk"].to_numpy()
    assert ((p > 0) & (p < 1)).all()
    assert abs(p.mean() - 0.05) < 0.004
    assert abs(clk.mean() - 0.05) < 0.01
    assert summary["click_rate"] == pytest.approx(clk.mean())
    assert 0.65 < _auc(p, clk) < 0.9


def _history_matches(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each impression's true p and whether its ad's category / brand equals that of each of the
    user's last 50 behaviours strictly before it (k = 0 most recent), straight from the files."""
    beh = pl.read_csv(root / "behavior_log.csv")
    ads = pl.read_csv(root / "ad_feature.csv", null_values="NULL")
    imp = (pl.read_csv(root / "raw_sample.csv")
           .join(pl.read_csv(root / "raw_sample_oracle.csv"), on=["user", "time_stamp"])
           .join(ads.select("adgroup_id", "cate_id", "brand"), on="adgroup_id", how="left"))
    codes = {u: i for i, u in enumerate(np.unique(np.concatenate([beh["user"], imp["user"]])))}
    lo = window(*TAOBAO_AD_BEHAVIOR_DAYS)[0]

    def key(frame: pl.DataFrame) -> np.ndarray:
        user = np.array([codes[u] for u in frame["user"].to_list()], dtype=np.int64)
        return (user << 22) | (frame["time_stamp"].to_numpy() - lo)

    beh_key, imp_key = key(beh), key(imp)
    assert (np.diff(beh_key) >= 0).all()
    end = np.searchsorted(beh_key, imp_key, side="left")      # behaviours strictly before
    begin = np.searchsorted(beh_key, (imp_key >> 22) << 22, side="left")
    pos = end[:, None] - 1 - np.arange(50)[None, :]
    valid = pos >= begin[:, None]
    pos = np.maximum(pos, 0)
    cate = (beh["cate"].to_numpy()[pos] == imp["cate_id"].to_numpy()[:, None]) & valid
    brand = (beh["brand"].to_numpy()[pos] == imp["brand"].fill_null(-1).to_numpy()[:, None]) & valid
    return imp["p"].to_numpy(), cate, brand


def test_recency_matters(generated):
    """An ad matching the user's latest behaviour has a higher true p than one matching only an
    old behaviour (none of the last 10)."""
    p, cate, _ = _history_matches(generated[0])
    latest = cate[:, 0]
    old_only = ~cate[:, :10].any(axis=1) & cate[:, 10:].any(axis=1)
    assert latest.sum() > 200 and old_only.sum() > 50
    assert p[latest].mean() > 1.5 * p[old_only].mean()


def test_recency_matters_at_equal_match_counts(generated):
    """Same numbers of category and brand matches in the window, only their age differs: a
    recency-free (pooled) signal gives a ratio near 1.3 here, the generator's about 2.5."""
    p, cate, brand = _history_matches(generated[0])
    n_cate, n_brand = cate.sum(axis=1), brand.sum(axis=1)
    newest = np.where(cate.any(axis=1), cate.argmax(axis=1), 99)
    log_ratios, weights = [], []
    for c in range(1, 8):
        for b in range(4):
            stratum = (n_cate == c) & (n_brand == b)
            recent, old = stratum & (newest == 0), stratum & (newest >= 10)
            if recent.sum() >= 20 and old.sum() >= 20:
                log_ratios.append(np.log(p[recent].mean() / p[old].mean()))
                weights.append(min(recent.sum(), old.sum()))
    assert len(log_ratios) >= 4
    assert np.exp(np.average(log_ratios, weights=weights)) > 1.8


def test_userbehavior_format_and_oracle(generated):
    root, _, summary = generated
    first = (root / "UserBehavior.csv").open("rb").readline()
    assert re.fullmatch(rb"\d+,\d+,\d+,(pv|buy|cart|fav),\d+\n", first)
    ub = pl.read_csv(root / "UserBehavior.csv", has_header=False, new_columns=UB_COLUMNS)
    assert ub.height == summary["rows"]["UserBehavior.csv"]
    assert ub.schema["timestamp"] == pl.Int64 and ub.schema["item_id"] == pl.Int64
    mix = dict(zip(*ub["behavior_type"].value_counts(normalize=True).to_dict().values()))
    for tag, expected in {"pv": 0.896, "cart": 0.055, "fav": 0.029, "buy": 0.020}.items():
        assert abs(mix[tag] - expected) < 0.01, (tag, mix[tag])
    lo, hi = window(*USERBEHAVIOR_DAYS)
    outside = ((ub["timestamp"] < lo) | (ub["timestamp"] >= hi)).mean()
    assert 0 < outside < 0.003
    assert ub["timestamp"].min() > lo - 2 * 86_400 and ub["timestamp"].max() < hi + 2 * 86_400
    # every row of a user has its own timestamp, in file order
    assert ub.select(pl.col("timestamp").diff().over("user_id").fill_null(1) > 0).to_series().all()
    assert (root / "UserBehavior_oracle.csv").open().readline() == "user_id,timestamp,p\n"
    oracle = pl.read_csv(root / "UserBehavior_oracle.csv")
    views = ub.filter(pl.col("behavior_type") == "pv")
    assert views.select("user_id", "timestamp").equals(oracle.select("user_id", "timestamp"))
    assert abs(oracle["p"].mean() - 0.03) < 0.004
    assert ub["item_id"].max() > 100 * SMALL["n_items"]


def test_conversions_follow_their_view(generated):
    """Views convert into cart/fav/buy of the same item minutes later, more often when p is high."""
    root = generated[0]
    ub = pl.read_csv(root / "UserBehavior.csv", has_header=False, new_columns=UB_COLUMNS)
    views = ub.filter(pl.col("behavior_type") == "pv").join(
        pl.read_csv(root / "UserBehavior_oracle.csv"), on=["user_id", "timestamp"])
    actions = ub.filter(pl.col("behavior_type") != "pv").select(
        "user_id", "item_id", pl.col("timestamp").alias("t_action"))
    labelled = (views.with_row_index("row").join(actions, on=["user_id", "item_id"], how="left")
                .with_columns(((pl.col("t_action") > pl.col("timestamp"))
                               & (pl.col("t_action") <= pl.col("timestamp") + 86_400))
                              .fill_null(False).alias("hit"))
                .group_by("row", maintain_order=True).agg(pl.col("hit").any(), pl.col("p").first()))
    label = labelled["hit"].to_numpy()
    assert 0.02 < label.mean() < 0.1
    assert _auc(labelled["p"].to_numpy(), label) > 0.6


def test_same_seed_same_bytes_any_chunk_size(generated, tmp_path):
    root = generated[0]
    other, _, _ = _generate(tmp_path / "big_chunks", chunk_users=100_000)
    for name in TAOBAO_FILES + UB_FILES:
        assert (root / name).read_bytes() == (other / name).read_bytes(), name


def test_other_seed_other_data(generated, tmp_path):
    root = generated[0]
    cfg = SyntheticConfig(**{**SMALL, "seed": 1, "n_users": 1000})
    generate_taobao_ad(cfg, tmp_path)
    assert (tmp_path / "raw_sample.csv").read_bytes()[:5000] != \
        (root / "raw_sample.csv").read_bytes()[:5000]


def test_crlf_option(tmp_path):
    generate_userbehavior(SyntheticConfig(**{**SMALL, "n_users": 50, "crlf": True}), tmp_path)
    lines = (tmp_path / "UserBehavior.csv").read_bytes().split(b"\n")[:-1]
    assert lines and all(line.endswith(b"\r") for line in lines)


@pytest.mark.parametrize("key, value", [("n_users", 0), ("chunk_users", -1), ("target_ctr", 1.0),
                                        ("target_ctr", 0), ("ub_target_cvr", 1.5),
                                        ("recency_tau", 0.0), ("n_brands", 10),
                                        ("btag_weights", [1.0, 2.0])])
def test_bad_config_values_name_the_key(key, value):
    with pytest.raises(MDAFError, match=key):
        SyntheticConfig(**{key: value})


def test_yaml_defaults_match_the_dataclass(tmp_path):
    assert load_synthetic_config(REPO / "configs" / "data" / "synthetic.yaml") == SyntheticConfig()
    bad = tmp_path / "bad.yaml"
    bad.write_text("n_users: 10\nn_uesrs: 3\n")
    with pytest.raises(MDAFError, match="n_uesrs"):
        load_synthetic_config(bad)


def test_cli(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--n-users", "30", "--source", "userbehavior"]) == 0
    assert "UserBehavior.csv" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(UB_FILES)
    assert main(["--out", str(tmp_path), "--n-users", "0"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "n_users" in err


def test_relisting_churns_ids_and_keeps_the_true_probabilities(generated, tmp_path):
    """relist_days: new ids every day, the oracle untouched, and a view's carts keep its item id."""
    base, _, _ = generated
    root, _, _ = _generate(tmp_path, relist_days=4.0)
    new_share, followed = {}, {}
    for name, where in (("old", base), ("new", root)):
        rows = pl.read_csv(where / "UserBehavior.csv", has_header=False, new_columns=UB_COLUMNS)
        day = ((rows["timestamp"] - window(*USERBEHAVIOR_DAYS)[0]) // 86_400).alias("day")
        rows = rows.with_columns(day).filter(pl.col("day").is_between(0, 8))
        first = rows.group_by("item_id").agg(first=pl.col("day").min())
        new_share[name] = (rows.join(first, on="item_id").filter(pl.col("day") == 8)["first"] == 8).mean()
        views = rows.filter(pl.col("behavior_type") == "pv").sort("timestamp")
        acts = rows.filter(pl.col("behavior_type") != "pv").select("user_id", "item_id", act=pl.col("timestamp"))
        joined = views.join_asof(acts.sort("act"), left_on="timestamp", right_on="act", by=["user_id", "item_id"],
                                 strategy="forward", tolerance=3 * 3600, check_sortedness=False)
        followed[name] = joined["act"].is_not_null().mean()  # views followed by an action on their id
    assert new_share["new"] > new_share["old"] + 0.2  # the last day: far more events on ids never seen before
    assert abs(followed["new"] - followed["old"]) < 0.005  # a converting view's actions keep its item id
    for name in ("UserBehavior_oracle.csv", "raw_sample_oracle.csv"):
        assert (base / name).read_bytes() == (root / name).read_bytes(), name
    ads = pl.read_csv(root / "ad_feature.csv")
    assert ads.height > SMALL["n_ads"] and ads["adgroup_id"].n_unique() == ads.height
    shown = pl.read_csv(root / "raw_sample.csv")["adgroup_id"].unique()
    assert set(shown.to_list()) <= set(ads["adgroup_id"].to_list())  # every id shown has its ad_feature row


def test_long_signal_lies_beyond_a_short_window(tmp_path):
    """With loyal_brand_weight, the brand that lifts a click was last seen in its category far back:
    the oracle's p rises where the user's history holds the ad's (category, brand), and a large
    share of such histories hold it only beyond their last 50 behaviours."""
    cfg = SyntheticConfig(**{**SMALL, "n_users": 300, "behaviors_per_user": 1500.0, "n_pref_categories": 20,
                             "loyal_brand_weight": 1.5, "interest_target_share": 0.5})
    generate_taobao_ad(cfg, tmp_path)
    ads = pl.read_csv(tmp_path / "ad_feature.csv", null_values="NULL").select("adgroup_id", "cate_id", "brand")
    raw = pl.read_csv(tmp_path / "raw_sample.csv").join(ads, on="adgroup_id").with_columns(pl.col("brand").fill_null(-1))
    p = pl.read_csv(tmp_path / "raw_sample_oracle.csv")["p"].to_numpy()
    behavior = pl.read_csv(tmp_path / "behavior_log.csv").sort("user", "time_stamp")
    by_user = {u[0]: g for u, g in behavior.group_by("user")}
    seen_any, seen_recent = np.zeros(len(raw), bool), np.zeros(len(raw), bool)
    for row, (user, t, cate, brand) in enumerate(raw.select("user", "time_stamp", "cate_id", "brand").iter_rows()):
        past = by_user[user].filter(pl.col("time_stamp") < t)
        same = ((past["cate"] == cate) & (past["brand"] == brand)).to_numpy()
        seen_any[row], seen_recent[row] = same.any(), same[-50:].any()
    assert seen_any.mean() > 0.1
    assert p[seen_any].mean() > 1.3 * p[~seen_any].mean()
    assert (~seen_recent[seen_any]).mean() > 0.3  # the evidence is older than the last 50
