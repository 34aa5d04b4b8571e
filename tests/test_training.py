"""The trainer end to end on a tiny set: run directory and report, resume after a kill, a NaN stop,
torchrun with 2 CPU processes, predict round trip, the ablation grid, entry-script errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import yaml

from common.errors import MDAFError
from training.ablation import load_ablation, run_grid, write_summary
from training.length_sweep import write_sweep
from training.checkpoint import load_checkpoint
from training.config import load_experiment, merge
from training.metrics import auc
from training.predict import predict
from training.run import run_experiment
from training.trainer import TrainingDiverged

REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = {"base": "configs/model/mdaf.yaml", "hidden": 32, "mlp": {"hidden": [32]},
              "sequence": {"hidden": 32, "n_layers": 1}, "static": {"dcnv3": {"ecn_layers": 2, "lcn_layers": 2}}}
NO_DROPOUT = {"mlp": {"dropout": 0.0}, "sequence": {"dropout": 0.0},
              "static": {"dcnv3": {"ecn_dropout": 0.0, "lcn_dropout": 0.0}}}
TINY_TRAIN = {"base": "configs/train/v2.yaml", "epochs": 3, "batch_size": 256, "seq_len": 10,
              "eval_batch_size": 1024, "warmup_epochs": 1, "threads": 1, "eval_every": 10, "patience": 20}
EPOCH_KEYS = ("epoch", "step", "lr", "train_loss", "train", "val", "gap", "status", "diagnostics")


def experiment_file(tmp_path: Path, dataset, model=None, **train) -> Path:
    cfg = {"experiment": "tiny", "label": "MDAF-Full", "model": model or TINY_MODEL,
           "train": {**TINY_TRAIN, **train}, "data": {"source": "taobao_ad", "dir": str(dataset.root)}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def tiny_dataset_rows(run_dir: Path) -> np.ndarray:
    """The labels of the train split the run trained on."""
    prepared = Path(yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["prepared_dir"])
    return pl.read_parquet(prepared / "samples" / "train.parquet", columns=["label"])["label"].to_numpy()


def records(run_dir: Path, kind: str) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def epoch_table(run_dir: Path) -> dict[int, tuple]:
    """The last record of each evaluation (by step), without its timings."""
    return {r["step"]: tuple(r[k] for k in EPOCH_KEYS) for r in records(run_dir, "epoch")}


@pytest.fixture(scope="module")
def tiny_run(tiny_dataset, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("run")
    cfg = load_experiment(experiment_file(tmp, tiny_dataset))
    return run_experiment(cfg, "tiny", tmp / "results")


def test_run_directory_and_report(tiny_run):
    for name in ("config.yaml", "train.log", "metrics.jsonl", "checkpoints/best.pt", "checkpoints/last.pt",
                 "test_predictions.parquet", "summary.json", "calibration.json", "report.md", "report.txt",
                 "learning_curves.png", "gate_distribution.png", "reliability.png"):
        assert (tiny_run / name).is_file() and (tiny_run / name).stat().st_size > 0, name
    assert list((tiny_run / "tensorboard").glob("events.out.tfevents.*"))
    summary = json.loads((tiny_run / "summary.json").read_text())
    epochs = records(tiny_run, "epoch")  # one per evaluation: every 10 steps and at each epoch end
    per_epoch = -(-len(tiny_dataset_rows(tiny_run)) // 256)
    ends = [per_epoch * e for e in (1, 2, 3)]
    assert [r["step"] for r in epochs] == sorted({*range(10, 3 * per_epoch + 1, 10), *ends})
    assert [r["progress"] for r in epochs if r["step"] in ends] == [1.0, 2.0, 3.0]
    assert records(tiny_run, "step"), "step records (lr, loss) every log_every steps"
    best = max(epochs, key=lambda r: r["val"]["auc"])
    assert (summary["train"]["best_epoch"], summary["train"]["best_step"]) == (best["epoch"], best["step"])
    assert summary["train"]["stop_reason"] == "reached the last epoch (3)"
    preds = pl.read_parquet(tiny_run / "test_predictions.parquet")
    assert len(preds) == summary["data"]["rows"]["test"]
    assert summary["test"]["auc"] == pytest.approx(auc(preds["label"].to_numpy(), preds["logit"].to_numpy()))
    assert 0.0 <= preds["gate_mean"].min() and preds["gate_mean"].max() <= 1.0
    assert set(summary["diagnostics"]["gate"]) == {"mean", "std", "hist_edges", "hist_counts", "dim_means"}
    # the best weights are the ones restored and tested, and calibrated on validation
    state = load_checkpoint(tiny_run / "checkpoints" / "best.pt")
    assert (state["epoch"], state["step"]) == (best["epoch"], best["step"])
    cal = summary["calibration"]
    assert json.loads((tiny_run / "calibration.json").read_text()) == cal
    z = preds["logit"].to_numpy().astype(np.float64)
    np.testing.assert_allclose(preds["p"].to_numpy(), 1 / (1 + np.exp(-(cal["a"] * z + cal["b"]))), rtol=1e-6)
    np.testing.assert_allclose(preds["p_raw"].to_numpy(), 1 / (1 + np.exp(-z)), rtol=1e-6)
    assert summary["test"]["mean_pred"] == pytest.approx(preds["p"].to_numpy().astype(np.float64).mean(), rel=1e-5)
    assert {"logloss_raw", "mean_pred_raw", "ece", "ece_raw"} <= set(summary["test"])
    report = (tiny_run / "report.md").read_text()
    assert f"{summary['test']['auc']:.4f}" in report and "Gate" in report


def test_resume_after_kill_mid_epoch_matches_uninterrupted_run(tiny_dataset, tiny_run, tmp_path):
    """SIGKILL a training process once it has written a checkpoint inside epoch 2 (or later), resume
    it: the epoch table, test metrics and every test prediction equal the uninterrupted run's."""
    path = experiment_file(tmp_path, tiny_dataset, checkpoint_every=3)
    script = REPO / "experiments" / "train_mdaf.py"
    cmd = [sys.executable, str(script), "--config", str(path), "--run-name", "killed", "--results-dir",
           str(tmp_path / "results")]
    last = tmp_path / "results" / "killed" / "checkpoints" / "last.pt"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None:
            if last.is_file():
                state = torch.load(last, weights_only=False)
                if state["epoch"] >= 2 and state["position"] > 0:
                    proc.send_signal(signal.SIGKILL)
                    break
            time.sleep(0.02)
        proc.wait(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed mid-epoch"
    assert not (last.parent.parent / "summary.json").exists()
    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    run = last.parent.parent
    assert epoch_table(run) == epoch_table(tiny_run)
    assert records(run, "test")[-1] == records(tiny_run, "test")[-1]
    ours = pl.read_parquet(run / "test_predictions.parquet")
    theirs = pl.read_parquet(tiny_run / "test_predictions.parquet")
    assert ours.equals(theirs)


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tiny_dataset, tmp_path, monkeypatch):
    cfg = load_experiment(experiment_file(tmp_path, tiny_dataset))
    from models.mdaf.model import MDAF

    forward, calls = MDAF.forward, {"n": 0}
    steps_per_epoch = -(-len(tiny_dataset.split("train")) // 256)

    def poisoned(self, batch):
        out = forward(self, batch)
        if self.training:
            calls["n"] += 1
            if calls["n"] == steps_per_epoch + 2:  # inside epoch 2
                out.logit = out.logit * float("nan")
        return out

    monkeypatch.setattr(MDAF, "forward", poisoned)
    with pytest.raises(TrainingDiverged) as err:
        run_experiment(cfg, "nan", tmp_path / "results")
    last = tmp_path / "results" / "nan" / "checkpoints" / "last.pt"
    message = str(err.value)
    assert "epoch 2" in message and "loss is nan" in message and str(last) in message
    state = load_checkpoint(last)
    assert (state["epoch"], state["position"], state["step"]) == (2, 0, steps_per_epoch)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_torchrun_two_cpu_processes_match_one(tiny_dataset, tmp_path):
    """Same global batches (rank r takes every 2nd sample of each global batch), same initial weights,
    no dropout, plain BCE: the only difference is the order of float sums in the gradient
    all-reduce, about 1e-7 relative per step (measured over 2 epochs: identical AUCs, losses within
    1e-8). 1e-4 would flag a wrong shard or gradient scale, which moves these AUCs by 1e-3 or more.
    (With Tri-BCE the ranks' loss weights w_k come from their own half batches, which moved
    validation AUC by 4e-4 on this set: that is the loss, not the sharding, so it is left out.)"""
    path = experiment_file(tmp_path, tiny_dataset, model=merge(TINY_MODEL, NO_DROPOUT), epochs=2, aux_loss="none")
    script = REPO / "experiments" / "train_mdaf.py"
    common = ["--config", str(path), "--results-dir", str(tmp_path / "results")]
    one = subprocess.run([sys.executable, str(script), *common, "--run-name", "one"],
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(script), *common, "--run-name", "two"], capture_output=True, text=True, timeout=300,
                         env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = (json.loads((tmp_path / "results" / r / "summary.json").read_text()) for r in ("one", "two"))
    assert b["efficiency"]["world_size"] == 2
    assert b["test"]["n"] == a["test"]["n"]
    for ra, rb in zip(records(tmp_path / "results" / "one", "epoch"), records(tmp_path / "results" / "two", "epoch")):
        assert rb["val"]["auc"] == pytest.approx(ra["val"]["auc"], abs=1e-4)
        assert rb["train"]["auc"] == pytest.approx(ra["train"]["auc"], abs=1e-4)
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], abs=1e-4)
    assert b["test"]["auc"] == pytest.approx(a["test"]["auc"], abs=1e-4)


