"""Leakage and reproducibility checks on a generated synthetic set, over every sample."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from data_prep.config import load_prep_config
from data_prep.dataset import ProcessedDataset
from data_prep.loader import BatchLoader
from data_prep.prepare import prepare
from data_prep.samples import SPLITS
from data_prep.synthetic_raw import ensure_synthetic_raw, synthetic_config

SMALL = {"n_users": 300, "impressions_per_user": 20, "behaviors_per_user": 80}


@pytest.fixture(scope="module", params=["taobao_ad", "userbehavior"])
def prepared(request, tmp_path_factory):
    source = request.param
    root = tmp_path_factory.mktemp(source)
    raw = ensure_synthetic_raw(source, synthetic_config(seed=3, **SMALL), root=root)
    out = root / "prepared"
    prepare(raw, out, load_prep_config(source))
    return source, raw, out


def samples(out: Path, split: str) -> pl.DataFrame:
    return pl.read_parquet(out / "samples" / f"{split}.parquet")


def test_no_history_event_at_or_after_its_impression(prepared):
    _, _, out = prepared
    meta = json.loads((out / "meta.json").read_text())
    checked = 0
    for name in meta["timelines"]:
        users = np.load(out / "timelines" / name / "user_id.npy")
        times = np.load(out / "timelines" / name / "time.npy")
        for split in SPLITS:
            s = samples(out, split)
            start, end = s[f"{name}_start"].to_numpy(), s[f"{name}_end"].to_numpy()
            owner = np.repeat(np.arange(s.height), end - start)       # every history event ...
            rows = np.concatenate([np.arange(a, b) for a, b in zip(start, end)] or [np.array([], int)])
            assert np.all(users[rows] == s["user_id"].to_numpy()[owner])  # ... is the user's own
            assert np.all(times[rows] < s["time"].to_numpy()[owner])      # ... and strictly earlier
            # and the history is complete: the row at `end` (same user) is at or after the impression
            nxt = end < len(users)
            same = nxt.copy()
            same[nxt] = users[end[nxt]] == s["user_id"].to_numpy()[nxt]
            assert np.all(times[end[same]] >= s["time"].to_numpy()[same])
            first = start > 0
            assert np.all(users[start[first] - 1] != s["user_id"].to_numpy()[first])
            checked += len(rows)
    assert checked > 10_000


def test_splits_are_disjoint_in_time(prepared):
    _, _, out = prepared
    meta = json.loads((out / "meta.json").read_text())
    previous_max = -1
    for split in SPLITS:
        t = samples(out, split)["time"]
        lo, hi = meta["splits"][split]
        assert t.len() > 0 and lo <= t.min() and t.max() < hi and t.min() > previous_max
        previous_max = t.max()


def test_vocabularies_come_from_the_train_split_only(prepared):
    source, raw, out = prepared
    cfg = load_prep_config(source)
    start, end = cfg.split_bounds["train"]
    if source == "taobao_ad":
        imps = pl.read_csv(raw / "raw_sample.csv")
        train_items = imps.filter(pl.col("time_stamp").is_between(start, end, closed="left"))["adgroup_id"]
        later_items = set(imps.filter(pl.col("time_stamp") >= end)["adgroup_id"].to_list())
    else:
        rows = pl.read_csv(raw / "UserBehavior.csv", has_header=False, new_columns=["u", "i", "c", "b", "t"])
        first = cfg.sample_window[0]  # rows before the documented window are dropped
        train_items = rows.filter(pl.col("t").is_between(first, end, closed="left"))["i"]
        later_items = set(rows.filter(pl.col("t") >= end)["i"].to_list())
    vocab = set(pl.read_parquet(out / "vocab" / "item.parquet")["raw"].to_list())
    assert vocab == set(train_items.to_list())
    unseen = later_items - vocab
    assert unseen, "the generated set should have items first seen after train"
    test = samples(out, "test")
    assert (test["item"] == 1).sum() > 0  # those are out of vocabulary, never given an index


def test_oracle_probability_is_carried_into_every_sample(prepared):
    source, raw, out = prepared
    oracle_file = "raw_sample_oracle.csv" if source == "taobao_ad" else "UserBehavior_oracle.csv"
    oracle = pl.read_csv(raw / oracle_file)
    oracle.columns = ["user_id", "time", "p"]
    for split in SPLITS:
        s = samples(out, split)
        joined = s.join(oracle, on=["user_id", "time"], how="left")
        assert joined["p"].null_count() == 0
        np.testing.assert_allclose(joined["oracle_p"].to_numpy(), joined["p"].to_numpy(), rtol=1e-6)


def test_same_seed_gives_identical_files(prepared, tmp_path):
    source, raw, out = prepared
    raw_again = ensure_synthetic_raw(source, synthetic_config(seed=3, **SMALL), root=tmp_path)
    again = tmp_path / "prepared"
    prepare(raw_again, again, load_prep_config(source))
    for first, second in ((raw, raw_again), (out, again)):
        files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
        for f in files:
            if f.name == "meta.json":  # names the raw folder and its files' modification times
                a, b = (json.loads((d / f).read_text()) for d in (first, second))
                assert {k: v for k, v in a.items() if not k.startswith("raw_")} == \
                    {k: v for k, v in b.items() if not k.startswith("raw_")}
            else:
                assert (first / f).read_bytes() == (second / f).read_bytes(), f


def test_loader_windows_match_a_naive_reference(prepared):
    _, _, out = prepared
    data = ProcessedDataset(out)
    seq_len = 7
    loader = BatchLoader(data, "test", seq_len=seq_len, batch_size=256)
    table = data.split("test")
    for name in data.timeline_names:
        arrays = data.timeline(name)
        batch = loader.batch(np.arange(min(256, len(table))))
        for i in range(len(batch["label"])):
            start, end = table.start[name][i], table.end[name][i]
            rows = list(range(max(start, end - seq_len), end))
            pads = seq_len - len(rows)
            assert batch[f"{name}_mask"][i].tolist() == [False] * pads + [True] * len(rows)
            for field in data.timeline_fields(name):
                expected = [0] * pads + [int(arrays[field][r]) for r in rows]
                assert batch[f"{name}_{field}"][i].tolist() == expected
            gaps = [int(table.time[i] - arrays["time"][r]) for r in rows]
            assert batch[f"{name}_time_gap"][i].tolist() == [0] * pads + gaps
