"""The generic source (data_prep/generic/): a schema-described click log prepares into the same
dataset contract as the Taobao sources, with every check they make."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal

from common.config import load_yaml
from common.errors import MDAFError
from data_prep.__main__ import main as data_prep_main
from data_prep.config import GENERIC_SCHEMA, load_prep_config
from data_prep.dataset import ProcessedDataset
from data_prep.prepare import prepare
from data_prep.samples import SPLITS
from data_prep.synthetic_raw import ensure_synthetic_raw, synthetic_config
from generic_builders import MISSING_ITEMS, N_ITEMS, SHOP_SCHEMA, T0, criteo_file, criteo_table, shop_files
from raw_builders import taobao_ad_raw, userbehavior_raw
from training.run import main as train_main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]
TAOBAO_AD = load_yaml(GENERIC_SCHEMA)
USERBEHAVIOR = {
    "utc_offset_hours": 8,
    "samples_from_log": {"type": "pv", "conversions": ["cart", "fav", "buy"], "horizon_hours": 24},
    "log": {"file": "UserBehavior.csv", "header": False,
            "names": ["user_id", "item_id", "category_id", "behavior_type", "timestamp"],
            "window": ["2017-11-25", "2017-12-03"],
            "columns": [{"column": "user_id", "kind": "user", "dtype": "int"},
                        {"column": "item_id", "kind": "item", "dtype": "int"},
                        {"column": "category_id", "kind": "categorical", "name": "cate", "dtype": "int"},
                        {"column": "behavior_type", "kind": "type", "values": ["pv", "cart", "fav", "buy"]},
                        {"column": "timestamp", "kind": "time"}]},
    "split": {"by": "days", "train_days": ["2017-11-25", "2017-12-01"], "val_days": ["2017-12-02", "2017-12-02"],
              "test_days": ["2017-12-03", "2017-12-03"]},
    "oracle": {"file": "UserBehavior_oracle.csv", "user": "user_id", "time": "timestamp"},
}
MODEL_META = ("static_fields", "target_fields", "raw_ids", "rows", "splits")


def without(schema: dict, key: str) -> dict:
    return {k: v for k, v in schema.items() if k != key}


def generic(raw: Path, out: Path, schema: dict, **prep) -> ProcessedDataset:
    prepare(raw, out, load_prep_config("generic", schema=schema, **prep))
    return ProcessedDataset(out)


def source(name: str, raw: Path, out: Path, **prep) -> ProcessedDataset:
    prepare(raw, out, load_prep_config(name, **prep))
    return ProcessedDataset(out)


def assert_same_dataset(ours: ProcessedDataset, theirs: ProcessedDataset, unused: set[str] = frozenset()) -> None:
    """Value by value: every split's samples (columns and rows in order), every vocabulary, every
    timeline array, and the meta.json keys a model is built from. `unused`: vocabularies only
    `theirs` writes (Taobao Ad's behaviour types without a behaviour log)."""
    for split in SPLITS:
        assert_frame_equal(pl.read_parquet(ours.root / "samples" / f"{split}.parquet"),
                           pl.read_parquet(theirs.root / "samples" / f"{split}.parquet"))
    names = sorted(p.name for p in (ours.root / "vocab").iterdir())
    assert names == sorted({p.name for p in (theirs.root / "vocab").iterdir()} - {f"{u}.parquet" for u in unused})
    for name in names:
        assert_frame_equal(pl.read_parquet(ours.root / "vocab" / name), pl.read_parquet(theirs.root / "vocab" / name))
    arrays = sorted(str(p.relative_to(ours.root)) for p in (ours.root / "timelines").rglob("*.npy"))
    assert arrays == sorted(str(p.relative_to(theirs.root)) for p in (theirs.root / "timelines").rglob("*.npy"))
    for name in arrays:
        a, b = np.load(ours.root / name), np.load(theirs.root / name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    for key in MODEL_META:
        assert json.dumps(ours.meta[key]) == json.dumps(theirs.meta[key]), key  # the order too
    assert ours.meta["vocab_sizes"] == {k: v for k, v in theirs.meta["vocab_sizes"].items() if k not in unused}
    assert list(ours.meta["timelines"]) == list(theirs.meta["timelines"])
    for name, tl in ours.meta["timelines"].items():
        assert json.dumps(tl) == json.dumps(theirs.meta["timelines"][name]), name


# ----- the Taobao sources' files, described by a schema -----
def test_synthetic_taobao_ad_through_the_schema_is_the_taobao_ad_dataset(tiny_dataset, tmp_path):
    raw = Path(tiny_dataset.meta["raw_dir"])
    assert_same_dataset(generic(raw, tmp_path / "generic", TAOBAO_AD), tiny_dataset)


def test_taobao_ad_in_many_user_buckets(tmp_path):
    raw = ensure_synthetic_raw("taobao_ad", synthetic_config(seed=5, n_users=300, impressions_per_user=10,
                                                             behaviors_per_user=120), root=tmp_path)
    ours = generic(raw, tmp_path / "generic", TAOBAO_AD, bucket_mb=1)
    assert ours.meta["user_buckets"] > 1
    assert_same_dataset(ours, source("taobao_ad", raw, tmp_path / "taobao", bucket_mb=1))


@pytest.mark.parametrize("behavior_log", [True, False], ids=["with_log", "without_log"])
def test_handmade_taobao_ad_files_through_the_schema(tmp_path, behavior_log):
    raw = taobao_ad_raw(tmp_path / "raw", behavior_log=behavior_log)
    schema = TAOBAO_AD if behavior_log else without(TAOBAO_AD, "log")
    assert_same_dataset(generic(raw, tmp_path / "generic", schema), source("taobao_ad", raw, tmp_path / "taobao"),
                        unused=set() if behavior_log else {"btag"})


@pytest.mark.skipif(not (SHARED / "taobao_ad_tiny").is_dir(), reason=f"{SHARED} not present")
def test_real_taobao_ad_sample_through_the_schema(tmp_path):
    raw = SHARED / "taobao_ad_tiny"  # no behavior_log.csv: the schema has no log either
    assert_same_dataset(generic(raw, tmp_path / "generic", without(TAOBAO_AD, "log")),
                        source("taobao_ad", raw, tmp_path / "taobao"), unused={"btag"})


def test_synthetic_userbehavior_through_the_schema_is_the_userbehavior_dataset(tiny_userbehavior, tmp_path):
    raw = Path(tiny_userbehavior.meta["raw_dir"])
    assert_same_dataset(generic(raw, tmp_path / "generic", USERBEHAVIOR), tiny_userbehavior)


def test_handmade_userbehavior_through_the_schema(tmp_path):
    raw = userbehavior_raw(tmp_path / "raw")
    assert_same_dataset(generic(raw, tmp_path / "generic", USERBEHAVIOR),
                        source("userbehavior", raw, tmp_path / "ub"))


@pytest.mark.skipif(not (SHARED / "userbehavior_sample").is_dir(), reason=f"{SHARED} not present")
def test_real_userbehavior_sample_through_the_schema(tmp_path):
    raw = SHARED / "userbehavior_sample"
    ours = generic(raw, tmp_path / "generic", USERBEHAVIOR, bucket_mb=1)
    assert ours.meta["user_buckets"] > 1
    assert_same_dataset(ours, source("userbehavior", raw, tmp_path / "ub", bucket_mb=1))


# ----- a hand-made schema: text ids, numeric columns of each transform, an item table in Parquet -----
@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> ProcessedDataset:
    root = tmp_path_factory.mktemp("shop")
    return generic(shop_files(root / "raw"), root / "prepared", SHOP_SCHEMA)


def shop_rows(dataset: ProcessedDataset) -> pl.DataFrame:
    """The raw impressions with their split, as the file holds them."""
    raw = pl.read_csv(Path(dataset.meta["raw_dir"]) / "impressions.csv")
    bounds = dataset.meta["splits"]
    split = pl.lit(None, dtype=pl.String)
    for name, (start, end) in bounds.items():
        split = pl.when(pl.col("ts").is_between(start, end, closed="left")).then(pl.lit(name)).otherwise(split)
    return raw.with_columns(split=split)


def samples(dataset: ProcessedDataset, split: str = "train") -> pl.DataFrame:
    return pl.read_parquet(dataset.root / "samples" / f"{split}.parquet")


def test_numeric_fits_come_from_the_train_split_only(shop, tmp_path):
    raw = shop_files(tmp_path / "raw")
    table = pl.read_csv(raw / "impressions.csv")
    later = pl.col("ts") >= T0 + 6 * 86_400  # validation and test days: wildly different values
    table.with_columns(dwell=pl.when(later).then(pl.col("dwell") * 100).otherwise("dwell"),
                       views=pl.when(later).then(pl.col("views") + 1000).otherwise("views"),
                       amount=pl.when(later).then(pl.col("amount") * 50).otherwise("amount")
                       ).write_csv(raw / "impressions.csv")
    changed = generic(raw, tmp_path / "prepared", SHOP_SCHEMA)
    assert changed.meta["numeric"] == shop.meta["numeric"]
    for field in ("dwell", "views", "amount"):
        assert_frame_equal(pl.read_parquet(changed.root / "vocab" / f"{field}.parquet"),
                           pl.read_parquet(shop.root / "vocab" / f"{field}.parquet"))
    assert_frame_equal(samples(changed), samples(shop))


def test_numeric_indices_follow_their_transforms(shop):
    rows = shop_rows(shop).sort("user", "ts", "item")
    train = rows.filter(pl.col("split") == "train")
    fits = shop.meta["numeric"]
    # standardise: train's mean and standard deviation, 6 bins over [-3, 3]
    dwell = train["dwell"].to_numpy()
    assert fits["dwell"]["mean"] == pytest.approx(dwell.mean()) and fits["dwell"]["std"] == pytest.approx(dwell.std())
    test_rows = rows.filter(pl.col("split") == "test")
    z = (test_rows["dwell"].to_numpy() - dwell.mean()) / dwell.std()
    expected = test_rows.select(user_id=(pl.col("user").hash(0) // 2).cast(pl.Int64), time=pl.col("ts"),
                                item_raw=pl.col("item"), expected=pl.Series(2 + np.clip(np.floor(z + 3), 0, 5)))
    got = samples(shop, "test").join(expected, on=["user_id", "time", "item_raw"])
    assert got.height == test_rows.height and (got["dwell"] == got["expected"]).all()
    # log: floor(ln(x)^2) for x > 2, else int(x), categories of a train vocabulary
    vocab = pl.read_parquet(shop.root / "vocab" / "views.parquet")
    views = train["views"].to_numpy()
    categories = np.where(views > 2, np.floor(np.log(np.maximum(views, 1)) ** 2), views).astype(int)
    assert sorted(vocab["raw"].to_list()) == sorted(set(categories.tolist()))
    values, counts = np.unique(categories, return_counts=True)
    assert dict(zip(vocab["raw"], vocab["count"])) == dict(zip(values.tolist(), counts.tolist()))
    # quantile: 2 + the number of train-quantile edges <= x, 4 buckets
    edges = fits["amount"]["edges"]
    assert len(edges) == 3 and min(train["amount"]) <= edges[0] < edges[-1] <= max(train["amount"])
    amount_index = samples(shop)["amount"].to_numpy()
    assert set(amount_index.tolist()) == {2, 3, 4, 5}


def test_categorical_min_count_and_out_of_vocabulary(shop):
    devices = pl.read_parquet(shop.root / "vocab" / "device.parquet")
    assert sorted(devices["raw"].to_list()) == ["android", "ios", "web"]  # tv and car: seen once in train
    train = samples(shop)
    assert (train["device"] == 1).sum() == 2  # read as out of vocabulary
    assert shop.meta["static_fields"] == {f: f for f in ["user", "item", "cate", "device", "dwell", "views",
                                                          "amount", "stock", "hour", "dow"]}


def test_side_table_keys_missing_and_bad_values_are_counted(shop):
    rows = shop_rows(shop)
    summary = (shop.root / "summary.txt").read_text()
    n_missing = rows.filter(pl.col("item") >= N_ITEMS - MISSING_ITEMS).height
    assert n_missing > 0
    assert f"{n_missing:>12,}  impressions.csv: item missing from items.parquet (kept, its features missing)" in summary
    assert f"{2:>12,}  items.parquet: a numeric value NaN, infinite or below its min (kept, missing)" in summary
    # an impression of a missing item keeps its features missing: a category of its own
    cate = pl.read_parquet(shop.root / "vocab" / "cate.parquet")
    assert "" in cate["raw"].to_list()


def test_text_ids_keep_every_history_with_its_user(shop):
    timeline = shop.timeline("behavior")
    for split in SPLITS:
        table = shop.split(split)
        for i in range(0, len(table), 7):
            users = timeline["user_id"][table.start["behavior"][i]:table.end["behavior"][i]]
            assert (users == table.user_id[i]).all()


def test_behavior_histories_end_strictly_before_each_impression(shop):
    log = pl.read_csv(Path(shop.meta["raw_dir"]) / "behaviors.csv").unique()  # a repeat names its item: dropped
    rows = shop_rows(shop).filter(pl.col("split").is_not_null())
    expected = (rows.join(log.select("user", seen=pl.col("ts")), on="user", how="left")
                .group_by("user", "ts", "item").agg(n=(pl.col("seen") < pl.col("ts")).sum()))
    timeline = shop.timeline("behavior")
    got = []
    for split in SPLITS:
        table = shop.split(split)
        start, end = table.start["behavior"], table.end["behavior"]
        assert all((timeline["time"][s:e] < t).all() for s, e, t in zip(start, end, table.time))
        got.append(pl.DataFrame({"ts": table.time, "item": table.raw["item"], "n": end - start,
                                 "user_id": table.user_id}))
    got = pl.concat(got)
    assert got.height == rows.height
    assert sorted(got["n"].to_list()) == sorted(expected["n"].cast(pl.Int64).to_list())


def test_without_a_log_the_clicks_form_the_history(tmp_path):
    dataset = generic(shop_files(tmp_path / "raw"), tmp_path / "prepared", without(SHOP_SCHEMA, "log"))
    assert list(dataset.meta["timelines"]) == ["click"]
    assert dataset.meta["timelines"]["click"]["fields"] == {"item": "item", "cate": "cate"}
    clicks = shop_rows(dataset).filter(pl.col("split").is_not_null() & (pl.col("clicked") == 1))
    timeline = dataset.timeline("click")
    assert len(timeline["time"]) == clicks.height
    table = dataset.split("test")
    for i in range(len(table)):
        s, e = table.start["click"][i], table.end["click"][i]
        user_clicks = clicks.filter((pl.col("user").hash(0) // 2).cast(pl.Int64) == table.user_id[i])
        earlier = user_clicks.filter(pl.col("ts") < table.time[i]).sort("ts", "item")
        assert timeline["item_raw"][s:e].tolist() == earlier["item"].to_list()


def test_parquet_impressions_with_datetimes_prepare_like_the_csv(shop, tmp_path):
    raw = shop_files(tmp_path / "raw")
    pl.read_csv(raw / "impressions.csv").with_columns(ts=pl.from_epoch("ts", time_unit="s")) \
        .write_parquet(raw / "impressions.parquet")
    schema = {**SHOP_SCHEMA, "impressions": {**SHOP_SCHEMA["impressions"], "file": "impressions.parquet"}}
    dataset = generic(raw, tmp_path / "prepared", schema)
    for split in SPLITS:
        assert_frame_equal(samples(dataset, split), samples(shop, split))


def test_a_split_by_time_quantiles(tmp_path):
    schema = {**SHOP_SCHEMA, "split": {"by": "quantiles", "val_from": 0.7, "test_from": 0.85}}
    dataset = generic(shop_files(tmp_path / "raw"), tmp_path / "prepared", schema)
    rows = {s: len(dataset.split(s)) for s in SPLITS}
    total = sum(rows.values())
    assert abs(rows["train"] / total - 0.7) < 0.01 and abs(rows["val"] / total - 0.15) < 0.01
    assert dataset.split("train").time.max() < dataset.split("val").time.min()
    assert dataset.split("val").time.max() < dataset.split("test").time.min()


def test_new_files_encoded_with_an_existing_datasets_vocabularies(shop, tmp_path):
    raw = shop_files(tmp_path / "raw", seed=1)
    prepare(raw, tmp_path / "new", load_prep_config("generic", schema=SHOP_SCHEMA), vocab_from=shop.root)
    new = ProcessedDataset(tmp_path / "new")
    assert new.meta["numeric"] == shop.meta["numeric"] and new.meta["vocab_sizes"] == shop.meta["vocab_sizes"]
    for name in ("user", "item", "cate", "views"):
        assert_frame_equal(pl.read_parquet(new.root / "vocab" / f"{name}.parquet"),
                           pl.read_parquet(shop.root / "vocab" / f"{name}.parquet"))


# ----- Criteo's layout -----
def test_criteo_layout_splits_by_position_with_fuxictrs_numeric_treatment(tmp_path):
    raw = criteo_file(tmp_path / "raw")
    dataset = generic(raw, tmp_path / "prepared", load_yaml(REPO / "configs" / "data" / "criteo.yaml"))
    assert {s: len(dataset.split(s)) for s in SPLITS} == {"train": 240, "val": 30, "test": 30}
    assert dataset.split("val").time.tolist() == list(range(240, 270))  # the row order is time
    assert dataset.timeline_names == [] and dataset.meta["target_fields"] == {}
    table = criteo_table(raw)
    train = table.head(240)
    assert (dataset.split("train").label == train["label"].to_numpy()).all()
    i2 = train["I2"].fill_null(0).to_numpy()  # FuxiCTR: missing -> 0, x > 2 -> floor(ln(x)^2), else int(x)
    category = np.where(i2 > 2, np.floor(np.log(np.maximum(i2, 1)) ** 2), i2).astype(int)
    values, counts = np.unique(category, return_counts=True)
    vocab = pl.read_parquet(dataset.root / "vocab" / "I2.parquet")
    assert sorted(vocab["raw"].to_list()) == sorted(values[counts >= 10].tolist())  # min count 10
    c11 = train["C11"].fill_null("").value_counts()
    kept = pl.read_parquet(dataset.root / "vocab" / "C11.parquet")
    assert sorted(kept["raw"].to_list()) == sorted(c11.filter(pl.col("count") >= 10)["C11"].to_list())


# ----- mistakes stop with one line naming the schema key -----
def schema_file(tmp_path: Path, schema: dict) -> Path:
    path = tmp_path / "schema.yaml"
    path.write_text(yaml.safe_dump(schema))
    return path


def with_column(schema: dict, index: int, **change) -> dict:
    columns = [dict(c) for c in schema["impressions"]["columns"]]
    columns[index] = {**columns[index], **change}
    return {**schema, "impressions": {**schema["impressions"], "columns": columns}}


BAD_SCHEMAS = {
    "unknown column": (with_column(SHOP_SCHEMA, 4, column="platform"),
                       "missing column(s) ['platform']", "schema.impressions.columns[4]"),
    "unknown kind": (with_column(SHOP_SCHEMA, 4, kind="text"), "expected one of", "schema.impressions.columns[4].kind"),
    "numeric kind on text": (with_column(SHOP_SCHEMA, 4, kind="numeric", min_count=None),
                             "column 'device' expected a number",
                             "schema.impressions.columns[4]"),
    "key of another kind": (with_column(SHOP_SCHEMA, 4, transform="log"), "does not apply to kind categorical",
                            "schema.impressions.columns[4].transform"),
    "column declared twice": (with_column(SHOP_SCHEMA, 5, column="device"), "column 'device' is declared twice",
                              "schema.impressions.columns[5]"),
    "field declared twice": (with_column(SHOP_SCHEMA, 5, name="device"), "field 'device' is declared twice",
                             "schema.impressions.columns[5]"),
    "label not 0/1": ({**SHOP_SCHEMA, "impressions": {**SHOP_SCHEMA["impressions"], "columns": [
        *SHOP_SCHEMA["impressions"]["columns"][:3], {"column": "views", "kind": "label"},
        *SHOP_SCHEMA["impressions"]["columns"][4:6]]}}, "column 'views' expected a label in {0, 1}",
        "schema.impressions.columns[3]"),
    "log field the candidate lacks": ({**SHOP_SCHEMA, "log": {**SHOP_SCHEMA["log"], "columns": [
        *SHOP_SCHEMA["log"]["columns"][:2], {"column": "category", "kind": "categorical", "name": "shelf"},
        *SHOP_SCHEMA["log"]["columns"][3:]]}}, "'shelf' is not a candidate field", "schema.log.columns[2].name"),
    "position split with a time column": ({**SHOP_SCHEMA, "split": {"by": "position"}}, "position exactly when",
                                          "schema.split.by"),
}


@pytest.mark.parametrize("case", BAD_SCHEMAS, ids=list(BAD_SCHEMAS))
def test_bad_schemas_stop_with_one_line_naming_the_key(tmp_path, capsys, case):
    schema, message, key = BAD_SCHEMAS[case]
    raw = shop_files(tmp_path / "raw", n_users=20)
    rc = data_prep_main(["--source", "generic", "--schema", str(schema_file(tmp_path, schema)),
                         "--raw-dir", str(raw), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1, err
    assert message in err and key in err, err
    assert not (tmp_path / "out").exists()


def test_a_schema_for_another_source_is_refused():
    with pytest.raises(MDAFError, match="config key 'schema'"):
        load_prep_config("taobao_ad", schema=SHOP_SCHEMA)


# ----- doubtful rows: counted in summary.txt, an error above their config bound -----
def test_doubtful_rows_are_counted(tmp_path):
    raw = shop_files(tmp_path / "raw", n_users=40)
    lines = (raw / "impressions.csv").read_text().splitlines()
    out_of_window = f"u000,1,{T0 - 86_400},0,ios,30.0,3,10.0"
    (raw / "impressions.csv").write_text("\n".join([*lines, lines[1], lines[2], out_of_window, lines[3][:-3]]))
    dataset = generic(raw, tmp_path / "prepared", SHOP_SCHEMA, max_cut_line_fraction=0.01)
    summary = (dataset.root / "summary.txt").read_text()
    for count, what in [(2, "impressions.csv: exact duplicate of an earlier row (dropped)"),
                        (1, "impressions.csv: last line cut short (no newline after it)"),
                        (1, "impressions.csv: ts outside 2024-03-01..2024-03-08")]:
        assert f"{count:>12,}  {what}" in summary, what
    assert sum(len(dataset.split(s)) for s in SPLITS) == len(lines) - 1


def test_too_many_impressions_of_unknown_items_stop_naming_the_bound(tmp_path):
    raw = shop_files(tmp_path / "raw", n_users=40)
    pl.read_parquet(raw / "items.parquet").filter(pl.col("item_id") >= 100).write_parquet(raw / "items.parquet")
    with pytest.raises(MDAFError, match=r"impressions.csv: .* show an item missing from items.parquet .*"
                                        r"max_missing_ad_fraction=0.01"):
        generic(raw, tmp_path / "prepared", SHOP_SCHEMA)
    generic(raw, tmp_path / "prepared", SHOP_SCHEMA, max_missing_ad_fraction=0.5)  # raised: accepted


# ----- the CTR models train on it -----
TINY = {"train": {"base": "configs/train/v2.yaml", "epochs": 1, "batch_size": 256, "seq_len": 10,
                  "eval_batch_size": 1024, "warmup_epochs": 1, "threads": 1, "patience": 1},
        "criteria": {}}
MODELS = {"mdaf": {"base": "configs/model/mdaf.yaml", "hidden": 16, "mlp": {"hidden": [16]},
                   "sequence": {"hidden": 16, "n_layers": 1}, "static": {"dcnv3": {"ecn_layers": 1, "lcn_layers": 1}}},
          "dnn": {"base": "configs/model/dnn.yaml", "mlp": {"hidden": [16]}},
          "dcnv3": {"base": "configs/model/dcnv3.yaml", "dcnv3": {"ecn_layers": 1, "lcn_layers": 1}}}


@pytest.mark.parametrize("model", MODELS)
def test_ctr_models_train_an_epoch_through_the_one_command(tmp_path, monkeypatch, model):
    raw = shop_files(tmp_path / "raw", n_users=60)
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(yaml.safe_dump({"experiment": f"generic_{model}", "model": MODELS[model], **TINY}))
    monkeypatch.chdir(tmp_path)  # prepared into ./data/generic-<hash>
    rc = train_main(["--source", "generic", "--schema", str(schema_file(tmp_path, SHOP_SCHEMA)), "--raw-dir", str(raw),
                     "--results-dir", str(tmp_path / "results"), "--run-name", model],
                    "test", str(experiment))
    assert rc == 0
    summary = json.loads((tmp_path / "results" / model / "summary.json").read_text())
    assert summary["data"]["source"] == "generic" and summary["train"]["epochs_run"] == 1
    assert math.isfinite(summary["test"]["auc"])
