"""Bad raw input fails with the file, the column and an example row, exit 1, and no output."""
from __future__ import annotations

import pytest

from data_prep.__main__ import main
from raw_builders import (AD_FEATURE, BEHAVIOR_LOG, RAW_SAMPLE, USER_BEHAVIOR, taobao_ad_raw,
                          userbehavior_raw, write_lines)


def run(capsys, raw, out, source="taobao_ad"):
    code = main(["--source", source, "--raw-dir", str(raw), "--out", str(out)])
    err = capsys.readouterr().err
    return code, err


def assert_fails(capsys, tmp_path, raw, *expected, source="taobao_ad"):
    out = tmp_path / "out"
    code, err = run(capsys, raw, out, source)
    assert code == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: ")
    for text in expected:
        assert text in line, (text, line)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []  # no temp left


def test_missing_file(capsys, tmp_path):
    raw = taobao_ad_raw(tmp_path / "raw")
    (raw / "ad_feature.csv").unlink()
    assert_fails(capsys, tmp_path, raw, "ad_feature.csv", "not found")


def test_missing_or_renamed_column(capsys, tmp_path):
    raw = taobao_ad_raw(tmp_path / "raw")
    write_lines(raw / "raw_sample.csv", [RAW_SAMPLE[0].replace(",clk", ",click")] + RAW_SAMPLE[1:])
    assert_fails(capsys, tmp_path, raw, "raw_sample.csv", "missing column(s) ['clk']", "click")


def test_wrong_type_names_the_row(capsys, tmp_path):
    raw = taobao_ad_raw(tmp_path / "raw")
    bad = RAW_SAMPLE[:3] + [RAW_SAMPLE[3].replace(",430548_1007", "x,430548_1007", 1)] + RAW_SAMPLE[4:]
    write_lines(raw / "raw_sample.csv", bad)
    assert_fails(capsys, tmp_path, raw, "raw_sample.csv", "column 'adgroup_id'", "an integer",
                 "line 4", "501x")


def test_wrong_type_in_a_side_table(capsys, tmp_path):
    raw = taobao_ad_raw(tmp_path / "raw")
    write_lines(raw / "ad_feature.csv", AD_FEATURE[:2] + ["502,8,901,81,NULL,cheap"])
    assert_fails(capsys, tmp_path, raw, "ad_feature.csv", "column 'price'", "a number", "cheap")


def test_empty_file(capsys, tmp_path):
    raw = taobao_ad_raw(tmp_path / "raw")
    (raw / "user_profile.csv").write_text("")
    assert_fails(capsys, tmp_path, raw, "user_profile.csv", "empty")


def test_header_only_file(capsys, tmp_path):
    raw = taobao_ad_raw(tmp_path / "raw")
    write_lines(raw / "raw_sample.csv", RAW_SAMPLE[:1])
    assert_fails(capsys, tmp_path, raw, "raw_sample.csv", "no rows")


def test_label_outside_zero_one(capsys, tmp_path):
    raw = taobao_ad_raw(tmp_path / "raw")
    bad = RAW_SAMPLE[:2] + [RAW_SAMPLE[2][: -3] + "0,2"] + RAW_SAMPLE[3:]
    write_lines(raw / "raw_sample.csv", bad)
    assert_fails(capsys, tmp_path, raw, "raw_sample.csv", "column 'clk'", "{0, 1}", "'clk': 2")


def test_unknown_behaviour_type(capsys, tmp_path):
    raw = userbehavior_raw(tmp_path / "raw")
    write_lines(raw / "UserBehavior.csv", USER_BEHAVIOR + ["3,105,5,click,1511540000"])
    assert_fails(capsys, tmp_path, raw, "UserBehavior.csv", "behavior_type", "click",
                 source="userbehavior")


def test_timestamps_in_milliseconds_fail(capsys, tmp_path):
    raw = taobao_ad_raw(tmp_path / "raw")
    lines = [RAW_SAMPLE[0]] + [",".join([c if i != 1 else c + "000" for i, c in enumerate(r.split(","))])
                               for r in RAW_SAMPLE[1:]]
    write_lines(raw / "raw_sample.csv", lines)
    assert_fails(capsys, tmp_path, raw, "raw_sample.csv", "column 'time_stamp'", "2017-05-06 .. 2017-05-13",
                 "8 of 8 rows")


