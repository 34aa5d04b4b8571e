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
    `eval_every` steps. `train`: the task's metrics of the training predictions since the
    previous evaluation (CTR: auc, logloss; next-item: hr@10, ndcg@10, mrr@10); `val`: its
    validation metrics; gap: train minus validation of the metric early stopping watches;
    `progress`: the epochs of training done; `diagnostics`: the model's own scalars (MDAF:
    gate_mean)."""

    epoch: int
    step: int
    progress: float
    lr: float
    train_loss: float
    train: dict[str, float]
    val: dict[str, float]
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
class TargetGroup:
    """HR, NDCG and MRR at 10 of one group of test targets, and how many there are."""

    n: int
    hr: float
    ndcg: float
    mrr: float


@dataclass
class RankingMetrics:
    """summary.json's `test` of a next-item run: HR, NDCG and MRR at each cutoff ("5", "10", "20")
    over the full catalogue (training/ranking.py), and the number of targets; `repeat` and `new`:
    the same at 10 on the targets found in the user's window (a repeat of an item the model reads)
    and on the others (None in runs recorded before they were)."""

    hr: dict[str, float]
    ndcg: dict[str, float]
    mrr: dict[str, float]
    n: int
    repeat: TargetGroup | None = None
    new: TargetGroup | None = None


@dataclass
class ModelSummary:
    name: str
    params: int


@dataclass
class DataSummary:
    """The dataset a run trained on: rows and click rate (`ctr`, CTR only) per split; `oracle`, on
    synthetic data only: the val and test metrics of the true probabilities (CTR: AUC and
    logloss; next-item: HR, NDCG and MRR). `input`: what it was prepared from (the interactions
    file, or the raw folder); `fingerprint`: the SHA-256 of its meta.json, equal only for the same
    data (ProcessedDataset.fingerprint); `protocol`: the next-item split ("" for CTR). The last
    three are empty in runs recorded before they were."""

    dir: str
    source: str
    synthetic: bool
    rows: dict[str, int]
    ctr: dict[str, float]
    oracle: dict[str, dict[str, float]] | None
    seq_len: int
    input: str = ""
    fingerprint: str = ""
    protocol: str = ""

    @property
    def identity(self) -> str:
        return data_identity(self.input or self.dir, self.fingerprint, self.protocol, self.synthetic)

    def same_data(self, other: DataSummary) -> bool:
        """Whether both runs trained on the same data: equal fingerprints (for runs recorded
        without one, the same prepared folder)."""
        if self.fingerprint or other.fingerprint:
            return self.fingerprint == other.fingerprint
        return self.dir == other.dir


def data_identity(prepared_from: str, fingerprint: str, protocol: str, synthetic: bool) -> str:
    """How tables name a data set: the name of what it was prepared from, the first 8 digits of its
    fingerprint, its protocol (next-item), and whether it is synthetic."""
    mark = f"#{fingerprint[:8]}" if fingerprint else "(no fingerprint recorded)"
    return " ".join([Path(prepared_from).name, mark, *([protocol] if protocol else []),
                     *(["(synthetic)"] if synthetic else [])])


@dataclass
class TrainSummary:
    """monitor: the validation metric early stopping watched; best_val: its best value."""

    epochs_run: int
    best_epoch: int
    best_step: int
    stop_reason: str
    monitor: str
    best_val: float
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
    """summary.json: what a finished run was and what it measured. task: ctr | next_item;
    `calibration`: the fitted (a, b) (CTR); `diagnostics`: the model's own figures on the test
    split (MDAF: its gate)."""

    run_name: str
    label: str
    experiment: str
    task: str
    model: ModelSummary
    data: DataSummary
    train: TrainSummary
    test: MetricsOnTest | RankingMetrics
    calibration: dict[str, float] | None
    efficiency: Efficiency
    diagnostics: dict[str, Any] = field(default_factory=dict)
    finished: bool = True

    @property
    def figures(self) -> list[tuple[str, float]]:
        """The test figures runs are compared by, the one they are ranked by first: AUC and
        logloss (CTR), NDCG@10 and HR@10 (next-item)."""
        if isinstance(self.test, RankingMetrics):
            return [("NDCG@10", self.test.ndcg["10"]), ("HR@10", self.test.hr["10"])]
        return [("AUC", self.test.auc), ("logloss", self.test.logloss)]


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
