"""GRU4Rec (Hidasi et al. 2016, "Session-based Recommendations with Recurrent Neural Networks") as
RecBole defines it:

    h = GRU(Dropout(E[items]))            (B, L, hidden), over the real positions only
    s = W h                               hidden -> embedding width
    scores = s_{L-1} E^T, cross-entropy over all items (models/next_item/base.py)

RecBole's defaults: embedding 64, hidden 128, 1 layer, dropout 0.3.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.layers.gru import MaskedGRU
from models.next_item.base import NextItemModel


@dataclass
class GRU4RecConfig:
    timeline: str = "history"
    embedding: int = 64
    hidden: int = 128
    n_layers: int = 1
    dropout: float = 0.3
    head: str = "dot"  # dot | repeat_explore (models/next_item/base.py)


class GRU4Rec(NextItemModel):
    def __init__(self, cfg: GRU4RecConfig, meta: dict):
        super().__init__()
        self.timeline = cfg.timeline
        self.embedding = self.item_embedding(meta, cfg.embedding)
        self.drop = nn.Dropout(cfg.dropout)
        self.gru = MaskedGRU(cfg.hidden, cfg.n_layers, input_size=cfg.embedding)
        self.dense = nn.Linear(cfg.hidden, cfg.embedding)
        self.use_head(cfg.head, cfg.embedding)

    def encode(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.dense(self.gru(self.drop(self.embedding("item", items)), mask))
