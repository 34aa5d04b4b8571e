"""Mamba4Rec (Liu et al. 2024, "Mamba4Rec: Towards Efficient Sequential Recommendation with
Selective State Space Models") as its code defines it:

    x = LayerNorm(Dropout(E[items]))
    per layer: h = LayerNorm(Dropout(Mamba(x)) [+ x])           the residual only with > 1 layer
               x = LayerNorm(h + Dropout(W_2 Dropout(GELU(W_1 h))))        FFN, 4x
    scores = x_{L-1} E^T, cross-entropy over all items (models/next_item/base.py)

Published settings (its config.yaml): hidden 64, d_state 32, d_conv 4, expand 2, 1 layer,
dropout 0.2, max length 200 (ML-1M; 50 and dropout 0.4 for the Amazon sets).
Where the code and the paper differ, the code is followed: with a single layer the paper's
residual around the mixer is absent. One departure, a fix: the code re-initialises every Linear
layer after building the model, which resets Mamba's dt projection (initial dt about 0.69
instead of log-uniform in [0.001, 0.1]); here the mixer keeps mamba-ssm's initialisation.
The mixer is the one MDAF uses (models/ssm/mamba.py), with its scan back-ends.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.ssm.mamba4rec_layer import Mamba4RecEncoder
from models.next_item.base import NextItemModel


@dataclass
class Mamba4RecConfig:
    timeline: str = "history"
    hidden: int = 64
    n_layers: int = 1
    d_state: int = 32
    d_conv: int = 4
    expand: int = 2
    dropout: float = 0.2
    scan_backend: str = "auto"


class Mamba4Rec(NextItemModel):
    def __init__(self, cfg: Mamba4RecConfig, meta: dict):
        super().__init__()
        self.timeline = cfg.timeline
        self.embedding = self.item_embedding(meta, cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)
        self.norm = nn.LayerNorm(cfg.hidden)
        self.encoder = Mamba4RecEncoder(cfg.hidden, cfg.n_layers, d_state=cfg.d_state, d_conv=cfg.d_conv,
                                        expand=cfg.expand, dropout=cfg.dropout, scan_backend=cfg.scan_backend,
                                        residual=cfg.n_layers > 1)

    def encode(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.event_input({"item": items}), mask)

    def event_input(self, event: dict[str, torch.Tensor]) -> torch.Tensor:
        """The encoder's input for items (B,) or (B, L): LayerNorm(Dropout(E[item]))."""
        return self.norm(self.drop(self.embedding("item", event["item"])))

    def stream_encoder(self) -> Mamba4RecEncoder:
        """The recurrence a served model steps through (models/ssm/streaming.py)."""
        return self.encoder
