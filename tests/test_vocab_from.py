"""prepare(..., vocab_from=...): new raw files encoded with the vocabularies of an existing dataset."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from common.errors import MDAFError
from conftest import TINY
from data_prep.config import load_prep_config
from data_prep.dataset import ProcessedDataset
from data_prep.loader import BatchLoader
from data_prep.prepare import prepare
from data_prep.raw_files import RAW_SAMPLE, USER_BEHAVIOR, scan_raw
from data_prep.samples import SPLITS
from data_prep.synthetic_raw import ensure_synthetic_raw, synthetic_config
from data_prep.vocab import OOV, Vocab

TIME_COLUMNS = {"raw_sample.csv": "time_stamp", "raw_sample_oracle.csv": "time_stamp",
                "UserBehavior.csv": "timestamp", "UserBehavior_oracle.csv": "timestamp"}


@pytest.fixture(params=["taobao_ad", "userbehavior"])
def source_set(request) -> tuple[str, ProcessedDataset]:
    """Each source's tiny prepared set (fitted vocabularies), from the session fixtures."""
    fixture = {"taobao_ad": "tiny_dataset", "userbehavior": "tiny_userbehavior"}[request.param]
    return request.param, request.getfixturevalue(fixture)


def samples(root: Path, split: str) -> pl.DataFrame:
    return pl.read_parquet(root / "samples" / f"{split}.parquet")


def meta(root: Path) -> dict:
    return json.loads((root / "meta.json").read_text())


def test_same_raw_files_give_the_same_dataset(source_set, tmp_path):
    source, first = source_set
    out = tmp_path / "again"
    cfg = load_prep_config(source)
    prepare(first.meta["raw_dir"], out, cfg, vocab_from=first.root)
    for split in SPLITS:
        assert samples(out, split).equals(samples(first.root, split))
    for name, tl in first.meta["timelines"].items():
        for field in ["user_id", "time", *tl["fields"]]:
            a, b = (np.load(root / "timelines" / name / f"{field}.npy") for root in (first.root, out))
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    for space in first.vocab_sizes:
        assert Vocab.load(out / "vocab", space).table.equals(Vocab.load(first.root / "vocab", space).table)
    new = meta(out)
    assert new["vocab_sizes"] == first.meta["vocab_sizes"]
    assert new["vocab_from"] == str(first.root.resolve())
    assert new.get("price_edges") == first.meta.get("price_edges")
    # the same inputs reuse the dataset; other vocabularies must not
    prepare(first.meta["raw_dir"], out, cfg, vocab_from=first.root)
    with pytest.raises(MDAFError, match="already exists"):
        prepare(first.meta["raw_dir"], out, cfg)


def last_day_only(raw: Path, out: Path, start: int) -> Path:
    """A copy of `raw` whose samples (and, for UserBehavior, all rows) lie at or after `start`."""
    out.mkdir()
    for path in raw.glob("*.csv"):
        column = TIME_COLUMNS.get(path.name)
        if column is None:
            shutil.copy(path, out / path.name)
            continue
        header = path.name != USER_BEHAVIOR.name
        frame = pl.read_csv(path, has_header=header, infer_schema=False,  # text kept as written
                            new_columns=None if header else list(USER_BEHAVIOR.columns))
        frame.filter(pl.col(column).cast(pl.Int64) >= start).write_csv(out / path.name, include_header=header)
    return out


def raw_items(source: str, raw: Path) -> pl.DataFrame:
    """user_id, time and raw item id of every sample-like raw row (impressions / views)."""
    if source == "taobao_ad":
        return scan_raw(raw, RAW_SAMPLE).select(
            user_id="user", time="time_stamp", raw_item="adgroup_id").collect()
    return scan_raw(raw, USER_BEHAVIOR).filter(pl.col("behavior_type") == "pv").select(
        user_id="user_id", time="timestamp", raw_item="item_id").collect()


def test_new_raw_files_of_the_test_day_only_keep_the_indices(source_set, tmp_path):
    source, first = source_set
    cfg = load_prep_config(source)
    other = ensure_synthetic_raw(source, synthetic_config(seed=99, **TINY), root=tmp_path)  # not conftest's 11, 12
    new_raw = last_day_only(other, tmp_path / "new_raw", cfg.split_bounds["test"][0])
    out = tmp_path / "new"
    prepare(new_raw, out, cfg, vocab_from=first.root)
    new = ProcessedDataset(out)
    assert new.vocab_sizes == first.vocab_sizes
    assert len(new.split("train")) == len(new.split("val")) == 0  # empty splits are fine
    assert list(BatchLoader(new, "train", seq_len=5, batch_size=64)) == []
    assert len(next(iter(BatchLoader(new, "test", seq_len=5, batch_size=64)))["label"]) > 0

    test = samples(out, "test").join(raw_items(source, new_raw), on=["user_id", "time"], how="left")
    assert test.height == len(new.split("test")) and test["raw_item"].null_count() == 0
    known = Vocab.load(first.root / "vocab", "item").table.rename({"raw": "raw_item", "index": "expected"})
    test = test.join(known, on="raw_item", how="left").with_columns(pl.col("expected").fill_null(OOV))
    assert (test["expected"] == OOV).sum() > 0 and (test["expected"] > OOV).sum() > 0
    # ids the first set never saw map to OOV, the others keep the first set's index
    assert test["item"].equals(test["expected"], check_names=False)
    if source == "taobao_ad":
        assert meta(out)["price_edges"] == first.meta["price_edges"]


def test_vocabularies_of_another_source_or_missing_files_are_refused(tiny_dataset, tiny_userbehavior, tmp_path):
    with pytest.raises(MDAFError, match="'taobao_ad'.*'userbehavior'"):
        prepare(tiny_userbehavior.meta["raw_dir"], tmp_path / "out", load_prep_config("userbehavior"),
                vocab_from=tiny_dataset.root)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dataset.root, broken)
    (broken / "vocab" / "brand.parquet").unlink()
    with pytest.raises(MDAFError, match="brand.parquet"):
        prepare(tiny_dataset.meta["raw_dir"], tmp_path / "out", load_prep_config("taobao_ad"),
                vocab_from=broken)
    assert not (tmp_path / "out").exists()
