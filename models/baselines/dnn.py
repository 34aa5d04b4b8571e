"""DNN: an MLP over the concatenated field embeddings (the plain deep CTR baseline)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from models.layers.config import EmbeddingConfig
from models.layers.field_inputs import FieldInputs
from models.layers.mlp import MLPConfig
from models.output import ModelOutput


@dataclass
class DNNConfig:
    """fields: static fields (None = all); timeline: mean-pooled into extra fields (None = off);
    match_features: its match statistics with the candidate as dense inputs (FieldInputs);
    mlp: the MLP (models.layers.mlp.MLPConfig)."""

    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    fields: list[str] | None = None
    timeline: str | None = "behavior"
    match_features: bool = False
    mlp: MLPConfig = field(default_factory=MLPConfig)

class DNN(nn.Module):
    """logit = MLP([e_1; ...; e_F]) with e_f the field embeddings.

    Source: the "DNN" baseline of the BARS open CTR benchmark (Zhu et al., "BARS: Towards Open
    Benchmarking for Recommender Systems", SIGIR 2022), as in the embedding-and-MLP model of
    Covington et al. 2016 (YouTube DNN).
    """

    def __init__(self, cfg: DNNConfig, meta: dict):
        super().__init__()
        self.inputs = FieldInputs(meta, cfg.embedding, cfg.fields, cfg.timeline, cfg.match_features)
        self.mlp = cfg.mlp.build(self.inputs.width)

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        return ModelOutput(logit=self.mlp(self.inputs.flat(batch)).squeeze(-1))  # (B,)
