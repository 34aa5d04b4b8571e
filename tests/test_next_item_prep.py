"""Next-item preparation: every input format, duplicates, the iterated k-core, the stable
tie-break, leave-one-out, temporal and calendar-day splits without leakage, the keyed copy, the
synthetic oracle, one-line errors; and MovieLens-100K and the UserBehavior sample when present."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from common.errors import MDAFError
from data_prep.calendar import day_start, to_day, utc_zone
from data_prep.dataset import ProcessedDataset
from data_prep.next_item.config import load_next_item_config
from data_prep.next_item.prepare import prepare_copy, prepare_next_item
from data_prep.next_item.readers import read_interactions
from data_prep.next_item.synthetic import generate_sequences, load_sequence_config

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
ML100K = Path(os.environ.get("MDAF_ML100K", "/tmp/recbole/recbole/dataset_example/ml-100k/ml-100k.inter"))  # README
USERBEHAVIOR = Path(__file__).resolve().parents[2] / "shared" / "data" / "userbehavior_sample" / "UserBehavior.csv"


def write_inter(path: Path, rows: list[tuple]) -> Path:
    path.write_text("\n".join([HEADER, *("\t".join(map(str, r)) for r in rows)]) + "\n")
    return path


def grid(users: int, items: int, per_user: int, seed: int = 0) -> list[tuple]:
    """Interactions where every user and item is frequent: a k-core for small k."""
    rng = np.random.default_rng(seed)
    return [(f"u{u}", f"i{rng.integers(items)}", 4.0, 1000 + 10 * t + u) for u in range(users) for t in range(per_user)]


def timeline(root: Path) -> dict[str, np.ndarray]:
    folder = root / "timelines" / "history"
    return {name: np.load(folder / f"{name}.npy") for name in ("user_id", "time", "item")}


def test_formats_read_the_same_interactions(tmp_path):
    cfg = load_next_item_config()
    rows = [("7", "100", 5.0, 881250949), ("7", "101", 3.0, 881250950)]
    atomic = write_inter(tmp_path / "x.inter", rows)
    udata = tmp_path / "u.data"
    udata.write_text("".join(f"{u}\t{i}\t{int(r)}\t{t}\n" for u, i, r, t in rows))
    dat = tmp_path / "ratings.dat"
    dat.write_text("".join(f"{u}::{i}::{int(r)}::{t}\n" for u, i, r, t in rows))
    csv = tmp_path / "log.csv"
    csv.write_text("uid,iid,ts\n" + "".join(f"{u},{i},{t}\n" for u, i, _, t in rows))
    parquet = tmp_path / "log.parquet"
    pl.DataFrame({"user_id": [7, 7], "item_id": [100, 101], "timestamp": [881250949, 881250950]}).write_parquet(parquet)
    expected = [("7", "100", 881250949), ("7", "101", 881250950)]
    for path, overrides in ((atomic, {}), (udata, {}), (dat, {}), (parquet, {}),
                            (csv, {"user_column": "uid", "item_column": "iid", "time_column": "ts"})):
        frame, _ = read_interactions(path, load_next_item_config(**overrides))
        assert list(frame.select("user", "item", "time").iter_rows()) == expected, path.name
    assert read_interactions(atomic, cfg)[0]["rating"].to_list() == [5.0, 3.0]


def test_bad_inputs_are_named(tmp_path):
    cfg = load_next_item_config()
    with pytest.raises(MDAFError, match=r"log.csv: missing column\(s\) \['user_id'"):
        (tmp_path / "log.csv").write_text("a,item_id,timestamp\n1,2,3\n")
        read_interactions(tmp_path / "log.csv", cfg)
    with pytest.raises(MDAFError, match=r"x.inter: missing field\(s\) \['timestamp'\]"):
        (tmp_path / "x.inter").write_text("user_id:token\titem_id:token\n1\t2\n")
        read_interactions(tmp_path / "x.inter", cfg)
    with pytest.raises(MDAFError, match="notes.txt: cannot tell its format"):
        (tmp_path / "notes.txt").write_text("x")
        read_interactions(tmp_path / "notes.txt", cfg)
    with pytest.raises(MDAFError, match="key 'protocol' is 'random'"):
        load_next_item_config(protocol="random")
    with pytest.raises(MDAFError, match="missing.inter: interactions file not found"):
        prepare_copy(tmp_path / "missing.inter", tmp_path / "data", cfg)


def test_kcore_is_iterated_and_duplicates_counted(tmp_path):
    # u0..u2 hold a 3-core (4 items each, so leave-one-out has train targets); u3 has 3
    # interactions but two with items seen only by it: dropping those items leaves u3 with 1, so
    # u3 goes in the second round
    rows = [(f"u{u}", f"i{i}", 1.0, 10 * i + u) for u in range(3) for i in range(4)]
    rows += [("u3", "i0", 1.0, 1), ("u3", "i8", 1.0, 2), ("u3", "i9", 1.0, 3), ("u0", "i0", 1.0, 0)]  # last: a duplicate
    out = tmp_path / "out"
    summary = prepare_next_item(write_inter(tmp_path / "k.inter", rows), out, load_next_item_config(k_core=3))
    assert summary["users"] == 3 and summary["items"] == 4 and summary["interactions"] == 12
    assert summary["drops"]["duplicate (user, item, time)"] == 1
    assert summary["drops"]["outside the 3-core of users and items"] == 3


def test_equal_times_keep_the_file_order(tmp_path):
    rows = [("u1", f"i{i}", 1.0, 900 + i) for i in range(5)]  # a second user, so each item is seen twice
    rows += [("u0", f"i{i}", 1.0, 500) for i in (3, 1, 2, 0, 4)]  # five items at one second
    out = tmp_path / "out"
    prepare_next_item(write_inter(tmp_path / "t.inter", rows), out, load_next_item_config(k_core=2))
    vocab = pl.read_parquet(out / "vocab" / "item.parquet")
    raw = dict(zip(vocab["index"].to_list(), vocab["raw"].to_list()))
    line = timeline(out)
    u0 = line["user_id"][line["time"] == 500]
    assert len(set(u0.tolist())) == 1
    assert [raw[i] for i in line["item"][line["time"] == 500]] == ["i3", "i1", "i2", "i0", "i4"]


def test_leave_one_out_splits_each_user(tmp_path):
    rows = grid(users=6, items=5, per_user=8)
    out = tmp_path / "out"
    prepare_next_item(write_inter(tmp_path / "g.inter", rows), out, load_next_item_config(k_core=2))
    ds = ProcessedDataset(out)
    line = timeline(out)
    for split in ("train", "val", "test"):
        t = ds.split(split)
        end, start = t.end["history"], t.start["history"]
        items = pl.read_parquet(out / "samples" / f"{split}.parquet")["item"].to_numpy()
        assert (line["item"][end] == items).all()  # the target is the event right after its history
        assert (line["user_id"][start] == t.user_id).all() and (end > start).all()
        assert (line["time"][end - 1] <= t.time).all()  # history strictly before its target
    test, val, train = ds.split("test"), ds.split("val"), ds.split("train")
    assert len(test) == len(val) == 6 and len(train) == 6 * (8 - 3)
    per_user_last = {u: e for u, e in zip(test.user_id, test.end["history"])}
    assert all(per_user_last[u] == e + 1 for u, e in zip(val.user_id, val.end["history"]))
    assert all(e < per_user_last[u] - 1 for u, e in zip(train.user_id, train.end["history"]))


def test_temporal_split_never_trains_after_a_test_target(tmp_path):
    rows = grid(users=20, items=6, per_user=10, seed=1)
    out = tmp_path / "out"
    prepare_next_item(write_inter(tmp_path / "g.inter", rows), out, load_next_item_config(k_core=2, protocol="temporal"))
    ds = ProcessedDataset(out)
    train, val, test = (ds.split(s) for s in ("train", "val", "test"))
    assert len(train) and len(val) and len(test)
    assert train.time.max() < val.time.min() and val.time.max() < test.time.min()
    assert json.loads((out / "meta.json").read_text())["protocol"] == "temporal"


def hourly(users: int, first: str, hours: int) -> list[tuple]:
    """Every user views item (hour mod 4) each hour from 00:00 UTC of `first`: a 2-core."""
    start = day_start(first, zone=utc_zone(0))
    return [(f"u{u}", f"i{h % 4}", 1.0, start + 3600 * h + u) for u in range(users) for h in range(hours)]


def test_days_split_by_calendar_days_in_the_configs_zone(tmp_path):
    """Days 2017-12-01 to 12-04 hour by hour: validation on 12-02 and test on 12-03 in Beijing
    (UTC+8) move 8 hours earlier than in UTC, and nothing after the test days is a target."""
    path = write_inter(tmp_path / "h.inter", hourly(3, "2017-12-01", 4 * 24))
    for offset in (8, 0):
        zone, out = utc_zone(offset), tmp_path / f"utc{offset}"
        prepare_next_item(path, out, load_next_item_config(k_core=2, protocol="days", val_days=["2017-12-02"] * 2,
                                                           test_days=["2017-12-03"] * 2, utc_offset_hours=offset))
        ds = ProcessedDataset(out)
        days = {split: {to_day(int(t), zone) for t in ds.split(split).time} for split in ("train", "val", "test")}
        assert days == {"train": {"2017-12-01"}, "val": {"2017-12-02"}, "test": {"2017-12-03"}}
        # every hour before the validation day, each user's first excepted: 12-02 starts at 16:00 UTC in Beijing
        assert len(ds.split("train")) == 3 * (24 - offset - 1)
        assert len(ds.split("test")) == 3 * 24
        assert json.loads((out / "meta.json").read_text())["protocol"] == "days"


def test_days_of_userbehavior_default_to_its_ctr_split(tmp_path):
    path = tmp_path / "UserBehavior.csv"
    rows = hourly(3, "2017-12-01", 4 * 24)
    path.write_text("".join(f"{u[1:]},{i[1:]},7,pv,{t}\n" for u, i, _, t in rows))
    out = tmp_path / "out"
    prepare_next_item(path, out, load_next_item_config(k_core=2, protocol="days"))
    ds, beijing = ProcessedDataset(out), utc_zone(8)
    assert {to_day(int(t), beijing) for t in ds.split("val").time} == {"2017-12-02"}  # configs/data/userbehavior.yaml
    assert {to_day(int(t), beijing) for t in ds.split("test").time} == {"2017-12-03"}


def test_days_without_days_or_outside_the_data_are_named(tmp_path):
    path = write_inter(tmp_path / "h.inter", hourly(3, "2017-12-01", 48))
    with pytest.raises(MDAFError, match="h.inter: protocol 'days' needs the next-item config's keys 'val_days' and"):
        prepare_next_item(path, tmp_path / "a", load_next_item_config(k_core=2, protocol="days"))
    with pytest.raises(MDAFError, match="leaves no test targets; its interactions run from 2017-12-01 to 2017-12-03"):
        prepare_next_item(path, tmp_path / "b", load_next_item_config(
            k_core=2, protocol="days", val_days=["2017-12-02"] * 2, test_days=["2017-12-05"] * 2))
    with pytest.raises(MDAFError, match="'test_days' .* must start after 'val_days'"):
        load_next_item_config(val_days=["2017-12-02"] * 2, test_days=["2017-12-02"] * 2)


def test_keyed_copy_is_reused_until_the_file_changes(tmp_path):
    path = write_inter(tmp_path / "g.inter", grid(users=6, items=5, per_user=8))
    cfg = load_next_item_config(k_core=2)
    first = prepare_copy(path, tmp_path / "data", cfg)
    assert prepare_copy(path, tmp_path / "data", cfg) == first
    assert prepare_copy(path, tmp_path / "data", load_next_item_config(k_core=3)) != first
    # the keys of protocol days change nothing under another protocol: the same copy
    assert prepare_copy(path, tmp_path / "data", load_next_item_config(k_core=2, val_days=["2017-12-02"] * 2)) == first
    write_inter(path, grid(users=7, items=5, per_user=8))
    changed = prepare_copy(path, tmp_path / "data", cfg)
    assert changed != first and first.is_dir()
    assert not list((tmp_path / "data").glob(".*tmp*"))  # nothing half-written


def test_synthetic_oracle_ranks_are_recorded(tmp_path):
    cfg = load_sequence_config(None, n_users=60, n_items=80, n_clusters=6, events_per_user=15)
    inter = generate_sequences(cfg, tmp_path)
    out = tmp_path / "out"
    prepare_next_item(inter, out, load_next_item_config())
    test = pl.read_parquet(out / "samples" / "test.parquet")
    assert test["oracle_rank"].null_count() == 0 and test["oracle_rank"].min() >= 1
    assert json.loads((out / "meta.json").read_text())["synthetic"] is True
    # the oracle ranks its own world's items far better than chance (rank ~ items / 2)
    assert test["oracle_rank"].median() < 80 / 4


@pytest.mark.skipif(not ML100K.is_file(), reason=f"MovieLens-100K not at {ML100K} (set MDAF_ML100K; README)")
def test_movielens_100k_prepares_as_recbole_counts(tmp_path):
    summary = prepare_next_item(ML100K, tmp_path / "ml", load_next_item_config())
    assert (summary["users"], summary["items"], summary["interactions"]) == (943, 1349, 99287)
    assert summary["rows"] == {"train": 99287 - 3 * 943, "val": 943, "test": 943}


@pytest.mark.skipif(not USERBEHAVIOR.is_file(), reason="the UserBehavior sample (../shared/data) is absent")
@pytest.mark.parametrize("protocol", ["temporal", "days"])
def test_userbehavior_sample_prepares(tmp_path, protocol):
    summary = prepare_next_item(USERBEHAVIOR, tmp_path / "ub", load_next_item_config(protocol=protocol))
    assert summary["users"] > 100 and summary["items"] > 100
    assert all(n > 0 for n in summary["rows"].values())
