"""Reading a finished run directory: config.yaml, metrics.jsonl, summary.json, test predictions.

Everything the report uses is checked here, so a malformed file fails with its name and the key
or column that is wrong, before anything is written.
"""
from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from common.config import from_dict, load_yaml
from common.errors import MDAFError
from training.report.criteria import CriteriaConfig

log = logging.getLogger(__name__)

EPOCH_INTS = ("epoch", "step")
EPOCH_FLOATS = ("lr", "train_loss", "train_auc", "val_auc", "val_logloss", "gap")
STEP_INTS = ("step",)
STEP_FLOATS = ("lr",)
SUMMARY_KEYS = (
    "run_name", "model.name", "model.params",
    "data.source", "data.dir", "data.synthetic", "data.rows", "data.ctr", "data.seq_len",
    "train.epochs_run", "train.best_epoch", "train.stop_reason",
    "test.auc", "test.logloss", "test.gauc", "test.mean_pred", "test.ctr", "test.n",
    "efficiency.seconds_per_epoch", "efficiency.train_samples_per_s",
    "efficiency.eval_samples_per_s", "efficiency.peak_memory_mb", "efficiency.params",
    "efficiency.device", "efficiency.world_size", "efficiency.total_seconds",
)
GATE_KEYS = ("mean", "std", "hist_edges", "hist_counts", "dim_means")
PREDICTION_COLUMNS = ("label", "p", "history_length")
OPTIONAL_PREDICTION_COLUMNS = ("p_raw",)  # sigma(z) before calibration (runs that calibrate)


@dataclass
class Run:
    """What the report reads from one finished run directory."""

    dir: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    epochs: list[dict[str, Any]]  # one record per evaluation (epoch ends, and every eval_every steps),
                                  # in order; a repeated evaluation's last record
    steps: list[dict[str, Any]]  # step records, in order; likewise for repeated steps
    resumed_epochs: list[int]  # epochs whose evaluations were recorded more than once (a resume)
    predictions: pl.DataFrame  # label, p, history_length (+ p_raw before calibration, + gate_mean)
    criteria: CriteriaConfig

    @property
    def label(self) -> str:
        """Display name: the config's label, else the summary's, else the model name."""
        return self.config.get("label") or self.summary.get("label") or self.summary["model"]["name"]

    @property
    def gate(self) -> dict[str, Any] | None:
        return self.summary.get("gate")

    @property
    def oracle(self) -> dict[str, Any] | None:
        """Oracle val/test metrics: only on synthetic data, where the true click rates are known."""
        data = self.summary["data"]
        return data.get("oracle") if data["synthetic"] else None

    @property
    def best(self) -> dict[str, Any]:
        """The record of the best evaluation."""
        return best_record(self.epochs, self.summary["train"])


def load_run(run_dir: Path) -> Run:
    """Read and check every file of `run_dir` the report needs."""
    if not run_dir.is_dir():
        raise MDAFError(f"{run_dir}: run directory not found")
    config_path = run_dir / "config.yaml"
    config = load_yaml(config_path)
    try:
        criteria = from_dict(CriteriaConfig, config.get("criteria") or {}, "criteria")
    except MDAFError as exc:
        raise MDAFError(f"{config_path}: {exc}") from None
    summary = read_summary(run_dir / "summary.json")
    check_summary(summary, run_dir / "summary.json")
    metrics = run_dir / "metrics.jsonl"
    epoch_records, step_records = read_metrics(metrics)
    epochs = latest(epoch_records, "step")
    if best_record(epochs, summary["train"]) is None:
        raise MDAFError(f"{metrics}: no record of the best evaluation (epoch {summary['train']['best_epoch']}"
                        f"{', step ' + str(summary['train']['best_step']) if 'best_step' in summary['train'] else ''}"
                        ") in summary.json")
    counts = Counter((e["epoch"], e["step"]) for e in epoch_records)
    return Run(dir=run_dir, config=config, summary=summary, epochs=epochs,
               steps=latest(step_records, "step"),
               resumed_epochs=sorted({e for (e, _), n in counts.items() if n > 1}),
               predictions=read_predictions(run_dir / "test_predictions.parquet",
                                            gate=summary.get("gate") is not None),
               criteria=criteria)


def best_record(records: list[dict[str, Any]], train: dict[str, Any]) -> dict[str, Any] | None:
    """The evaluation record of summary.json's best evaluation: by step, or by epoch in runs that
    evaluated at epoch ends only and recorded no best step."""
    if "best_step" in train:
        return next((e for e in records if e["step"] == train["best_step"]), None)
    return next((e for e in records if e["epoch"] == train["best_epoch"]), None)


