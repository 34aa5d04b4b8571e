"""Faults of the data pipeline: no flag or input destroys data, and wrong input is never accepted
silently. Each case reproduces a failure of an earlier version (named in its docstring)."""
from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml

from data_prep.__main__ import main
from common.atomic import atomic_write_bytes, atomic_write_parquet
from common.config import load_yaml
from data_prep.config import default_config_path, load_prep_config
from data_prep.prepare import MARKER, prepare_copy
from raw_builders import (AD_FEATURE, BEHAVIOR_LOG, RAW_SAMPLE, USER_BEHAVIOR, USER_PROFILE, taobao_ad_raw,
                          userbehavior_raw, write_lines)
from training.config import DataConfig
from training.data import open_dataset
from training.distributed import Dist


def run(capsys, raw: Path, out: Path, *extra: str, source: str = "taobao_ad") -> tuple[int, str]:
    """Exit code and the last stderr line of `python -m data_prep`."""
    code = main(["--source", source, "--raw-dir", str(raw), "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, (err.strip().splitlines() or [""])[-1]


def config(tmp_path: Path, source: str = "taobao_ad", **keys) -> str:
    """A preparation YAML: the source's defaults with `keys` changed."""
    path = tmp_path / "prep.yaml"
    path.write_text(yaml.safe_dump({**load_yaml(default_config_path(source)), **keys}))
    return str(path)


def drops(out: Path) -> dict[str, int]:
    return json.loads((out / "summary.json").read_text())["drops"]


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ----- 1. --overwrite deletes only what data_prep wrote -----

def test_overwrite_never_deletes_the_raw_directory(capsys, tmp_path):
    """Before: `--raw-dir D --out D --overwrite` deleted the raw CSVs, exit 0."""
    raw = taobao_ad_raw(tmp_path / "raw")
    before = listing(raw)
    code, line = run(capsys, raw, raw, "--overwrite")
    assert code == 1 and line.startswith(f"error: {raw}") and "input" in line
    assert listing(raw) == before


def test_overwrite_never_deletes_a_folder_above_the_raw_files(capsys, tmp_path):
    """Before: `--out` set to the raw folder's parent deleted it with everything in it, exit 0."""
    project = tmp_path / "project"
    raw = taobao_ad_raw(project / "raw")
    (project / "paper.tex").write_text("months of work")
    before = listing(project)
    code, line = run(capsys, raw, project, "--overwrite")
    assert code == 1 and str(project) in line
    assert listing(project) == before


def test_overwrite_never_deletes_a_folder_data_prep_did_not_write(capsys, tmp_path):
    raw = taobao_ad_raw(tmp_path / "raw")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, line = run(capsys, raw, out, "--overwrite")
    assert code == 1 and "not a dataset data_prep wrote" in line
    assert (out / "notes.txt").read_text() == "mine"


def test_overwrite_never_deletes_files_added_to_a_dataset(capsys, tmp_path):
    raw, out = taobao_ad_raw(tmp_path / "raw"), tmp_path / "out"
    assert run(capsys, raw, out)[0] == 0
    (out / "analysis.ipynb").write_text("{}")
    write_lines(raw / "raw_sample.csv", RAW_SAMPLE[:-1])  # the raw files change: a rebuild is due
    code, line = run(capsys, raw, out, "--overwrite")
    assert code == 1 and "analysis.ipynb" in line
    assert (out / "analysis.ipynb").is_file()


def test_overwrite_replaces_a_dataset_it_wrote(capsys, tmp_path):
    raw, out = taobao_ad_raw(tmp_path / "raw"), tmp_path / "out"
    assert run(capsys, raw, out)[0] == 0
    assert (out / MARKER).is_file()
    write_lines(raw / "raw_sample.csv", RAW_SAMPLE[:-1])
    code, line = run(capsys, raw, out)
    assert code == 1 and "--overwrite" in line
    assert run(capsys, raw, out, "--overwrite")[0] == 0
    assert pl.read_parquet(out / "samples" / "test.parquet").height == 1


# ----- 3. a changed raw folder or config prepares a new copy -----

def test_changed_inputs_prepare_a_new_copy_and_keep_the_old(tmp_path, caplog):
    """Before: after touching a raw file, adding a notes file or changing the split days,
    `--raw-dir` runs stopped with "pass --overwrite", a flag the training scripts do not have."""
    caplog.set_level(logging.INFO)
    raw, root = userbehavior_raw(tmp_path / "raw"), tmp_path / "data"
    cfg = load_prep_config("userbehavior")
    first = prepare_copy(raw, root, cfg)
    (raw / "notes.txt").write_text("downloaded on Monday")  # not a file the source reads
    assert prepare_copy(raw, root, cfg) == first
    stat = (raw / "UserBehavior.csv").stat()
    os.utime(raw / "UserBehavior.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched
    caplog.clear()
    second = prepare_copy(raw, root, cfg)
    assert second != first and "UserBehavior.csv" in caplog.text and f"{first} stays" in caplog.text
    caplog.clear()
    third = prepare_copy(raw, root, load_prep_config("userbehavior", val_days=["2017-12-02", "2017-12-02"],
                                                     test_days=["2017-12-03", "2017-12-03"], label_horizon_hours=12))
    assert third not in (first, second) and "label_horizon_hours" in caplog.text
    assert all((d / "meta.json").is_file() for d in (first, second, third))


def test_training_data_follows_a_changed_raw_folder(tmp_path, monkeypatch):
    """`train_mdaf.py --raw-dir` (training/data.py) after the raw file changed: a new copy, no dead end."""
    monkeypatch.chdir(tmp_path)
    raw = userbehavior_raw(tmp_path / "raw")
    cfg = DataConfig(source="userbehavior", raw_dir=str(raw))
    first = open_dataset(cfg, Dist()).root
    write_lines(raw / "UserBehavior.csv", USER_BEHAVIOR + ["3,105,7,pv,1511600000"])
    second = open_dataset(cfg, Dist()).root
    assert first != second and first.is_dir()
    assert open_dataset(cfg, Dist()).root == second


# ----- 5. wrong input is counted, and an error above its threshold -----

def test_impressions_of_ads_missing_from_ad_feature(capsys, tmp_path):
    """Before: exit 0; with every ad missing, every sample's category became "missing"."""
    raw = taobao_ad_raw(tmp_path / "raw")
    write_lines(raw / "ad_feature.csv", AD_FEATURE[:-1])  # ad 504 (1 of 8 impressions) is gone
    code, line = run(capsys, raw, tmp_path / "a")
    assert code == 1 and "ad_feature.csv" in line and "max_missing_ad_fraction" in line
    code, _ = run(capsys, raw, tmp_path / "b", "--config", config(tmp_path, max_missing_ad_fraction=0.2))
    assert code == 0
    assert drops(tmp_path / "b")["raw_sample.csv: ad missing from ad_feature.csv (kept, ad features missing)"] == 1
    write_lines(raw / "ad_feature.csv", [AD_FEATURE[0], "999,1,1,1,1,1.0"])  # every ad missing
    code, line = run(capsys, raw, tmp_path / "c", "--config", config(tmp_path, max_missing_ad_fraction=0.2))
    assert code == 1 and "8 of 8 rows" in line


@pytest.mark.parametrize("name", ["raw_sample.csv", "behavior_log.csv", "UserBehavior.csv"])
def test_exact_duplicate_rows_are_counted(capsys, tmp_path, name):
    """Before: duplicated rows doubled the samples (or history steps), uncounted. Now they are
    counted, and dropped where a row names its item (raw_sample, UserBehavior); behavior_log has
    no item id, so its identical rows can be distinct events, and are kept."""
    source = "userbehavior" if name == "UserBehavior.csv" else "taobao_ad"
    lines = {"raw_sample.csv": RAW_SAMPLE, "behavior_log.csv": BEHAVIOR_LOG, "UserBehavior.csv": USER_BEHAVIOR}[name]
    make = userbehavior_raw if source == "userbehavior" else taobao_ad_raw
    clean, raw = make(tmp_path / "clean"), make(tmp_path / "raw")
    write_lines(raw / name, lines + [lines[1]])
    code, line = run(capsys, raw, tmp_path / "a", source=source)
    assert code == 1 and name in line and "max_duplicate_fraction" in line
    assert run(capsys, clean, tmp_path / "clean_out", source=source)[0] == 0
    code, _ = run(capsys, raw, tmp_path / "b", "--config", config(tmp_path, source, max_duplicate_fraction=0.2),
                  source=source)
    assert code == 0
    kept = name == "behavior_log.csv"
    fate = "kept: no item id" if kept else "dropped"
    assert drops(tmp_path / "b")[f"{name}: exact duplicate of an earlier row ({fate})"] == 1
    rows = {d: json.loads((tmp_path / d / "meta.json").read_text())["timelines"]["behavior"]["rows"]
            for d in ("b", "clean_out")}
    assert rows["b"] == rows["clean_out"] + kept
    for part in [] if kept else ["samples/train.parquet", "samples/test.parquet", "timelines/behavior/time.npy"]:
        assert (tmp_path / "b" / part).read_bytes() == (tmp_path / "clean_out" / part).read_bytes(), part


def test_nan_and_infinite_prices_are_counted(capsys, tmp_path):
    """Before: a NaN price became a price-bucket edge."""
    raw = taobao_ad_raw(tmp_path / "raw")
    write_lines(raw / "ad_feature.csv", [AD_FEATURE[0], "501,7,900,80,4000,nan", "502,8,901,81,NULL,inf",
                                         *AD_FEATURE[3:]])
    code, line = run(capsys, raw, tmp_path / "a")
    assert code == 1 and "ad_feature.csv" in line and "max_bad_price_fraction" in line and "2 of 4" in line
    code, _ = run(capsys, raw, tmp_path / "b", "--config", config(tmp_path, max_bad_price_fraction=0.5))
    assert code == 0
    assert drops(tmp_path / "b")["ad_feature.csv: price NaN, infinite or negative (kept, price missing)"] == 2
    meta = json.loads((tmp_path / "b" / "meta.json").read_text())
    assert all(map(lambda e: e == e and abs(e) != float("inf"), meta["price_edges"]))
    train = pl.read_parquet(tmp_path / "b" / "samples" / "train.parquet")
    assert set(train.filter(pl.col("item").is_in([2, 3]))["price"].to_list()) <= {1}  # missing: out of vocabulary


def test_a_last_line_cut_short_is_dropped_and_counted(capsys, tmp_path):
    """Before: a behavior_log.csv whose download stopped mid-row kept the partial row, with a
    wrong category and an empty brand."""
    clean, raw = taobao_ad_raw(tmp_path / "clean"), taobao_ad_raw(tmp_path / "raw")
    (raw / "behavior_log.csv").write_text("\n".join(BEHAVIOR_LOG) + "\n13,1494259205,pv,9")  # ",9003" never came
    code, line = run(capsys, raw, tmp_path / "a")
    assert code == 1 and "behavior_log.csv" in line and "max_cut_line_fraction" in line
    code, _ = run(capsys, raw, tmp_path / "b", "--config", config(tmp_path, max_cut_line_fraction=0.2))
    assert code == 0 and run(capsys, clean, tmp_path / "clean_out")[0] == 0
    assert drops(tmp_path / "b")["behavior_log.csv: last line cut short (no newline after it)"] == 1
    for field in ("cate", "brand", "time"):
        part = f"timelines/behavior/{field}.npy"
        assert (tmp_path / "b" / part).read_bytes() == (tmp_path / "clean_out" / part).read_bytes()


# ----- 6. files as users have them -----

def quoted(lines: list[str]) -> list[str]:
    return [",".join(f'"{cell}"' for cell in line.split(",")) for line in lines]


def test_byte_order_mark_and_quoted_cells_parse_like_plain_files(capsys, tmp_path):
    plain = taobao_ad_raw(tmp_path / "plain")
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, lines in (("raw_sample.csv", RAW_SAMPLE), ("ad_feature.csv", AD_FEATURE),
                        ("user_profile.csv", USER_PROFILE), ("behavior_log.csv", BEHAVIOR_LOG)):
        (raw / name).write_text("\ufeff" + "\n".join(quoted(lines)) + "\n", encoding="utf-8")
    assert run(capsys, plain, tmp_path / "a")[0] == 0
    code, line = run(capsys, raw, tmp_path / "b")
    assert code == 0, line
    for part in ("samples/train.parquet", "samples/test.parquet", "timelines/behavior/brand.npy"):
        assert pl.read_parquet(tmp_path / "a" / part).equals(pl.read_parquet(tmp_path / "b" / part)) \
            if part.endswith(".parquet") else (tmp_path / "a" / part).read_bytes() == (tmp_path / "b" / part).read_bytes()
    ub = tmp_path / "ub"
    ub.mkdir()
    (ub / "UserBehavior.csv").write_text("\ufeff" + "\n".join(quoted(USER_BEHAVIOR)) + "\n", encoding="utf-8")
    assert run(capsys, ub, tmp_path / "c", source="userbehavior")[0] == 0


@pytest.mark.parametrize("name,packed,command", [
    ("raw_sample.csv", "raw_sample.csv.gz", "gunzip -k"),
    ("behavior_log.csv", "behavior_log.csv.gz", "gunzip -k"),  # before: click-only histories, silently
    ("behavior_log.csv", "behavior_log.tar.gz", "tar -xzf"),
])
def test_compressed_downloads_name_the_command_to_unpack_them(capsys, tmp_path, name, packed, command):
    raw = taobao_ad_raw(tmp_path / "raw")
    with open(raw / name, "rb") as src, gzip.open(raw / packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    (raw / name).unlink()
    code, line = run(capsys, raw, tmp_path / "out")
    assert code == 1 and packed in line and command in line
    assert not (tmp_path / "out").exists()


def test_missing_userbehavior_file_is_one_line(capsys, tmp_path):
    """Before: a FileNotFoundError traceback."""
    raw = tmp_path / "raw"
    raw.mkdir()
    code, line = run(capsys, raw, tmp_path / "out", source="userbehavior")
    assert code == 1 and "UserBehavior.csv: file not found" in line


def test_an_unwritable_output_folder_is_one_line(capsys, tmp_path):
    """Before: a PermissionError traceback. /sys refuses new folders even to root, which chmod
    does not stop."""
    raw = taobao_ad_raw(tmp_path / "raw")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    target = locked if os.geteuid() != 0 else Path("/sys")
    try:
        code, line = run(capsys, raw, target / "out")
    finally:
        locked.chmod(0o755)
    assert code == 1 and line.startswith(f"error: {target}")


def test_a_file_given_as_the_raw_folder_names_what_was_expected(capsys, tmp_path):
    """Before: "raw data directory not found" for a file that exists."""
    raw = taobao_ad_raw(tmp_path / "raw")
    code, line = run(capsys, raw / "raw_sample.csv", tmp_path / "out")
    assert code == 1 and "raw_sample.csv: a file, but --raw-dir expects the folder" in line and f"pass {raw}" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("write", [lambda path: atomic_write_bytes(path, b"x"),
                                   lambda path: atomic_write_parquet(pl.DataFrame({"a": [1]}), path)])
def test_an_atomic_write_whose_rename_fails_leaves_no_temporary_file(tmp_path, write):
    """Before: atomic_write_bytes left `.<name>.tmp-<pid>` beside its target when the rename failed."""
    target = tmp_path / "summary.json"
    (target / "inside").mkdir(parents=True)  # a folder in the way: the rename is refused
    with pytest.raises(OSError):
        write(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]

