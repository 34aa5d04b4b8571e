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

from common.errors import MDAFError
from models.layers.config import EmbeddingConfig
from models.layers.embedding import FeatureEmbedding, StaticFields, field_spaces
from models.layers.history import history_spaces
from models.layers.match import MatchFeatures


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
        mask = batch[f"{self.timeline}_mask"]  # (B, L)
        return [
            masked_mean(self.embedding(space, batch[f"{self.timeline}_{field}"]), mask)  # (B, d_F)
            for field, space in self.fields.items()
        ]

    def flat(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat(self.embed(batch), dim=-1)


class FieldInputs(nn.Module):
    """The inputs of a static model: its static fields plus (optionally) a timeline's pooled fields,
    all through one FeatureEmbedding, and (optionally) that timeline's match statistics with the
    candidate (models/layers/match.py) as dense inputs.

    `forward(batch)` -> (B, n_fields, d), the embedded fields alone, when all widths are equal;
    `flat(batch)` -> (B, width), the fields and the statistics.

    Args:
        meta: the dataset's meta.json.
        embedding: the embedding widths.
        fields: static fields to use; None for all of meta `static_fields`.
        timeline: timeline whose fields are mean-pooled into extra fields; None for none.
        match_features: append the timeline's match statistics to `flat`.
    """

    def __init__(self, meta: dict, embedding: EmbeddingConfig, fields: list[str] | None, timeline: str | None,
                 match_features: bool = False):
        super().__init__()
        if match_features and timeline is None:
            raise MDAFError("model config: 'match_features' needs a 'timeline' to compare the candidate with")
        static = field_spaces(meta, fields)
        history = history_spaces(meta, timeline) if timeline is not None else {}
        spaces = list(dict.fromkeys([*static.values(), *history.values()]))
        self.embedding = FeatureEmbedding(meta["vocab_sizes"], spaces, embedding.dim, embedding.dims)
        self.static = StaticFields(self.embedding, static)
        self.history = HistoryMeanPool(self.embedding, meta, timeline) if timeline is not None else None
        self.matches = MatchFeatures(meta, timeline) if match_features else None
        self.n_fields = len(static) + len(history)
        self.width = (self.static.width + (self.history.width if self.history is not None else 0)
                      + (self.matches.n_statistics if self.matches is not None else 0))

    def embed(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """One (B, d_f) tensor per field: the static fields, then the pooled history fields."""
        parts = self.static.embed(batch)
        if self.history is not None:
            parts += self.history.embed(batch)
        return parts

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack(self.embed(batch), dim=1)

    def flat(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        statistics = [self.matches.statistics(batch)] if self.matches is not None else []
        return torch.cat(self.embed(batch) + statistics, dim=-1)
