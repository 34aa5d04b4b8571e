"""MDAF's diagnostics: what its fusion gate g (models/mdaf/fusion.py) did over a split.

A model reports about itself through one hook, `model.diagnostics()`, which returns an object
with this interface (or None); training/scoring.py feeds it every batch's output and knows nothing
of gates. Per sample: the mean of g over its H dimensions. Over the split: a histogram of every
value of g (GATE_BINS bins over [0, 1]), the mean of each dimension, and the mean of g^2.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from models.output import ModelOutput

GATE_BINS = 40


class GateDiagnostics:
    """`add(output)` per batch -> the per-sample `columns`; `state()` / `merge(states)` to sum the
    ranks of a torchrun job; then `result()` for summary.json."""

    columns = ("gate_mean",)

    def __init__(self) -> None:
        self.hist = np.zeros(GATE_BINS)
        self.dim_sum: np.ndarray | None = None
        self.sq_sum = 0.0
        self.n = 0

    def add(self, output: ModelOutput) -> dict[str, np.ndarray]:
        gate = output.diagnostics["gate"].float()  # (B, H)
        self.hist += torch.histc(gate, bins=GATE_BINS, min=0.0, max=1.0).cpu().double().numpy()
        dim_sum = gate.sum(dim=0).cpu().double().numpy()
        self.dim_sum = dim_sum if self.dim_sum is None else self.dim_sum + dim_sum
        self.sq_sum += float((gate**2).sum().cpu().double())
        self.n += gate.shape[0]
        return {"gate_mean": gate.mean(dim=1).cpu().numpy()}

    def state(self) -> list[Any]:
        return [self.hist, self.dim_sum, self.sq_sum, self.n]

    def merge(self, states: list[list[Any]]) -> None:
        """Set the sums to those of every rank's `state()` (this rank's included)."""
        parts = [s for s in states if s[1] is not None]
        self.hist = sum(s[0] for s in parts)
        self.dim_sum = sum(s[1] for s in parts) if parts else None
        self.sq_sum = sum(s[2] for s in parts)
        self.n = sum(s[3] for s in parts)

    def result(self) -> dict[str, Any]:
        if not self.n:
            return {}
        dim_mean = self.dim_sum / self.n
        mean = float(dim_mean.mean())
        return {"gate": {"mean": mean, "std": float(np.sqrt(max(self.sq_sum / (self.n * len(dim_mean)) - mean**2, 0.0))),
                         "hist_edges": np.linspace(0, 1, GATE_BINS + 1).tolist(),
                         "hist_counts": self.hist.astype(int).tolist(), "dim_means": dim_mean.tolist()}}
