"""What a task brings to the one trainer (training/trainer.py): the samples it trains on, its loss,
the predictions a training batch keeps and the metrics of them, how it scores a split, the
validation metric early stopping watches, and how it tests a finished run.

Two tasks: click-through rate (training/tasks/ctr.py) and next-item ranking
(training/tasks/next_item.py). Everything else (the loop, the recipe, checkpoints and resume,
torchrun, logs, records, reports) is shared.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import torch
from torch import nn

from models.output import ModelOutput


@dataclass
class TestOutcome:
    """A finished run's test: the metrics record of summary.json, the fitted calibration (CTR;
    None otherwise), the per-sample predictions, the model's diagnostics figures, the test
    split's scoring rate (samples per second), and tables written beside the predictions (path
    in the run directory -> table; next-item: the vocabularies that map indices to raw ids)."""

    metrics: Any
    calibration: dict[str, float] | None
    predictions: pl.DataFrame
    diagnostics: dict[str, Any]
    samples_per_s: float
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)


class Task(abc.ABC):
    """name: "ctr" or "next_item"; monitor: the validation metric early stopping maximises."""

    name: str
    monitor: str

    def setup(self, model: nn.Module, probe: dict[str, torch.Tensor]) -> None:
        """Learn what the task needs of the model from `probe`, a batch of two training samples
        on the model's device (scored in eval mode: no random numbers are drawn)."""

    def train_rows(self) -> np.ndarray | None:
        """The training samples to read (indices into the train split); None for all."""
        return None

    def ddp_view(self, model: nn.Module) -> tuple[nn.Module, bool]:
        """The module DistributedDataParallel wraps, and whether it has unused parameters."""
        return model, False

    @abc.abstractmethod
    def loss(self, output: ModelOutput, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training objective of one batch (a scalar)."""

    @abc.abstractmethod
    def keep(self, output: ModelOutput, batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        """What a training batch keeps for the train metrics of the next evaluation."""

    @abc.abstractmethod
    def train_metrics(self, kept: dict[str, np.ndarray]) -> dict[str, float]:
        """Metrics of the kept training predictions (all ranks' concatenated)."""

    @abc.abstractmethod
    def evaluate(self, model: nn.Module, split: str) -> tuple[dict[str, float], dict[str, Any]]:
        """(metrics, predictions) of `split` scored by `model`, on every rank."""

    @abc.abstractmethod
    def test(self, model: nn.Module) -> TestOutcome:
        """The best weights on the test split (and whatever the task fits on validation first)."""

    @abc.abstractmethod
    def describe(self, metrics: Any) -> str:
        """The test metrics record as one log line."""

    @abc.abstractmethod
    def oracle(self) -> dict[str, dict[str, float]] | None:
        """The val and test metrics of the true probabilities (synthetic data); None when unknown."""