def test_a_few_stray_timestamps_are_dropped_and_counted(capsys, tmp_path):
    raw = userbehavior_raw(tmp_path / "raw")
    users = [f"{10 * k + int(r.split(',')[0])},{r.split(',', 1)[1]}" for k in range(3) for r in USER_BEHAVIOR]
    write_lines(raw / "UserBehavior.csv", users + ["1,100,5,pv,1511000000"])
    code, _ = run(capsys, raw, tmp_path / "out", "userbehavior")
    assert code == 0
    text = (tmp_path / "out" / "summary.txt").read_text()
    assert "1  UserBehavior.csv: timestamp outside 2017-11-25..2017-12-03" in text


def test_userbehavior_with_a_header_row(capsys, tmp_path):
    raw = userbehavior_raw(tmp_path / "raw")
    write_lines(raw / "UserBehavior.csv", ["user_id,item_id,category_id,behavior_type,timestamp"] + USER_BEHAVIOR)
    assert_fails(capsys, tmp_path, raw, "UserBehavior.csv", "no header", source="userbehavior")


def test_stray_spaces_in_headers_are_tolerated(capsys, tmp_path):
    raw = taobao_ad_raw(tmp_path / "raw")
    write_lines(raw / "raw_sample.csv", [" user , time_stamp,adgroup_id ,pid,nonclk,clk "] + RAW_SAMPLE[1:])
    code, err = run(capsys, raw, tmp_path / "out")
    assert code == 0, err


def test_existing_output_needs_overwrite(capsys, tmp_path):
    raw = taobao_ad_raw(tmp_path / "raw")
    out = tmp_path / "out"
    out.mkdir()
    code, err = run(capsys, raw, out)
    assert code == 1 and "--overwrite" in err
    assert main(["--raw-dir", str(raw), "--out", str(out), "--overwrite"]) == 0
    assert (out / "meta.json").is_file()


@pytest.mark.parametrize("key,value,expected", [
    ("val_days", '["2017-05-10", "2017-05-12"]', "val_days"),
    ("train_days", '["2017-05-06"]', "train_days"),
    ("price_buckets", "0", "price_buckets"),
    ("no_such_key", "1", "no_such_key"),
])
def test_bad_config_names_the_key(capsys, tmp_path, key, value, expected):
    raw = taobao_ad_raw(tmp_path / "raw")
    config = tmp_path / "bad.yaml"
    config.write_text(f"source: taobao_ad\n{key}: {value}\n")
    code = main(["--raw-dir", str(raw), "--out", str(tmp_path / "out"), "--config", str(config)])
    assert code == 1 and expected in capsys.readouterr().err


def test_row_with_too_many_fields(capsys, tmp_path):
    raw = taobao_ad_raw(tmp_path / "raw")
    write_lines(raw / "raw_sample.csv", RAW_SAMPLE + ["11,1494000000,501,430548_1007,1,0,7"])
    assert_fails(capsys, tmp_path, raw, "raw_sample.csv", "not a well-formed", "more fields")


def test_row_with_too_few_fields(capsys, tmp_path):
    raw = taobao_ad_raw(tmp_path / "raw")
    write_lines(raw / "raw_sample.csv", RAW_SAMPLE + ["11,1494000000,501"])
    assert_fails(capsys, tmp_path, raw, "raw_sample.csv", "column 'clk'", "empty cell", "'adgroup_id': 501")


def test_wrong_type_in_a_column_several_files_share(capsys, tmp_path):
    raw = taobao_ad_raw(tmp_path / "raw")
    write_lines(raw / "behavior_log.csv", BEHAVIOR_LOG + ["u42,1494000000,pv,7,4000"])
    assert_fails(capsys, tmp_path, raw, "behavior_log.csv", "column 'user'", "'u42'", "line 9")
