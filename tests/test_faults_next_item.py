"""Faults of the next-item paths (issue 18): each case either does the right thing or stops with
one line naming the file, key or id and what was expected, with nothing half-written and nothing
left behind. Tiny hand-made files: 30 users, 20 items, 10 interactions each; 1 epoch, hidden 16.
Each case reproduces a failure of an earlier version (named in its docstring)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from common.errors import MDAFError
from data_prep.next_item.config import load_next_item_config
from data_prep.next_item.prepare import prepare_copy, prepare_next_item
from raw_builders import INTER_HEADER, interactions, next_item_experiment, write_inter
from training.config import load_experiment
from training.run import main, run_experiment

REPO = Path(__file__).resolve().parents[1]


def userbehavior_lines(rows: list[tuple[int, int, int]], kind: str = "pv") -> list[str]:
    return [f"{u},{i},7,{kind},{1511539200 + t}" for u, i, t in rows]


def train(capsys, tmp_path: Path, monkeypatch, *args: str) -> str:
    """The error line of experiments/train_mamba4rec.py run in `tmp_path` with `args`, which must fail."""
    monkeypatch.chdir(tmp_path)
    code = main(["--config", str(next_item_experiment(tmp_path)), "--results-dir", "results", *args], "", "unused")
    line = (capsys.readouterr().err.strip().splitlines() or [""])[-1]
    assert code == 1 and line.startswith("error: "), line
    return line


# ----- 2. the file given is the file read -----

def test_a_lower_case_userbehavior_file_is_the_one_read(tmp_path):
    """Before: `--data folder/userbehavior.csv` read folder/UserBehavior.csv (another file) while
    meta.json named the one given; alone, it failed naming a file the user never passed."""
    folder = tmp_path / "raw"
    folder.mkdir()
    rows = interactions()
    (folder / "UserBehavior.csv").write_text("\n".join(userbehavior_lines(rows)) + "\n")  # 30 users
    (folder / "userbehavior.csv").write_text("\n".join(userbehavior_lines([r for r in rows if r[0] <= 20])) + "\n")
    config = load_next_item_config(k_core=2)
    assert prepare_next_item(folder / "userbehavior.csv", tmp_path / "both", config)["users"] == 20
    (folder / "UserBehavior.csv").unlink()
    assert prepare_next_item(folder / "userbehavior.csv", tmp_path / "alone", config)["users"] == 20


# ----- 4. predictions that join back to the data -----

def test_test_predictions_name_raw_users_and_items_with_the_vocabularies_beside(tmp_path, monkeypatch):
    """Before: test_predictions.parquet held user_id as an internal index in string-sorted order
    of the raw ids (index 1 was user "10") and no user vocabulary was written."""
    monkeypatch.chdir(tmp_path)
    rows = interactions()
    data = write_inter(tmp_path / "a.inter", rows)
    cfg = load_experiment(next_item_experiment(tmp_path), {"data": {"raw_dir": str(data)}})
    run = run_experiment(cfg, "r", tmp_path / "results")
    preds = pl.read_parquet(run / "test_predictions.parquet")
    last = {str(u): str(i) for u, i, _ in rows}  # leave-one-out: each user's last item is the test target
    assert preds["user_id"].dtype == pl.String and len(preds) == 30
    assert dict(zip(preds["user_id"], preds["item_id"])) == last
    for space, column in (("user", "user_id"), ("item", "item_id")):
        vocab = pl.read_parquet(run / "vocab" / f"{space}.parquet")
        index = dict(zip(vocab["raw"], vocab["index"]))
        assert [index[raw] for raw in preds[column]] == preds[f"{space}_index"].to_list()


# ----- 6. nothing changed silently in preparation -----

def test_fractional_timestamps_are_sorted_on_their_exact_value(tmp_path):
    """Before: times were rounded before the sort, so 1000.4 written before 1000.2 came out in
    file order, not time order."""
    rows = [r for r in interactions() if r[0] != 1]
    user1 = [(1, i, 1000 + 60 * i) for i in range(8)] + [(1, 18, "2000.4"), (1, 19, "2000.2")]
    out = tmp_path / "out"
    prepare_next_item(write_inter(tmp_path / "f.inter", user1 + rows), out, load_next_item_config(k_core=2))
    vocab = pl.read_parquet(out / "vocab" / "item.parquet")
    raw = dict(zip(vocab["index"].to_list(), vocab["raw"].to_list()))
    folder = out / "timelines" / "history"
    times, items = np.load(folder / "time.npy"), np.load(folder / "item.npy")
    assert [raw[i] for i in items[times == 2000]] == ["19", "18"]  # user 1's last two, in time order


def test_ids_with_spaces_are_the_same_ids(tmp_path):
    """Before: `1, 14` and `1,14` were two items (" 14" and "14") and two users."""
    rows = interactions()
    csv = tmp_path / "log.csv"
    csv.write_text("user_id,item_id,timestamp\n" + "".join(
        f"{u}, {i} ,{t}\n" if k % 2 else f" {u},{i},{t}\n" for k, (u, i, t) in enumerate(rows)))
    summary = prepare_next_item(csv, tmp_path / "out", load_next_item_config(k_core=2))
    assert summary["users"] == 30 and summary["items"] == len({i for _, i, _ in rows})


def test_unknown_userbehavior_types_are_counted_and_named(tmp_path):
    """Before: rows of type `click` or `PV` were dropped uncounted; with every row dropped the only
    message was "no interactions"."""
    rows = interactions()
    path = tmp_path / "UserBehavior.csv"
    path.write_text("\n".join(userbehavior_lines(rows) + userbehavior_lines(rows[:7], "click")
                              + userbehavior_lines(rows[7:10], "PV")) + "\n")
    summary = prepare_next_item(path, tmp_path / "out", load_next_item_config())
    assert summary["drops"]["unknown behaviour type (not one of pv, cart, fav, buy)"] == 10
    path.write_text("\n".join(userbehavior_lines(rows, "click")) + "\n")
    with pytest.raises(MDAFError, match="UserBehavior.csv: no rows of the behaviour types kept.*'click': 300"):
        prepare_next_item(path, tmp_path / "none", load_next_item_config())
    with pytest.raises(MDAFError, match=r"key 'behaviors' holds \['click'\]"):
        load_next_item_config(behaviors=["pv", "click"])


# ----- 7. a seed out of range is one line, before anything is done -----

@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_a_seed_out_of_range_stops_before_preparation(capsys, tmp_path, monkeypatch, seed):
    """Before: NumPy's traceback, after the data was prepared and config.yaml written."""
    data = write_inter(tmp_path / "a.inter", interactions())
    assert "'seed'" in train(capsys, tmp_path, monkeypatch, "--data", str(data), "--seed", seed)
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()


