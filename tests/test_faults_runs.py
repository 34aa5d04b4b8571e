"""Faults of training runs: one run per directory, resume and predict only on the data a model
was trained on, config values in range, paths that work from anywhere, reports that render.
Each case reproduces a failure of an earlier version (named in its docstring)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from markdown_it import MarkdownIt

from common.errors import MDAFError
from data_prep.config import load_prep_config
from data_prep.prepare import prepare
from raw_builders import interactions, next_item_experiment, write_inter
from training import grid_cli
from training.ablation import load_ablation, write_summary
from training.config import load_experiment
from training.run import run_experiment
from training.run_lock import locked_run_dir

REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = {"base": "configs/model/mdaf.yaml", "hidden": 16, "mlp": {"hidden": [16]},
              "sequence": {"hidden": 16, "n_layers": 1}, "static": {"dcnv3": {"ecn_layers": 1, "lcn_layers": 1}}}
TINY_TRAIN = {"base": "configs/train/v2.yaml", "epochs": 1, "batch_size": 512, "seq_len": 8,
              "eval_batch_size": 4096, "warmup_epochs": 0, "threads": 1}


def experiment(tmp_path: Path, data_dir: str | Path, **train) -> Path:
    cfg = {"experiment": "tiny", "model": TINY_MODEL, "train": {**TINY_TRAIN, **train},
           "data": {"source": "taobao_ad", "dir": str(data_dir)}}
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def script(name: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "experiments" / name), *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ")
    return line


@pytest.fixture(scope="module")
def relative_run(tiny_dataset, tmp_path_factory) -> Path:
    """A finished run started from its own folder with relative data and results paths, as a user
    does (`--data-dir data/...`); returns that folder."""
    home = tmp_path_factory.mktemp("home")
    shutil.copytree(tiny_dataset.root, home / "data" / "tiny")
    path = experiment(home, "data/tiny")
    result = script("train_mdaf.py", "--config", str(path), "--run-name", "r", cwd=home)
    assert result.returncode == 0, result.stderr
    return home


# ----- 2. one run directory, one run -----

def test_a_run_directory_in_use_refuses_a_second_run_and_a_resume(tiny_dataset, tmp_path):
    """Before: two trainings with one --run-name both exited 0 into one folder: every metrics
    record twice, config.yaml of one seed and summary.json of the other, one shared best.pt."""
    path = experiment(tmp_path, tiny_dataset.root)
    run_dir = tmp_path / "results" / "tiny"
    with locked_run_dir(run_dir):
        for extra in ([], ["--resume"]):
            result = script("train_mdaf.py", "--config", str(path), "--results-dir", str(tmp_path / "results"),
                            "--run-name", "tiny", *extra)
            line = one_line_error(result)
            assert str(run_dir) in line and f"process {os.getpid()}" in line
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # nothing written by the refused runs


def test_the_lock_is_released_when_a_run_ends(tiny_dataset, tmp_path):
    run_dir = tmp_path / "results" / "tiny"
    with locked_run_dir(run_dir):
        pass
    with locked_run_dir(run_dir):  # free again
        pass


# ----- 4. resume, and predict, only on the data a model was trained on -----

def test_resume_refuses_a_dataset_rebuilt_in_place(tiny_dataset, tmp_path):
    """Before: a run resumed after its dataset folder was rebuilt continued on the new rows and
    renumbered vocabularies, exit 0."""
    raw, data = Path(tiny_dataset.meta["raw_dir"]), tmp_path / "data"
    prepare(raw, data, load_prep_config("taobao_ad"))
    cfg = load_experiment(experiment(tmp_path, data))
    run_dir = run_experiment(cfg, "r", tmp_path / "results")
    prepare(raw, data, load_prep_config("taobao_ad", val_days=["2017-05-11", "2017-05-12"],
                                        train_days=["2017-05-06", "2017-05-10"]), overwrite=True)
    with pytest.raises(MDAFError, match="written for other data") as err:
        run_experiment(cfg, "r", tmp_path / "results", resume=True)
    assert "rows" in str(err.value)
    result = script("predict.py", "--run", str(run_dir))
    assert "written for other data" in one_line_error(result)


# ----- 6. damaged inputs stop before training -----

@pytest.mark.parametrize("damage", ["truncate test", "remove val"])
def test_a_damaged_or_missing_split_stops_before_training(tiny_dataset, tmp_path, damage):
    """Before: a truncated parquet gave a traceback, and a missing test split was found only
    after training."""
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset.root, data)
    action, split = damage.split()
    path = data / "samples" / f"{split}.parquet"
    if action == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.unlink()
    result = script("train_mdaf.py", "--config", str(experiment(tmp_path, data)),
                    "--results-dir", str(tmp_path / "results"))
    assert f"{split}.parquet" in one_line_error(result)
    assert not (tmp_path / "results" / "tiny-seed0" / "checkpoints").exists()


# ----- 7. config values in range -----

@pytest.mark.parametrize("key,value", [("epochs", 0), ("epochs", -1), ("label_smoothing", 1.5),
                                       ("label_smoothing", 1.0), ("lr", -0.001), ("lr", 0.0),
                                       ("eval_batch_size", 0)])
def test_out_of_range_recipe_values_name_the_key(tiny_dataset, tmp_path, key, value):
    """Before: epochs 0 and -1 trained one epoch ("reached the last epoch (0)"), label smoothing
    1.5 was accepted (logloss 11.7), and a negative learning rate gave a traceback."""
    with pytest.raises(MDAFError, match=f"'{key}'"):
        load_experiment(experiment(tmp_path, tiny_dataset.root, **{key: value}))


def test_negative_lr_from_the_command_line_is_one_line(tiny_dataset, tmp_path):
    result = script("train_mdaf.py", "--config", str(experiment(tmp_path, tiny_dataset.root, lr=-0.001)),
                    "--results-dir", str(tmp_path / "results"))
    assert "'lr'" in one_line_error(result)


def test_exponent_notation_is_a_float(tiny_dataset, tmp_path):
    """Before: PyYAML read `lr: 1e-3` as the string '1e-3'."""
    path = tmp_path / "experiment.yaml"
    path.write_text(f"experiment: tiny\nmodel: configs/model/dnn.yaml\ndata: {{dir: {tiny_dataset.root}}}\n"
                    "train: {base: configs/train/v2.yaml, lr: 1e-3, weight_decay: 5E-5}\n")
    train = load_experiment(path).train
    assert train.lr == 0.001 and isinstance(train.lr, float) and train.weight_decay == 5e-5


# ----- 8. paths -----

def test_predict_works_from_any_directory(relative_run, tmp_path):
    """Before: a run trained on `--data-dir data/...` could be scored only from the folder it was
    started in."""
    result = script("predict.py", "--run", str(relative_run / "results" / "r"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    scores = pl.read_parquet(relative_run / "results" / "r" / "predictions.parquet")
    assert scores.height == pl.read_parquet(relative_run / "results" / "r" / "test_predictions.parquet").height


def test_ablation_writes_under_its_results_dir_only(tiny_dataset, tmp_path):
    """Before: `run_ablations.py --results-dir X` rewrote the repository's
    docs/baseline_results_summary.md."""
    doc = REPO / "docs" / "baseline_results_summary.md"
    before = doc.read_bytes()
    grid = {"base": str(experiment(tmp_path, tiny_dataset.root)), "reference": "DNN", "seeds": [0],
            "models": [{"label": "DNN", "model": {"base": "configs/model/dnn.yaml", "mlp": {"hidden": [16]}}}]}
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    results = tmp_path / "X"
    result = script("run_ablations.py", "--config", str(tmp_path / "grid.yaml"), "--results-dir", str(results))
    assert result.returncode == 0, result.stderr
    assert (results / "summary.md").is_file() and doc.read_bytes() == before
    result = script("run_ablations.py", "--config", str(tmp_path / "grid.yaml"), "--results-dir", str(results),
                    "--summary-only", "--doc", str(tmp_path / "asked.md"))
    assert result.returncode == 0 and (tmp_path / "asked.md").read_text() == (results / "summary.md").read_text()


# ----- 9. the report renders -----

def test_every_report_table_renders_as_a_table(relative_run):
    """Before: the epoch table had 10 header cells and 11 alignment cells, so Markdown showed it as
    text."""
    text = (relative_run / "results" / "r" / "report.md").read_text()
    blocks = [b for b in text.split("\n\n") if b.lstrip().startswith("|")]
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    assert len(blocks) >= 5 and sum(t.type == "table_open" for t in tokens) == len(blocks)
    width, cells = None, 0
    for token in tokens:
        if token.type == "tr_open":
            cells = 0
        elif token.type in ("th_open", "td_open"):
            cells += 1
        elif token.type == "tr_close":
            width = cells if width is None else width
            assert cells == width
        elif token.type == "table_close":
            width = None


# ----- 10. grids and reports never relabel or mix data sets -----

def tiny_grid(folder: Path, seeds: int = 1) -> Path:
    """One next-item model on the tiny hand-made experiment."""
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump({"base": str(next_item_experiment(folder)), "reference": "Mamba4Rec",
                                    "seeds": list(range(seeds)),
                                    "models": [{"label": "Mamba4Rec", "model": {"base": "configs/model/mamba4rec.yaml",
                                                                                "hidden": 16, "d_state": 8}}]}))
    return path


def test_a_grid_refuses_to_relabel_finished_runs(capsys, tmp_path, monkeypatch):
    """Before: the grid rerun with --protocol temporal (or another --data) exited 0 with every run
    "finished already, skipped", and summary.md showed the new command above the leave-one-out
    figures."""
    monkeypatch.chdir(tmp_path)
    a, b = (write_inter(tmp_path / f"{name}.inter", interactions(seed)) for seed, name in enumerate("ab"))
    grid = tiny_grid(tmp_path)

    def run(*args: str) -> tuple[int, str]:
        code = grid_cli.main(["--config", str(grid), "--results-dir", "R", *args], "", "experiments/run_next_item.py",
                             "unused", "unused")
        return code, (capsys.readouterr().err.strip().splitlines() or [""])[-1]

    assert run("--data", str(a))[0] == 0
    summary = (tmp_path / "R" / "summary.md").read_bytes()
    for args, named in ((["--data", str(a), "--protocol", "temporal"], "data.prep.protocol 'unset' -> 'temporal'"),
                        (["--data", str(b)], "data a.inter #"),
                        (["--summary-only", "--protocol", "temporal"], "--summary-only")):
        code, line = run(*args)
        assert code == 1 and line.startswith("error: ") and named in line, line
        assert "another --results-dir" in line or "drop it" in line  # the way out
    assert (tmp_path / "R" / "summary.md").read_bytes() == summary
    assert run("--data", str(a))[0] == 0  # the same settings: skipped
    assert run("--data", str(a), "--epochs", "1")[0] == 0  # 1 is the config's value: the same settings


def test_reports_compare_runs_on_one_data_set_only(tmp_path, monkeypatch):
    """Before: the comparison's data column showed only the source (next_item), so runs on
    different files appeared as one comparable table; a grid's table did the same."""
    monkeypatch.chdir(tmp_path)
    path = next_item_experiment(tmp_path)
    for seed, name in enumerate("ab"):
        data = write_inter(tmp_path / f"{name}.inter", interactions(seed))
        run_experiment(load_experiment(path, {"data": {"raw_dir": str(data)}, "train": {"seed": seed}}),
                       f"mamba4rec/seed{seed}", tmp_path / "R")
    report = (tmp_path / "R" / "mamba4rec" / "seed1" / "report.md").read_text()
    comparison = report.split(". Comparison\n", 1)[1].split("\n## ", 1)[0]
    assert "mamba4rec/seed0" not in comparison and "this data (b.inter #" in comparison
    assert "Not compared: 1 finished run(s) of this task on other data (a.inter #" in comparison
    with pytest.raises(MDAFError, match=r"different data .*a.inter #.*b.inter #.*its own --results-dir"):
        write_summary(load_ablation(tiny_grid(tmp_path, seeds=2)), tmp_path / "R", "run_next_item.py")

