"""What every next-item model shares: the item embedding table and the scoring against it.

    e_t = E[x_t]                                  E: (V, H), V = items + padding + unknown
    s_t = Encoder(e)_t                            (B, L, H), the model's own part
    scores = s_{L-1} E^T                          (B, V): every item of the catalogue (head: dot)
Windows are left-padded, so position L-1 holds the newest item (data_prep/windows.py). The same
table embeds the history and scores the candidates, as in Mamba4Rec's, SASRec's and GRU4Rec's
RecBole code. With `head: repeat_explore` the scores are RepeatNet's mixture of the window's
items and the catalogue instead (models/next_item/repeat_explore.py), from the same states.
"""
from __future__ import annotations

import abc

import torch
from torch import nn

from common.errors import MDAFError
from data_prep.loader import batch_key
from models.layers.embedding import FeatureEmbedding
from models.next_item.repeat_explore import RepeatExploreHead
from models.output import ModelOutput

ITEM = "item"
INIT_STD = 0.02  # RecBole's initializer_range
HEADS = ("dot", "repeat_explore")


class NextItemModel(nn.Module, metaclass=abc.ABCMeta):
    """forward(batch) -> ModelOutput(logit (B, V) scores of the last position, states (B, L, H)).
    A subclass builds `self.embedding` (via `item_embedding`) and its head (`use_head`), and
    implements `encode`."""

    timeline: str
    repeat_explore: RepeatExploreHead | None  # set by use_head

    def item_embedding(self, meta: dict, dim: int) -> FeatureEmbedding:
        """The item table, N(0, 0.02^2) as RecBole initialises its sequential models (padding row 0)."""
        embedding = FeatureEmbedding(meta["vocab_sizes"], [ITEM], dim)
        with torch.no_grad():
            embedding.tables[ITEM].weight[1:].normal_(std=INIT_STD)
        return embedding

    def use_head(self, head: str, dim: int) -> None:
        """Score with `head`: dot | repeat_explore (on states of width `dim`, the item table's)."""
        if head not in HEADS:
            raise MDAFError(f"model config ({type(self).__name__}): key 'head' is {head!r}; expected one of "
                            f"{list(HEADS)}")
        self.repeat_explore = RepeatExploreHead(dim) if head == "repeat_explore" else None

    @abc.abstractmethod
    def encode(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """items (B, L) indices, 0 at pads; mask (B, L) True at real positions -> states (B, L, H)."""

    @property
    def log_probabilities(self) -> bool:
        """Whether the scores are log-probabilities over the catalogue (the repeat-explore head's),
        so the task's cross-entropy is their negative log-likelihood as they are."""
        return self.repeat_explore is not None

    def score(self, states: torch.Tensor) -> torch.Tensor:
        """(..., H) -> (..., V): the dot product with every item's embedding (the dot head; a
        streamed state is scored with it)."""
        return states @ self.embedding.tables[ITEM].weight.T

    def head_scores(self, batch: dict[str, torch.Tensor], states: torch.Tensor,
                    every_position: bool = False) -> torch.Tensor:
        """The head's scores from the states (B, L, H) of `batch`'s window: of the last position
        (B, V), or with `every_position` of each real position (N, V), in the order of states[mask]."""
        items, mask = batch[batch_key(self.timeline, ITEM)], batch[batch_key(self.timeline, "mask")]
        if self.repeat_explore is None:
            return self.score(states[mask] if every_position else states[:, -1])
        return self.repeat_explore(states, items, mask, batch[batch_key(self.timeline, "time_gap")],
                                   self.embedding.tables[ITEM].weight, every_position)

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        items, mask = batch[batch_key(self.timeline, ITEM)], batch[batch_key(self.timeline, "mask")]
        states = self.encode(items, mask)
        return ModelOutput(logit=self.head_scores(batch, states), states=states)
