"""MambaRec's hybrid for next-item recommendation: Mamba4Rec's embedding and scoring around a stack
of hybrid Mamba / causal self-attention layers (models/ssm/hybrid.py):

    x = LayerNorm(Dropout(E[items]))
    per layer: x = FFN(g Dropout(Mamba(x)) + (1 - g) LayerNorm(x + Dropout(Attention(x))))
    scores = x_{L-1} E^T, cross-entropy over all items (models/next_item/base.py)

No position embedding: the scan orders the sequence, and the causal mask tells attention where a
position stands, so the window length is not bounded by a table. Settings: Mamba4Rec's (hidden
64, d_state 32, d_conv 4, expand 2, dropout 0.2) with 2 heads, as SASRec's.
The gate at the last position of each layer is reported over a split (`diagnostics()`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.ssm.hybrid import HybridEncoder
from models.next_item.base import ITEM, NextItemModel
from models.output import ModelOutput


@dataclass
class MambaRecConfig:
    """gate: sequence (one gate per window, its prefix mean causally) | position; head: dot |
    repeat_explore (models/next_item/base.py)."""

    timeline: str = "history"
    hidden: int = 64
    n_layers: int = 1
    n_heads: int = 2
    gate: str = "sequence"
    d_state: int = 32
    d_conv: int = 4
    expand: int = 2
    dropout: float = 0.2
    scan_backend: str = "auto"
    head: str = "dot"


class MambaRec(NextItemModel):
    def __init__(self, cfg: MambaRecConfig, meta: dict):
        super().__init__()
        self.timeline = cfg.timeline
        self.embedding = self.item_embedding(meta, cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)
        self.norm = nn.LayerNorm(cfg.hidden)
        self.encoder = HybridEncoder(cfg.hidden, cfg.n_layers, n_heads=cfg.n_heads, gate=cfg.gate, d_state=cfg.d_state,
                                     d_conv=cfg.d_conv, expand=cfg.expand, dropout=cfg.dropout,
                                     scan_backend=cfg.scan_backend)
        self.use_head(cfg.head, cfg.hidden)

    def encode(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.norm(self.drop(self.embedding(ITEM, items))), mask)

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        out = super().forward(batch)
        out.diagnostics["hybrid_gate"] = self.encoder.gates  # (B, n_layers)
        return out

    def diagnostics(self) -> "HybridGates":
        return HybridGates()


class HybridGates:
    """The hybrid's gate at the last position over a split: per layer, its mean and std, and the
    share of windows leaning to Mamba (g > 0.5). Interface of models/mdaf/gate_diagnostics.py."""

    columns = ("hybrid_gate",)

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []

    def add(self, output: ModelOutput) -> dict[str, np.ndarray]:
        gates = output.diagnostics["hybrid_gate"].float().cpu().numpy()  # (B, n_layers)
        self.parts.append(gates)
        return {"hybrid_gate": gates.mean(axis=1)}

    def state(self) -> list[np.ndarray]:
        return self.parts

    def merge(self, states: list[list[np.ndarray]]) -> None:
        self.parts = [part for state in states for part in state]

    def result(self) -> dict:
        if not self.parts:
            return {}
        gates = np.concatenate(self.parts)
        return {"hybrid_gate": {"mean": gates.mean(axis=0).tolist(), "std": gates.std(axis=0).tolist(),
                                "share_mamba": (gates > 0.5).mean(axis=0).tolist(), "n": len(gates)}}
