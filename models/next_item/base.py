"""What every next-item model shares: the item embedding table and the scoring against it.

    e_t = E[x_t]                                  E: (V, H), V = items + padding + unknown
    s_t = Encoder(e)_t                            (B, L, H), the model's own part
    scores = s_{L-1} E^T                          (B, V): every item of the catalogue
Windows are left-padded, so position L-1 holds the newest item (data_prep/windows.py). The same
table embeds the history and scores the candidates, as in Mamba4Rec's, SASRec's and GRU4Rec's
RecBole code.
"""
from __future__ import annotations

import abc

import torch
from torch import nn

from data_prep.loader import batch_key
from models.layers.embedding import FeatureEmbedding
from models.output import ModelOutput

ITEM = "item"
INIT_STD = 0.02  # RecBole's initializer_range


class NextItemModel(nn.Module, metaclass=abc.ABCMeta):
    """forward(batch) -> ModelOutput(logit (B, V) scores of the last position, states (B, L, H)).
    A subclass builds `self.embedding` (via `item_embedding`) and implements `encode`."""

    timeline: str

    def item_embedding(self, meta: dict, dim: int) -> FeatureEmbedding:
        """The item table, N(0, 0.02^2) as RecBole initialises its sequential models (padding row 0)."""
        embedding = FeatureEmbedding(meta["vocab_sizes"], [ITEM], dim)
        with torch.no_grad():
            embedding.tables[ITEM].weight[1:].normal_(std=INIT_STD)
        return embedding

    @abc.abstractmethod
    def encode(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """items (B, L) indices, 0 at pads; mask (B, L) True at real positions -> states (B, L, H)."""

    def score(self, states: torch.Tensor) -> torch.Tensor:
        """(..., H) -> (..., V): the dot product with every item's embedding."""
        return states @ self.embedding.tables[ITEM].weight.T

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        items, mask = batch[batch_key(self.timeline, ITEM)], batch[batch_key(self.timeline, "mask")]
        states = self.encode(items, mask)
        return ModelOutput(logit=self.score(states[:, -1]), states=states)