# ----- 8. two runs preparing one new file at once -----

RACE = """
import sys, time
from pathlib import Path
import data_prep.next_item.prepare as prep
from data_prep.next_item.config import load_next_item_config
read = prep.read_interactions
prep.read_interactions = lambda *a, **k: (time.sleep(1.5), read(*a, **k))[1]  # both are mid-preparation at once
go = Path(sys.argv[3])
while not go.exists():
    time.sleep(0.01)
print(prep.prepare_copy(Path(sys.argv[1]), Path(sys.argv[2]), load_next_item_config(k_core=2)))
"""


def test_two_runs_preparing_one_new_file_share_one_copy(tmp_path):
    """Before: the second failed with "already exists; pass --overwrite", a flag neither training
    script has."""
    data, root, go = write_inter(tmp_path / "a.inter", interactions()), tmp_path / "data", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(data), str(root), str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=REPO) for _ in range(2)]
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-1500:] for _, err in results]
    outs = {out.strip() for out, _ in results}
    assert len(outs) == 1 and sorted(p.name for p in root.iterdir()) == [Path(outs.pop()).name]


# ----- 9. nothing left behind -----

HOLD = """
import sys
from common.atomic import build_lock
with build_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_later_run_removes_what_a_killed_preparation_left(tmp_path):
    """Before: a SIGKILL during preparation left data/.<name>.tmp-<pid>/ (6 MB on the issue's
    files) that no later run removed. A folder another live process is building stays."""
    root, data = tmp_path / "data", write_inter(tmp_path / "a.inter", interactions())
    stale = root / ".next_item-old-0123abcd.tmp-999999999"
    (stale / "timelines").mkdir(parents=True)
    (stale / "timelines" / "part.npy").write_bytes(b"\0" * 1000)
    (root / ".next_item-old-0123abcd.lock").touch()  # the killed process held it
    out = prepare_copy(data, root, load_next_item_config())
    assert sorted(p.name for p in root.iterdir()) == [out.name]
    live = root / ".next_item-live-4567cdef.tmp-1"
    live.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(root / "next_item-live-4567cdef")], cwd=REPO,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert prepare_copy(data, root, load_next_item_config()) == out
        assert sorted(p.name for p in root.iterdir()) == sorted([out.name, live.name, ".next_item-live-4567cdef.lock"])
    finally:
        holder.communicate("", timeout=60)
    assert holder.returncode == 0


# ----- 10. messages that send the user the right way -----

def space_separated_header(folder: Path) -> Path:
    return write_inter(folder / "a.inter", interactions(), INTER_HEADER.replace("\t", " "))  # as the README printed it


def comma_separated_udata(folder: Path) -> Path:
    (folder / "u.data").write_text("1,2,3,4\n1,3,3,5\n")
    return folder / "u.data"


def unknown_name(folder: Path) -> Path:
    return write_inter(folder / "log.txt", interactions())


def equal_times(folder: Path) -> Path:
    return write_inter(folder / "same.inter", [(u, i, 1000) for u, i, _ in interactions()])


def extra_field(folder: Path) -> Path:
    return write_inter(folder / "a.inter", [*interactions(), (3, 4, 5000, 9)])


def folder_for_data(folder: Path) -> Path:
    write_inter(folder / "a.inter", interactions())
    return folder


CASES = {  # what is given, extra arguments, what the line must say
    "space-separated header": (space_separated_header, [], ["a.inter", "must be tab-separated"]),
    "comma-separated u.data": (comma_separated_udata, [],
                               ["u.data", "line 1 has 1 tab-separated field(s), expected 4", "'1,2,3,4'"]),
    "unknown file name": (unknown_name, [], ["log.txt", "data.prep.format"]),
    "temporal with equal times": (equal_times, ["--protocol", "temporal"],
                                  ["same.inter", "'temporal'", "1 distinct value", "--protocol loo"]),
    "extra field": (extra_field, [], ["a.inter", "line 302 has 4 tab-separated field(s), expected 3"]),
    "a folder for --data": (folder_for_data, [], ["a folder, but --data expects an interactions file",
                                                   "pass " + "{folder}/a.inter"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_misleading_messages_name_what_was_expected(capsys, tmp_path, monkeypatch, case):
    """Before, in order: "missing field(s)" without a word on tabs; Polars' internal advice; "set
    'format'" without the key's place; "check the split days of the data config", which next-item
    does not use; no line number; "not found" for a folder that exists."""
    make, args, expected = CASES[case]
    folder = tmp_path / "in"
    folder.mkdir()
    line = train(capsys, tmp_path, monkeypatch, "--data", str(make(folder)), *args)
    for text in expected:
        assert text.format(folder=folder) in line, (text, line)
    assert not list(tmp_path.glob("data/*")) and not list(tmp_path.glob("data/.*"))  # nothing prepared, nothing left
