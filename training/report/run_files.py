"""Reading a finished run directory: config.yaml, metrics.jsonl, summary.json, test predictions.

Everything the report uses is read into the typed records of training/records.py here, so a
malformed file fails with its name and the key or column that is wrong, before anything is
written.
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
from training.config import CriteriaConfig
from training.records import EvalRecord, RunSummary, StepRecord, read_record

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = {"ctr": ("label", "p", "p_raw", "history_length"),  # p_raw: sigma(z), before calibration
                      "next_item": ("rank", "history_length")}


@dataclass
class Run:
    """What the report reads from one finished run directory."""

    dir: Path
    config: dict[str, Any]
    summary: RunSummary
    epochs: list[EvalRecord]  # one per evaluation (epoch ends, and every eval_every steps), in order;
                              # a repeated evaluation's last record
    steps: list[StepRecord]  # in order; likewise for repeated steps
    resumed_epochs: list[int]  # epochs whose evaluations were recorded more than once (a resume)
    predictions: pl.DataFrame  # PREDICTION_COLUMNS of its task (+ the model's diagnostic columns)
    criteria: CriteriaConfig

    @property
    def label(self) -> str:
        """Display name: the config's label, else the summary's."""
        return self.config.get("label") or self.summary.label

    @property
    def oracle(self) -> dict[str, dict[str, float]] | None:
        """Oracle val/test metrics: only on synthetic data, where the true click rates are known."""
        return self.summary.data.oracle if self.summary.data.synthetic else None

    @property
    def best(self) -> EvalRecord:
        """The record of the best evaluation."""
        return next(e for e in self.epochs if e.step == self.summary.train.best_step)


def load_run(run_dir: Path, summary: RunSummary, diagnostic_columns: tuple[str, ...] = ()) -> Run:
    """Read and check every file of `run_dir` the report needs besides its `summary` (read with
    training.records.read_summary); `diagnostic_columns`: the model's per-sample diagnostic
    columns the predictions must hold."""
    config_path = run_dir / "config.yaml"
    config = load_yaml(config_path)
    try:
        criteria = from_dict(CriteriaConfig, config.get("criteria") or {}, "criteria")
    except MDAFError as exc:
        raise MDAFError(f"{config_path}: {exc}") from None
    metrics = run_dir / "metrics.jsonl"
    epoch_records, step_records = read_metrics(metrics)
    epochs = latest(epoch_records, "step")
    best = summary.train
    if not any(e.step == best.best_step for e in epochs):
        raise MDAFError(f"{metrics}: no record of the best evaluation (epoch {best.best_epoch}, step "
                        f"{best.best_step}) in summary.json")
    counts = Counter((e.epoch, e.step) for e in epoch_records)
    return Run(dir=run_dir, config=config, summary=summary, epochs=epochs,
               steps=latest(step_records, "step"),
               resumed_epochs=sorted({e for (e, _), n in counts.items() if n > 1}),
               predictions=read_predictions(run_dir / "test_predictions.parquet",
                                                (*PREDICTION_COLUMNS[summary.task], *diagnostic_columns)),
               criteria=criteria)


def read_metrics(path: Path) -> tuple[list[EvalRecord], list[StepRecord]]:
    """Evaluation and step records of metrics.jsonl, in file order.

    A line that is not JSON (a write cut short by a crash before a resume) is skipped with a
    warning; other kinds of record are ignored.
    """
    if not path.is_file():
        raise MDAFError(f"{path}: not found; expected the metrics log a training run writes")
    epochs: list[EvalRecord] = []
    steps: list[StepRecord] = []
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
        kind = record.pop("kind", None)
        if kind == "epoch":
            epochs.append(read_record(EvalRecord, record, where))
        elif kind == "step":
            steps.append(read_record(StepRecord, record, where))
    if not epochs:
        raise MDAFError(f'{path}: no {{"kind": "epoch"}} records; expected one per evaluation')
    return epochs, steps


def latest(records: list[Any], key: str) -> list[Any]:
    """The records of the run as it finished: a record whose `key` does not advance on the one
    before it (a resume) replaces the earlier records from that `key` on, so the last record of
    a repeated evaluation or step wins."""
    kept: list[Any] = []
    for record in records:
        while kept and getattr(kept[-1], key) >= getattr(record, key):
            kept.pop()
        kept.append(record)
    return kept


def as_float(value: Any) -> float:
    """A JSON number as a float; NaN for null or anything else."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def read_predictions(path: Path, columns: tuple[str, ...]) -> pl.DataFrame:
    """The test predictions' `columns` (the task's and the model's diagnostic ones)."""
    if not path.is_file():
        raise MDAFError(f"{path}: not found; expected the test predictions a training run writes")
    try:
        present = pl.read_parquet_schema(path)
        missing = [c for c in columns if c not in present]
        if missing:
            raise MDAFError(f"{path}: missing column(s) {missing}; expected {list(columns)}")
        return pl.read_parquet(path, columns=list(columns))
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise MDAFError(f"{path}: not a readable Parquet file ({exc})") from None