def test_predict_reproduces_the_test_auc(tiny_run, tmp_path):
    summary = json.loads((tiny_run / "summary.json").read_text())
    out = predict(tiny_run, ["test"], out=tmp_path / "scores.parquet")
    scores = pl.read_parquet(out)
    train_preds = pl.read_parquet(tiny_run / "test_predictions.parquet")
    np.testing.assert_array_equal(scores["logit"].to_numpy(), train_preds["logit"].to_numpy())
    assert auc(scores["label"].to_numpy(), scores["p"].to_numpy()) == pytest.approx(summary["test"]["auc"], abs=1e-6)


def test_predict_new_raw_files_with_the_runs_vocabularies(tiny_run, tiny_dataset, tmp_path):
    """The run's own raw files, prepared again with its vocabularies, score exactly as in training."""
    out = predict(tiny_run, ["test"], raw_dir=tiny_dataset.meta["raw_dir"], out=tmp_path / "raw_scores.parquet")
    np.testing.assert_array_equal(pl.read_parquet(out)["logit"].to_numpy(),
                                  pl.read_parquet(tiny_run / "test_predictions.parquet")["logit"].to_numpy())


def test_ablation_grid_is_resumable_and_tabulated(tiny_dataset, tmp_path):
    base = experiment_file(tmp_path, tiny_dataset, epochs=1)
    grid = {"base": str(base), "reference": "MDAF-Full", "seeds": [0, 1],
            "models": [{"label": "MDAF-Full", "model": TINY_MODEL},
                       {"label": "DNN", "model": {"base": "configs/model/dnn.yaml", "mlp": {"hidden": [32]}},
                        "train": {"label_smoothing": 0.0}}]}
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    cfg = load_ablation(tmp_path / "grid.yaml")
    results = tmp_path / "ablation"
    run_grid(cfg, results, {})
    first = (results / "dnn" / "seed1" / "summary.json").stat().st_mtime_ns
    smoothing = {d: yaml.safe_load((results / d / "seed0" / "config.yaml").read_text())["train"]["label_smoothing"]
                 for d in ("dnn", "mdaf_full")}
    assert smoothing == {"dnn": 0.0, "mdaf_full": 0.05}  # an entry's own recipe keys, and only its own
    run_grid(cfg, results, {})  # everything finished: nothing is retrained
    assert (results / "dnn" / "seed1" / "summary.json").stat().st_mtime_ns == first
    rows = write_summary(cfg, results, "python experiments/run_ablations.py --config grid.yaml", tmp_path / "doc.md")
    by = {r["label"]: r for r in rows}
    assert set(by) == {"MDAF-Full", "DNN"} and by["DNN"]["seeds"] == 2
    aucs = [json.loads((results / "dnn" / f"seed{s}" / "summary.json").read_text())["test"]["auc"] for s in (0, 1)]
    assert by["DNN"]["auc_mean"] == pytest.approx(np.mean(aucs))
    ref = [json.loads((results / "mdaf_full" / f"seed{s}" / "summary.json").read_text())["test"]["auc"] for s in (0, 1)]
    assert by["DNN"]["diff_vs_ref"] == pytest.approx(np.mean(aucs) - np.mean(ref))
    doc = (tmp_path / "doc.md").read_text()
    assert "| DNN | 2 |" in doc and "true click probabilities" in doc


