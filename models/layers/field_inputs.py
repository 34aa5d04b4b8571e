"""The inputs of every static model (DNN, DCNv2, DCNv3, AutoInt+, MDAF's static branch): static
fields, a timeline's fields mean-pooled (models/layers/history_pooling.py) and, as an option, its
match statistics (models/layers/match.py), through one shared FeatureEmbedding."""
from __future__ import annotations

import torch
from torch import nn

from common.errors import MDAFError
from models.layers.config import EmbeddingConfig
from models.layers.embedding import FeatureEmbedding, StaticFields, field_spaces
from models.layers.history import history_spaces
from models.layers.history_pooling import HistoryMeanPool
from models.layers.match import MatchFeatures


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
