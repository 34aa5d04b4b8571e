"""Mamba4Rec "v2" used alone as a CTR model: the sequential branch plus a few context embeddings.

  logit = MLP_{256-128-64-1}([h_seq ; e(item) ; e(cate) ; e(user) ; e(hour) ; e(dow) (; s)])

h_seq is models/mdaf/sequence_branch.py with the Mamba encoder; the context embeddings (16 dims)
are their own tables, separate from the history's wider item/category tables; s, with
`match_statistics`, the window's match statistics (models/layers/match.py), as in MDAF.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from models.layers.config import EmbeddingConfig
from models.layers.embedding import FeatureEmbedding, StaticFields, field_spaces
from models.layers.match import MatchFeatures
from models.layers.mlp import MLPConfig
from models.mdaf.sequence_branch import SequenceBranch, SequenceConfig
from models.output import ModelOutput


@dataclass
class Mamba4RecV2Config:
    """sequence: the sequential branch.  context_fields: static fields embedded beside it.
    context_embedding: their widths.  mlp: the head (models.layers.mlp.MLPConfig)."""

    sequence: SequenceConfig = field(default_factory=SequenceConfig)
    context_fields: list[str] = field(default_factory=lambda: ["item", "cate", "user", "hour", "dow"])
    context_embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    mlp: MLPConfig = field(default_factory=lambda: MLPConfig(hidden=[256, 128, 64], dropout=0.3))
    match_statistics: bool = False


class Mamba4RecV2(nn.Module):
    def __init__(self, cfg: Mamba4RecV2Config, meta: dict):
        super().__init__()
        self.sequence = SequenceBranch(cfg.sequence, meta)
        fields = field_spaces(meta, cfg.context_fields)
        embedding = FeatureEmbedding(meta["vocab_sizes"], list(fields.values()), cfg.context_embedding.dim, cfg.context_embedding.dims)
        self.context = StaticFields(embedding, fields)
        self.matches = MatchFeatures(meta, cfg.sequence.timeline) if cfg.match_statistics else None
        n_statistics = self.matches.n_statistics if self.matches is not None else 0
        self.mlp = cfg.mlp.build(self.sequence.out_dim + self.context.width + n_statistics)

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        parts = [self.sequence(batch), self.context.flat(batch)]
        if self.matches is not None:
            parts.append(self.matches.statistics(batch))
        return ModelOutput(logit=self.mlp(torch.cat(parts, dim=-1)).squeeze(-1))
