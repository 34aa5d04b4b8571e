"""The run report: files written, epoch table after a resume, criteria verdicts, comparison,
oracle and gate sections only where they apply, and bad run directories named in the error."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from common.errors import MDAFError
from training.config import CriteriaConfig
from training.records import (DataSummary, Efficiency, EvalRecord, MetricsOnTest, ModelSummary, RunSummary,
                              StepRecord, TrainSummary, as_json)
from training.report import write_report
from training.report.criteria import evaluate_criteria
from training.report.run_files import latest

PNG = b"\x89PNG\r\n\x1a\n"


def epoch(n: int, train_auc: float, val_auc: float, status: str, gate: float | None = None) -> dict:
    record = EvalRecord(epoch=n, step=40 * n, progress=float(n), lr=1e-3 / n, train_loss=0.25 - 0.01 * n,
                        train={"auc": train_auc, "logloss": 0.23 - 0.01 * n},
                        val={"auc": val_auc, "logloss": 0.24 - 0.005 * n, "gauc": val_auc - 0.04},
                        gap=round(train_auc - val_auc, 4),
                        status=status, seconds=9.5, samples_per_s=800.0,
                        diagnostics={} if gate is None else {"gate_mean": gate})
    return {"kind": "epoch", **as_json(record)}


# Epoch 3 is recorded twice (a resume); its second record, with train AUC 0.6543, must win.
PASSING = [epoch(1, 0.6012, 0.5901, "best", 0.52), epoch(2, 0.6311, 0.6102, "best", 0.55),
           epoch(3, 0.6111, 0.6001, "no gain 1/5", 0.57), epoch(3, 0.6543, 0.6288, "best", 0.58),
           epoch(4, 0.6790, 0.6250, "no gain 1/5", 0.60)]
# Best epoch 2: train AUC 0.7500 is out of range, val AUC 0.6200 passes, gap 0.13 fails.
FAILING = [epoch(1, 0.6800, 0.6100, "best"), epoch(2, 0.7500, 0.6200, "best"),
           epoch(3, 0.8000, 0.6150, "no gain 1/5")]


def make_run(run_dir: Path, epochs: list[dict], best_epoch: int, test_auc: float, *, synthetic: bool,
             gate: bool, constant_p: bool = False, label: str = "MDAF-Full", model: str = "mdaf") -> Path:
    """A run directory as the trainer leaves it, with numbers chosen by the caller."""
    rng = np.random.default_rng(0)
    run_dir.mkdir(parents=True)
    config = {"experiment": "unit", "run_name": run_dir.name, "label": label,
              "data": {"dir": "data/prepared/taobao_ad"}, "model": {"name": model},
              "train": {"epochs": 10, "batch_size": 256, "lr": 0.001, "seq_len": 50}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    steps = [{"kind": "step", **as_json(StepRecord(1 + (s - 1) // 40, s, 1e-3 * min(1.0, s / 30), 0.3 - s / 1000,
                                                    800.0))} for s in range(10, 40 * len(epochs) + 1, 10)]
    lines = [json.dumps(r) for r in steps[:8] + epochs[:3] + steps[6:] + epochs[3:]]
    test = MetricsOnTest(auc=test_auc, logloss=0.19, gauc=0.58, mean_pred=0.052, ece=0.004, ctr=0.05, n=3000,
                      logloss_raw=0.195, mean_pred_raw=0.061, ece_raw=0.011)
    lines.append(json.dumps({"kind": "test", **as_json(test)}))
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")

    n = 3000
    history = rng.choice([0, 0, 3, 12, 40], size=n)
    label_col = (rng.random(n) < 0.05).astype(np.int8)
    p = np.full(n, 0.05) if constant_p else np.clip(0.05 + 0.03 * rng.standard_normal(n), 0.001, 0.999)
    columns = {"row": np.arange(n), "user_id": rng.integers(0, 500, n), "label": label_col,
               "logit": np.log(p / (1 - p)).astype(np.float32), "p": p.astype(np.float32),
               "p_raw": np.clip(1.2 * p, 0, 1).astype(np.float32), "history_length": history.astype(np.int64)}
    if gate:
        columns["gate_mean"] = (0.3 + 0.01 * history + 0.02 * rng.standard_normal(n)).astype(np.float32)
    pl.DataFrame(columns).write_parquet(run_dir / "test_predictions.parquet")

    values = rng.beta(0.15, 0.25, size=20000)  # a U-shaped gate: mostly saturated
    counts, edges = np.histogram(values, bins=40, range=(0.0, 1.0))
    best = next(e for e in reversed(epochs) if e["epoch"] == best_epoch)
    summary = RunSummary(
        run_name=run_dir.name, label=label, experiment="unit", task="ctr", model=ModelSummary(model, 1234567),
        data=DataSummary(dir="data/prepared/taobao_ad", source="taobao_ad", synthetic=synthetic,
                         rows={"train": 24000, "val": 3000, "test": 3000},
                         ctr={"train": 0.051, "val": 0.049, "test": 0.05},
                         oracle={"val": {"auc": 0.7012, "logloss": 0.181}, "test": {"auc": 0.7000, "logloss": 0.18}}
                         if synthetic else None, seq_len=50),
        train=TrainSummary(epochs_run=max(e["epoch"] for e in epochs), best_epoch=best_epoch, best_step=best["step"],
                           stop_reason="early stopping: no val AUC gain for 5 epochs", monitor="auc",
                           best_val=best["val"]["auc"],
                           seed=0),
        test=test, calibration={"a": 0.9, "b": -0.2},
        efficiency=Efficiency(seconds_per_epoch=9.5, train_samples_per_s=812.3, eval_samples_per_s=4000.0,
                              peak_memory_mb=1520.0, params=1234567, device="cuda:0 (NVIDIA H100)", world_size=1,
                              total_seconds=3725.0),
        diagnostics={"gate": {"mean": float(values.mean()), "std": float(values.std()), "hist_edges": edges.tolist(),
                              "hist_counts": counts.tolist(), "dim_means": np.linspace(0.3, 0.7, 16).tolist()}}
        if gate else {})
    (run_dir / "summary.json").write_text(json.dumps(as_json(summary)))
    return run_dir


def section(markdown: str, title: str) -> str:
    """The body of the section whose heading contains `title`."""
    body = markdown.split(f". {title}\n", 1)[1]
    return body.split("\n## ", 1)[0]


def tables(text: str) -> list[list[list[str]]]:
    """The body rows (header and rule dropped) of each Markdown table in `text`."""
    found: list[list[list[str]]] = []
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if line.startswith("|")]
        if lines:
            found.append([[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]])
    return found


def table_rows(text: str) -> list[list[str]]:
    return tables(text)[0]


def verdicts(markdown: str) -> dict[str, str]:
    return {row[0]: row[-1] for row in table_rows(section(markdown, "Success criteria"))}


@pytest.fixture
def results(tmp_path) -> Path:
    root = tmp_path / "results"
    make_run(root / "mdaf_full", PASSING, best_epoch=3, test_auc=0.6416, synthetic=True, gate=True)
    make_run(root / "ablation" / "bst" / "seed0", FAILING, best_epoch=2, test_auc=0.6012, synthetic=True,
             gate=False, label="BST", model="bst")
    return root


def test_full_report(results):
    run_dir = results / "mdaf_full"
    write_report(run_dir)
    for name in ("learning_curves.png", "gate_distribution.png"):
        data = (run_dir / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, name
    md = (run_dir / "report.md").read_text()
    text = (run_dir / "report.txt").read_text()
    assert "](learning_curves.png)" in md and "](gate_distribution.png)" in md

    rows = table_rows(section(md, "Epochs"))
    assert [r[0] for r in rows] == ["1", "2", "3", "4"]
    assert rows[2][1] == "120" and rows[2][4] == "0.6543" and "0.6111" not in md  # train AUC of a resumed evaluation: its last record
    assert rows[0][-1] == "0.520"  # the gate mean column

    assert verdicts(md) == dict.fromkeys(
        ["train AUC in range", "validation AUC", "train-val gap", "no collapse"], "PASS")
    assert "Overall: PASS" in md

    oracle = section(md, "Data")
    assert "oracle test AUC 0.7000" in oracle and "captures 70.8% of the achievable lift" in oracle

    compared = table_rows(section(md, "Comparison"))
    assert [r[0] for r in compared] == ["mdaf_full (this run)", "ablation/bst/seed0"]

    gate = section(md, "Gate analysis")
    assert "of gate values are below 0.1" in gate and "mostly saturated" in gate
    by_label, by_history = tables(gate)
    assert [r[0] for r in by_label] == ["not clicked", "clicked"]
    assert [r[0] for r in by_history] == ["0", "1-5", "6-20", "21-50"]  # no sample has 51+

    assert "|" not in text and "#" not in text
    assert "0.6543" in text and "Overall: PASS" in text


def test_failed_criteria_without_oracle_or_gate(tmp_path):
    run_dir = make_run(tmp_path / "bst", FAILING, best_epoch=2, test_auc=0.6012, synthetic=False,
                       gate=False, constant_p=True, model="bst")
    write_report(run_dir)
    md = (run_dir / "report.md").read_text()
    assert verdicts(md) == {"train AUC in range": "FAIL", "validation AUC": "PASS",
                            "train-val gap": "FAIL", "no collapse": "FAIL"}
    assert "Overall: FAIL, 1 of 4" in md
    assert "oracle" not in md.lower()
    assert "Gate" not in md and "gate mean" not in md
    assert not (run_dir / "gate_distribution.png").exists()
    assert (run_dir / "learning_curves.png").read_bytes().startswith(PNG)
    assert "No other finished runs" in md


def test_criteria_bounds_are_inclusive():
    results = evaluate_criteria(CriteriaConfig(), train_auc=0.70, val_auc=0.60, gap=0.08,
                                pred_std=0.001, test_auc=0.5001)
    assert all(r.passed for r in results)
    results = evaluate_criteria(CriteriaConfig(), train_auc=0.66, val_auc=0.63, gap=0.03,
                                pred_std=0.05, test_auc=0.5)
    assert [r.passed for r in results] == [True, True, True, False]


@pytest.mark.parametrize("name", ["summary.json", "metrics.jsonl", "config.yaml",
                                  "test_predictions.parquet"])
def test_missing_file_is_named(results, name):
    run_dir = results / "mdaf_full"
    (run_dir / name).unlink()
    with pytest.raises(MDAFError, match=name):
        write_report(run_dir)
    assert not (run_dir / "report.md").exists()


def test_gate_without_per_sample_gate_is_named(results):
    run_dir = results / "mdaf_full"
    path = run_dir / "test_predictions.parquet"
    pl.read_parquet(path).drop("gate_mean").write_parquet(path)
    with pytest.raises(MDAFError, match=r"test_predictions.parquet: missing column\(s\) \['gate_mean'\]"):
        write_report(run_dir)


def test_resume_replaces_records_from_the_resumed_point():
    def records(*steps: int) -> list[StepRecord]:
        return [StepRecord(epoch=i, step=s, lr=0.0, loss=0.0, samples_per_s=0.0) for i, s in enumerate(steps)]

    assert [r.epoch for r in latest(records(1, 2, 3, 3, 4), "step")] == [0, 1, 3, 4]
    assert [r.epoch for r in latest(records(1, 2, 3, 4, 3), "step")] == [0, 1, 4]


def test_bad_criteria_key_is_named(results):
    run_dir = results / "mdaf_full"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["criteria"] = {"max_gapp": 0.1}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(MDAFError, match=r"config.yaml: criteria: unknown key\(s\) \['max_gapp'\]"):
        write_report(run_dir)
