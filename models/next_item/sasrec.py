"""SASRec (Kang & McAuley 2018, "Self-Attentive Sequential Recommendation") as RecBole defines it:

    x = Dropout(LayerNorm(E[items] + P[positions]))              learned positions
    x = Transformer(x), causal and padding masks                 post-LN layers (models/layers/transformer.py)
    scores = x_{L-1} E^T, cross-entropy over all items (models/next_item/base.py)

RecBole's defaults: 2 layers, 2 heads, hidden 64, inner 256, dropout 0.5, GELU; its
initialisation, N(0, 0.02^2) for embeddings and linear weights (with torch's default N(0, 1)
positions would drown the items after the first LayerNorm). Positions count
from the oldest item of the window (0), as in RecBole's right-padded sequences; the window here
is left-padded, so a real item's position is its index minus the pads before it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from common.errors import MDAFError
from models.layers.transformer import TransformerEncoder
from models.next_item.base import INIT_STD, NextItemModel


@dataclass
class SASRecConfig:
    """max_len: positions the position table holds (at least the training window L); head: dot |
    repeat_explore (models/next_item/base.py)."""

    timeline: str = "history"
    hidden: int = 64
    n_layers: int = 2
    n_heads: int = 2
    inner: int = 256
    dropout: float = 0.5
    max_len: int = 200
    head: str = "dot"

    def __post_init__(self) -> None:
        if self.hidden % self.n_heads or self.inner % self.hidden:
            raise MDAFError(f"model config (sasrec): 'hidden' ({self.hidden}) must be a multiple of 'n_heads' "
                            f"({self.n_heads}) and 'inner' ({self.inner}) of 'hidden'")


class SASRec(NextItemModel):
    def __init__(self, cfg: SASRecConfig, meta: dict):
        super().__init__()
        self.timeline = cfg.timeline
        self.embedding = self.item_embedding(meta, cfg.hidden)
        self.position = nn.Embedding(cfg.max_len, cfg.hidden)
        self.norm = nn.LayerNorm(cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = TransformerEncoder(cfg.hidden, cfg.n_layers, cfg.n_heads, cfg.inner // cfg.hidden, cfg.dropout,
                                          causal=True, activation="gelu")
        self.use_head(cfg.head, cfg.hidden)
        for module in (self.position, *(m for m in self.encoder.modules() if isinstance(m, nn.Linear))):
            nn.init.normal_(module.weight, std=INIT_STD)  # RecBole's SASRec init (biases 0, LayerNorm 1 and 0)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def encode(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        length = items.shape[1]
        if length > self.position.num_embeddings:
            raise MDAFError(f"model config (sasrec): the window holds {length} items but 'max_len' is "
                            f"{self.position.num_embeddings}")
        n_pad = length - mask.sum(dim=1, keepdim=True)  # (B, 1)
        positions = (torch.arange(length, device=items.device)[None, :] - n_pad).clamp_min(0)  # (B, L)
        x = self.drop(self.norm(self.embedding("item", items) + self.position(positions)))
        return self.encoder(x, mask)
