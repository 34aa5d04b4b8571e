"""The one trainer on the next-item task: a tiny synthetic run end to end (records, checkpoints,
predictions, the report with its oracle and per-length table), training on every position with
windows that cover each training target once, the grid's table, and clear errors when a model
and a dataset are for different tasks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import yaml

from common.errors import MDAFError
from data_prep.dataset import ProcessedDataset
from data_prep.next_item.config import load_next_item_config
from data_prep.next_item.prepare import prepare_next_item
from data_prep.next_item.synthetic import generate_sequences, load_sequence_config
from training.ablation import load_ablation, write_summary
from training.length_sweep import write_sweep
from training.config import RankingConfig, TrainConfig, load_experiment
from training.distributed import Dist
from training.predict import predict
from training.run import run_experiment
from training.tasks.next_item import NextItemTask

REPO = Path(__file__).resolve().parents[1]
TRAIN = {"base": "configs/train/next_item.yaml", "epochs": 2, "batch_size": 64, "seq_len": 12, "threads": 1}
SMALL = {"mamba4rec": {"hidden": 16, "d_state": 8}, "sasrec": {"hidden": 16, "inner": 32},
         "gru4rec": {"embedding": 16, "hidden": 16}, "mambarec": {"hidden": 16, "d_state": 8},
         "pop": {}, "recent": {}, "knn": {}}


@pytest.fixture(scope="module")
def sequences(tmp_path_factory) -> ProcessedDataset:
    root = tmp_path_factory.mktemp("next_item")
    inter = generate_sequences(load_sequence_config(None, n_users=80, n_items=60, n_clusters=6,
                                                    events_per_user=20), root)
    prepare_next_item(inter, root / "prepared", load_next_item_config())
    return ProcessedDataset(root / "prepared")


def experiment(tmp_path: Path, dataset: ProcessedDataset, name: str = "mamba4rec", train_on: str = "last",
               **train) -> Path:
    cfg = {"experiment": "tiny_next", "label": name, "model": {"base": f"configs/model/{name}.yaml", **SMALL[name]},
           "train": {**TRAIN, **train}, "data": {"source": "next_item", "dir": str(dataset.root)},
           "ranking": {"train_on": train_on}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_tiny_run_writes_a_ranking_report(sequences, tmp_path):
    run = run_experiment(load_experiment(experiment(tmp_path, sequences)), "m", tmp_path / "results")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "next_item" and summary["train"]["monitor"] == "ndcg@10"
    assert set(summary["test"]) == {"hr", "ndcg", "mrr", "n", "repeat", "new"}
    assert summary["test"]["n"] == sequences.meta["rows"]["test"]
    assert summary["calibration"] is None and not (run / "calibration.json").exists()
    preds = pl.read_parquet(run / "test_predictions.parquet")
    ranks = preds["rank"].to_numpy()
    assert 1 <= ranks.min() and ranks.max() <= 60
    assert summary["test"]["hr"]["10"] == pytest.approx(float((ranks <= 10).mean()))
    # repeat targets: the target among the last seq_len (12) items of the user's history
    test, items = sequences.split("test"), sequences.timeline("history")["item"]
    repeat = np.array([item in items[max(start, end - 12):end] for item, start, end in
                       zip(test.static["item"], test.start["history"], test.end["history"])])
    assert 0 < repeat.sum() < len(repeat) and (preds["repeat"].to_numpy() == repeat).all()
    for group, rows in (("repeat", repeat), ("new", ~repeat)):
        figures = summary["test"][group]
        assert figures["n"] == rows.sum() and figures["ndcg"] == pytest.approx(
            float(np.where(ranks[rows] <= 10, 1 / np.log2(ranks[rows] + 1), 0).mean()))
    assert summary["data"]["oracle"]["test"]["hr@10"] > 0
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [set(e["val"]) >= {"hr@10", "ndcg@10", "mrr@10"} for e in epochs if e["kind"] == "epoch"] == [True, True]
    md = (run / "report.md").read_text()
    assert "NDCG@10" in md and "oracle" in md and "Success criteria" not in md
    assert f"| repeat: in the window | {repeat.sum()} | {repeat.mean():.1%} |" in md
    assert (run / "learning_curves.png").stat().st_size > 10_000 and not (run / "reliability.png").exists()
    assert (run / "checkpoints" / "best.pt").is_file()
    with pytest.raises(MDAFError, match="predict.py scores CTR runs"):
        predict(run, ["test"])


@pytest.mark.parametrize("name", ["sasrec", "gru4rec", "mambarec"])
def test_every_position_trains_the_causal_models(sequences, tmp_path, name):
    run = run_experiment(load_experiment(experiment(tmp_path, sequences, name, "all", epochs=1)), name,
                         tmp_path / "results")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test"]["ndcg"]["10"] >= 0
    if name == "mambarec":  # the hybrid's gate over the test windows, per layer
        gate = summary["diagnostics"]["hybrid_gate"]
        assert gate["n"] == summary["test"]["n"] and 0 < gate["mean"][0] < 1


@pytest.mark.parametrize("train_on", ["last", "all"])
def test_the_repeat_explore_head_trains_on_the_trainer(sequences, tmp_path, train_on):
    path = experiment(tmp_path, sequences, "mamba4rec", train_on, epochs=1)
    cfg = load_experiment(path, {"model": {"head": "repeat_explore"}})
    run = run_experiment(cfg, f"head_{train_on}", tmp_path / "results")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in records if r["kind"] == "epoch"]
    assert losses and all(np.isfinite(losses))
    assert json.loads((run / "summary.json").read_text())["test"]["repeat"]["n"] > 0
    state = torch.load(run / "checkpoints" / "best.pt", weights_only=False)["model"]
    assert "repeat_explore.gate.weight" in state


@pytest.mark.parametrize("name", ["pop", "recent", "knn"])
def test_a_counting_model_fits_every_training_target_whatever_train_on_says(sequences, tmp_path, name):
    """train_on all reads one window in L per user for gradient steps; a counting model still
    counts every training target, and its checkpoint holds the counts."""
    run = run_experiment(load_experiment(experiment(tmp_path, sequences, name, "all")), name, tmp_path / "results")
    summary = json.loads((run / "summary.json").read_text())
    counts = torch.load(run / "checkpoints" / "best.pt", weights_only=False)["model"]["counts"]
    assert int(counts.sum()) == sequences.meta["rows"]["train"] == len(sequences.split("train"))
    assert summary["train"]["epochs_run"] == 1 and summary["model"]["params"] == 0
    assert "fitted in one pass" in summary["train"]["stop_reason"]


def test_windows_of_all_positions_cover_each_target_once(sequences):
    seq_len = 5
    task = NextItemTask(sequences, TrainConfig(seq_len=seq_len), RankingConfig(train_on="all"), None, Dist(), False)
    table = sequences.split("train")
    rows = task.train_rows()
    covered = []
    for r in rows:  # a window ending at target r predicts the targets of its last seq_len positions
        user = table.user_id[r]
        same = np.flatnonzero((table.user_id == user) & (table.end["history"] <= table.end["history"][r])
                              & (table.end["history"] > table.end["history"][r] - seq_len))
        covered += same.tolist()
    assert sorted(covered) == list(range(len(table)))


def test_a_model_for_the_other_task_is_refused(sequences, tiny_dataset, tmp_path):
    with pytest.raises(MDAFError, match="'mamba4rec' is a next_item model but .* holds ctr data"):
        cfg = load_experiment(experiment(tmp_path, sequences))
        cfg.data.dir, cfg.data.source = str(tiny_dataset.root), "taobao_ad"
        run_experiment(cfg, "wrong", tmp_path / "results")
    cfg = load_experiment(REPO / "configs/experiments/mdaf.yaml", {"data": {"dir": str(sequences.root), "source": "next_item"}})
    with pytest.raises(MDAFError, match="'mdaf' is a ctr model"):
        run_experiment(cfg, "wrong2", tmp_path / "results")


def test_grid_table_ranks_by_ndcg(sequences, tmp_path):
    results = tmp_path / "grid"
    for name, seed in (("mamba4rec", 0), ("mamba4rec", 1), ("sasrec", 0), ("sasrec", 1)):
        cfg = load_experiment(experiment(tmp_path, sequences, name, "all", epochs=1, seed=seed))
        run_experiment(cfg, f"{name}/seed{seed}", results)
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"base": str(experiment(tmp_path, sequences)), "reference": "Mamba4Rec",
                                    "seeds": [0, 1], "models": [{"label": "Mamba4Rec", "model": "x"},
                                                                {"label": "SASRec", "model": "y"}]}))
    rows = write_summary(load_ablation(grid), results, "python experiments/run_next_item.py", tmp_path / "doc.md")
    by = {r["label"]: r for r in rows}
    ndcg = [json.loads((results / "sasrec" / f"seed{s}" / "summary.json").read_text())["test"]["ndcg"]["10"]
            for s in (0, 1)]
    assert by["SASRec"]["ndcg@10_mean"] == pytest.approx(np.mean(ndcg)) and by["SASRec"]["seeds"] == 2
    doc = (tmp_path / "doc.md").read_text()
    assert "test NDCG@10 (mean ± std)" in doc and "ΔNDCG@10 vs Mamba4Rec" in doc
    assert "the true next-item probabilities score test NDCG@10" in doc
    tests = [json.loads((results / "sasrec" / f"seed{s}" / "summary.json").read_text())["test"] for s in (0, 1)]
    share = np.mean([t["repeat"]["n"] / t["n"] for t in tests])
    new = np.mean([t["new"]["ndcg"] for t in tests])
    assert by["SASRec"]["groups"]["new_ndcg@10"] == pytest.approx(new)
    assert "## Repeat and new targets" in doc and f"| SASRec | {by['SASRec']['ndcg@10_mean']:.4f} | {share:.1%} |" in doc
    unrun = yaml.safe_load(grid.read_text())  # a reference with no finished run: nothing to compare with
    unrun["reference"], unrun["models"] = "GRU4Rec", [*unrun["models"], {"label": "GRU4Rec", "model": "z"}]
    grid.write_text(yaml.safe_dump(unrun))
    write_summary(load_ablation(grid), results, "python experiments/run_next_item.py", tmp_path / "doc2.md")
    line = next(x for x in (tmp_path / "doc2.md").read_text().splitlines() if x.startswith("| SASRec | 2 |"))
    assert line.split(" | ")[4:7] == ["n/a", "n/a", "n/a"]  # Δ, p, beats it


def test_length_sweep_tables_and_plots_each_model_against_l(sequences, tmp_path):
    results = tmp_path / "sweep"
    labels = {"mamba4rec": "Mamba4Rec", "mambarec": "MambaRec"}
    for name in labels:
        for length in (4, 12):
            cfg = load_experiment(experiment(tmp_path, sequences, name, "all", epochs=1, seq_len=length))
            run_experiment(cfg, f"{name}_l_{length}/seed0", results)
    grid = tmp_path / "sweep.yaml"
    grid.write_text(yaml.safe_dump({"base": str(experiment(tmp_path, sequences)), "reference": "Mamba4Rec L=12",
                                    "seeds": [0], "models": [{"label": f"{label} L={length}", "model": "x"}
                                                             for label in labels.values() for length in (4, 12)]}))
    rows = write_sweep(load_ablation(grid), results, "python experiments/run_long_history.py", tmp_path / "doc.md")
    assert [(r["model"], r["length"]) for r in rows] == [("Mamba4Rec", 4), ("Mamba4Rec", 12), ("MambaRec", 4),
                                                          ("MambaRec", 12)]
    ndcg = json.loads((results / "mambarec_l_12" / "seed0" / "summary.json").read_text())["test"]["ndcg"]["10"]
    assert rows[3]["first"] == pytest.approx(ndcg) and rows[3]["gate"] is not None and rows[0]["gate"] is None
    oracle = json.loads((results / "length_sweep.json").read_text())["oracle"]["ndcg@10"]
    best = max(r["first"] for r in rows if r["length"] == 4)
    assert rows[1]["closed"] == pytest.approx((rows[1]["first"] - best) / (oracle - best))
    doc = (tmp_path / "doc.md").read_text()
    assert "| MambaRec | 12 | 1 |" in doc and "doc.png" in doc
    test = json.loads((results / "mambarec_l_12" / "seed0" / "summary.json").read_text())["test"]
    assert f"| MambaRec | 12 | {ndcg:.4f} | {test['repeat']['n'] / test['n']:.1%} |" in doc  # repeat and new targets
    assert (tmp_path / "doc.png").stat().st_size > 10_000 and (results / "length_sweep.png").is_file()


def test_the_script_runs_on_a_generic_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = [(u, int(rng.integers(20)), 1000 + 60 * t) for u in range(40) for t in range(12)]
    csv = tmp_path / "log.csv"
    csv.write_text("user_id,item_id,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    config = tmp_path / "m.yaml"
    config.write_text(yaml.safe_dump({"experiment": "m", "model": {"base": "configs/model/mamba4rec.yaml", **SMALL["mamba4rec"]},
                                      "train": {**TRAIN, "epochs": 1}, "data": {"source": "next_item"}}))
    result = subprocess.run([sys.executable, str(REPO / "experiments" / "train_mamba4rec.py"), "--config", str(config),
                             "--data", str(csv), "--protocol", "temporal", "--results-dir", str(tmp_path / "r")],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "r" / "m-seed0" / "summary.json").read_text())
    assert summary["data"]["dir"].startswith("data/next_item-log-")
    assert json.loads((Path(tmp_path) / summary["data"]["dir"] / "meta.json").read_text())["protocol"] == "temporal"


def test_torchrun_two_processes_train_as_one(sequences, tmp_path):
    """Every position of every rank's windows weighs the same: ranks hold different numbers of
    real positions, so the loss is the sum over the global count (before: each rank's own mean,
    which moved the metrics). No dropout, so both runs draw no random numbers."""
    path = experiment(tmp_path, sequences, "sasrec", "all", epochs=2)
    cfg = yaml.safe_load(path.read_text())
    cfg["model"]["dropout"] = 0.0
    path.write_text(yaml.safe_dump(cfg))
    script = REPO / "experiments" / "train_mamba4rec.py"
    common = ["--config", str(path), "--results-dir", str(tmp_path / "r")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name, launcher in (("one", []), ("two", ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"])):
        result = subprocess.run([sys.executable, *launcher, str(script), *common, "--run-name", name],
                                capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    one, two = ([json.loads(line) for line in (tmp_path / "r" / name / "metrics.jsonl").read_text().splitlines()
                 if json.loads(line)["kind"] == "epoch"] for name in ("one", "two"))
    assert [r["train_loss"] for r in two] == pytest.approx([r["train_loss"] for r in one], abs=1e-6)
    assert [r["val"]["ndcg@10"] for r in two] == pytest.approx([r["val"]["ndcg@10"] for r in one], abs=1e-6)
