"""Models fitted in one pass over the training data instead of by gradient steps: gradient-boosted
trees, and the next-item baselines that learn by counting (popularity, co-occurrence).

The trainer (training/trainer.py) calls `fit` once with the training and validation batches of the
task, scores the training batches for the train metrics, validates, and saves the model like any
other: whatever was fitted lives in the state dict (as buffers, or as `get_extra_state`), so
checkpoints, predict.py and the reports need nothing of their own. Every process fits on the whole
training split, so torchrun ranks hold the same model.
"""
from __future__ import annotations

import abc
from collections.abc import Iterable

import torch
from torch import nn

Batches = Iterable[dict[str, torch.Tensor]]


class FittedModel(nn.Module, abc.ABC):
    """An `nn.Module` whose forward(batch) scores like any model's, once `fit` has run."""

    @abc.abstractmethod
    def fit(self, train: Batches, val: Batches) -> str:
        """Learn from the training batches (and, for early stopping, the validation batches), on
        the CPU; returns one line saying what was fitted, for the log."""
