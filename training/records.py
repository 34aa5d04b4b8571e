"""What a run writes about itself, as typed records: the lines of metrics.jsonl and summary.json.

The trainer and the runner build these; the report, the comparison of runs and the ablation table
read them back with `read_record`, which names the file and the key of anything missing or of the
wrong type. One definition, written and read everywhere.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from common.config import from_dict
from common.errors import MDAFError

R = TypeVar("R")


@dataclass
class StepRecord:
    """metrics.jsonl, kind "step": every `log_every` optimiser steps."""

    epoch: int
    step: int
    lr: float
    loss: float
    samples_per_s: float


@dataclass
class EvalRecord:
    """metrics.jsonl, kind "epoch": one validation, at the end of each epoch and every
    `eval_every` steps. Train figures are over the training predictions since the previous
    evaluation; `progress` is the epochs of training done; `diagnostics` holds the model's own
    scalars (MDAF: gate_mean)."""

    epoch: int
    step: int
    progress: float
    lr: float
    train_loss: float
    train_logloss: float
    train_auc: float
    val_auc: float
    val_logloss: float
    val_gauc: float
    gap: float
    status: str
    seconds: float
    samples_per_s: float
    diagnostics: dict[str, float] = field(default_factory=dict)


@dataclass
class MetricsOnTest:
    """metrics.jsonl, kind "test", and summary.json's `test`: the best weights on the test split,
    probabilities calibrated (training/calibration.py); *_raw: before calibration."""

    auc: float
    logloss: float
    gauc: float
    mean_pred: float
    ece: float
    ctr: float
    n: int
    logloss_raw: float
    mean_pred_raw: float
    ece_raw: float


@dataclass
class ModelSummary:
    name: str
    params: int


@dataclass
class DataSummary:
    """The dataset a run trained on; `oracle` (val and test AUC and logloss of the true
    probabilities) on synthetic data only."""

    dir: str
    source: str
    synthetic: bool
    rows: dict[str, int]
    ctr: dict[str, float]
    oracle: dict[str, dict[str, float]] | None
    seq_len: int


@dataclass
class TrainSummary:
    epochs_run: int
    best_epoch: int
    best_step: int
    stop_reason: str
    best_val_auc: float
    seed: int


@dataclass
class Efficiency:
    seconds_per_epoch: float
    train_samples_per_s: float
    eval_samples_per_s: float
    peak_memory_mb: float | None
    params: int
    device: str
    world_size: int
    total_seconds: float


@dataclass
class RunSummary:
    """summary.json: what a finished run was and what it measured. `calibration`: the fitted
    (a, b); `diagnostics`: the model's own figures on the test split (MDAF: its gate)."""

    run_name: str
    label: str
    experiment: str
    model: ModelSummary
    data: DataSummary
    train: TrainSummary
    test: MetricsOnTest
    calibration: dict[str, float]
    efficiency: Efficiency
    diagnostics: dict[str, Any] = field(default_factory=dict)
    finished: bool = True


def as_json(record: Any) -> dict[str, Any]:
    """A record as the mapping that is written."""
    return asdict(record)


def read_record(cls: type[R], data: Any, where: str) -> R:
    """`data` (a mapping read from JSON) as record type `cls`; MDAFError naming `where` and the key."""
    return from_dict(cls, data, where)


def read_summary(path: Path) -> RunSummary:
    """summary.json of a finished run; MDAFError when missing, unreadable or unfinished."""
    if not path.is_file():
        raise MDAFError(f"{path}: not found; expected the summary.json a finished training run writes")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise MDAFError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("finished") is not True:
        raise MDAFError(f"{path}: 'finished' is not true; the run has not completed")
    return read_record(RunSummary, data, str(path))
