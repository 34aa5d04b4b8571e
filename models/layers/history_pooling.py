"""How static models see a timeline: each history field mean-pooled into one extra field.

For timeline T and each of its index fields F (e.g. `behavior`: cate, brand, btag):
    pooled_F = sum_t m_t e(F[t]) / max(1, sum_t m_t)        (B, d_F)
with m_t = `T_mask`[t] (True at real behaviours), so pads never count and an empty history pools
to zeros. This is FuxiCTR's default encoder for sequence features (masked average pooling),
used by its models that have no sequence encoder (DNN, DCN, AutoInt). The history fields are
embedded with the same tables as the candidate's fields of the same vocabulary space.
"""
from __future__ import annotations

import torch
from torch import nn

from data_prep.loader import batch_key
from models.layers.embedding import FeatureEmbedding
from models.layers.history import history_spaces


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of values (B, L, d) over the positions where mask (B, L) is True -> (B, d); zeros if none."""
    weights = mask.to(values.dtype).unsqueeze(-1)  # (B, L, 1)
    count = weights.sum(dim=1).clamp_min(1.0)  # (B, 1)
    return (values * weights).sum(dim=1) / count


class HistoryMeanPool(nn.Module):
    """Mean-pooled embeddings of a timeline's index fields (module docstring).

    `embed(batch)` -> one (B, d_F) tensor per field (in meta order), `flat(batch)` -> (B, width).

    Args:
        embedding: the shared FeatureEmbedding; it must hold a table for every space of the timeline.
        meta: the dataset's meta.json.
        timeline: which timeline to pool (`behavior`, `click`, ...).
    """

    def __init__(self, embedding: FeatureEmbedding, meta: dict, timeline: str):
        super().__init__()
        self.embedding = embedding
        self.timeline = timeline
        self.fields = history_spaces(meta, timeline)
        self.width = sum(embedding.dims[s] for s in self.fields.values())

    def embed(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        mask = batch[batch_key(self.timeline, "mask")]  # (B, L)
        return [
            masked_mean(self.embedding(space, batch[batch_key(self.timeline, field)]), mask)  # (B, d_F)
            for field, space in self.fields.items()
        ]

    def flat(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat(self.embed(batch), dim=-1)