def test_entry_script_reports_bad_config_in_one_line(tiny_dataset, tmp_path):
    path = experiment_file(tmp_path, tiny_dataset, learning_rate=0.1)
    result = subprocess.run([sys.executable, str(REPO / "experiments" / "train_mdaf.py"), "--config", str(path),
                             "--results-dir", str(tmp_path / "results")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "learning_rate" in result.stderr and "Traceback" not in result.stderr


def test_existing_run_needs_resume(tiny_run, tiny_dataset):
    cfg = load_experiment(REPO / "configs" / "experiments" / "mdaf.yaml", {"data": {"dir": str(tiny_dataset.root)}})
    with pytest.raises(MDAFError, match="--resume"):
        run_experiment(cfg, tiny_run.name, tiny_run.parent)


def test_early_stopping_inside_an_epoch(tiny_dataset, tmp_path):
    """With eval_every, patience counts evaluations: no gain can reach min_delta 0.5, so the run stops
    at its second evaluation, mid-epoch, with the first one's weights."""
    cfg = load_experiment(experiment_file(tmp_path, tiny_dataset, eval_every=5, patience=1, min_delta=0.5))
    run_dir = run_experiment(cfg, "early", tmp_path / "results")
    assert [r["step"] for r in records(run_dir, "epoch")] == [5, 10]
    summary = json.loads((run_dir / "summary.json").read_text())
    train = summary["train"]
    assert (train["best_epoch"], train["best_step"], train["epochs_run"]) == (1, 5, 1)
    assert "for 1 evaluations after epoch 1 (step 5)" in train["stop_reason"]
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert (state["epoch"], state["position"], state["done"]) == (1, 10, True)
    assert load_checkpoint(run_dir / "checkpoints" / "best.pt")["step"] == 5


def test_length_sweep_of_mdaf_with_a_hybrid_branch(tiny_dataset, tmp_path):
    """The CTR side of experiments/run_long_history.py: MDAF (Mamba) and MDAF (hybrid) at two L,
    tabulated by test AUC with the oracle's, the hybrid's gate absent from MDAF's table (its own is
    the fusion gate)."""
    base = experiment_file(tmp_path, tiny_dataset, epochs=1)
    hybrid = merge(TINY_MODEL, {"sequence": {"encoder": "hybrid", "n_heads": 2}})
    grid = {"base": str(base), "reference": "MDAF L=8", "seeds": [0],
            "models": [{"label": f"{label} L={length}", "model": model, "train": {"seq_len": length}}
                       for label, model in (("MDAF", TINY_MODEL), ("MDAF-hybrid", hybrid)) for length in (4, 8)]}
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(grid))
    cfg = load_ablation(tmp_path / "grid.yaml")
    results = tmp_path / "sweep"
    run_grid(cfg, results, {})
    rows = write_sweep(cfg, results, "python experiments/run_long_history.py --config grid.yaml")
    assert [(r["model"], r["length"]) for r in rows] == [("MDAF", 4), ("MDAF", 8), ("MDAF-hybrid", 4), ("MDAF-hybrid", 8)]
    auc = json.loads((results / "mdaf_hybrid_l_8" / "seed0" / "summary.json").read_text())["test"]["auc"]
    assert rows[3]["first"] == pytest.approx(auc) and rows[0]["names"] == ["AUC", "logloss"]
    text = (results / "length_sweep.md").read_text()
    assert "| test AUC | logloss |" in text and "The true distribution scores test AUC" in text