def read_summary(path: Path) -> dict[str, Any]:
    """summary.json as a mapping; a missing or unfinished run is an MDAFError."""
    if not path.is_file():
        raise MDAFError(f"{path}: not found; expected the summary.json a finished training run writes")
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise MDAFError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(summary, dict):
        raise MDAFError(f"{path}: expected a JSON object at the top level")
    if summary.get("finished") is not True:
        raise MDAFError(f"{path}: 'finished' is not true; the run has not completed")
    return summary


def check_summary(summary: dict[str, Any], path: Path) -> None:
    """Every key the report reads is present, and a gate, if any, has a consistent histogram."""
    for key in SUMMARY_KEYS:
        lookup(summary, key, path)
    gate = summary.get("gate")
    if gate is None:
        return
    for key in GATE_KEYS:
        lookup(summary, f"gate.{key}", path)
    if not gate["hist_counts"] or not gate["dim_means"]:
        raise MDAFError(f"{path}: gate.hist_counts and gate.dim_means must not be empty")
    if len(gate["hist_edges"]) != len(gate["hist_counts"]) + 1:
        raise MDAFError(f"{path}: gate.hist_edges must have one more entry than gate.hist_counts, "
                        f"got {len(gate['hist_edges'])} and {len(gate['hist_counts'])}")


def lookup(mapping: dict[str, Any], dotted: str, where: Path) -> Any:
    """The value at a dotted key path; a missing key is an MDAFError naming the file and path."""
    value: Any = mapping
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            raise MDAFError(f"{where}: missing key '{dotted}'")
        value = value[key]
    return value


def read_metrics(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Epoch and step records of metrics.jsonl, in file order.

    A line that is not JSON (a write cut short by a crash before a resume) is skipped with a
    warning; other kinds of record are ignored.
    """
    if not path.is_file():
        raise MDAFError(f"{path}: not found; expected the metrics log a training run writes")
    epochs: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s line %d: not valid JSON (a write cut short?); skipped", path, number)
            continue
        where = f"{path} line {number}"
        if not isinstance(record, dict):
            raise MDAFError(f"{where}: expected a JSON object")
        if record.get("kind") == "epoch":
            epochs.append(typed(record, EPOCH_INTS, EPOCH_FLOATS, where))
        elif record.get("kind") == "step":
            steps.append(typed(record, STEP_INTS, STEP_FLOATS, where))
    if not epochs:
        raise MDAFError(f'{path}: no {{"kind": "epoch"}} records; expected one per trained epoch')
    return epochs, steps


def typed(record: dict[str, Any], ints: tuple[str, ...], floats: tuple[str, ...],
          where: str) -> dict[str, Any]:
    """`record` with `ints` checked as integers and `floats` as numbers (null becomes NaN)."""
    out = dict(record)
    for key in ints + floats:
        if key not in record:
            raise MDAFError(f"{where}: {record.get('kind')} record without key '{key}'")
        value = record[key]
        if key in ints and (not isinstance(value, int) or isinstance(value, bool)):
            raise MDAFError(f"{where}: '{key}' must be an integer, got {value!r}")
        if key in floats:
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                raise MDAFError(f"{where}: '{key}' must be a number or null, got {value!r}")
            out[key] = math.nan if value is None else float(value)
    return out


def latest(records: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """The records of the run as it finished: a record whose `key` does not advance on the one
    before it (a resume) replaces the earlier records from that `key` on, so the last record of
    a repeated epoch or step wins."""
    kept: list[dict[str, Any]] = []
    for record in records:
        while kept and kept[-1][key] >= record[key]:
            kept.pop()
        kept.append(record)
    return kept


def as_float(value: Any) -> float:
    """A JSON number as a float; NaN for null or anything else."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def read_predictions(path: Path, gate: bool) -> pl.DataFrame:
    """The test predictions' columns the report uses; `gate` also requires gate_mean."""
    if not path.is_file():
        raise MDAFError(f"{path}: not found; expected the test predictions a training run writes")
    columns = [*PREDICTION_COLUMNS, *(["gate_mean"] if gate else [])]
    try:
        present = pl.read_parquet_schema(path)
        missing = [c for c in columns if c not in present]
        if missing:
            reason = " (summary.json has a gate)" if "gate_mean" in missing else ""
            raise MDAFError(f"{path}: missing column(s) {missing}{reason}; expected {columns}")
        return pl.read_parquet(path, columns=columns + [c for c in OPTIONAL_PREDICTION_COLUMNS if c in present])
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise MDAFError(f"{path}: not a readable Parquet file ({exc})") from None
