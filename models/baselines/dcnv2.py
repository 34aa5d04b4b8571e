"""DCNv2 on its own: the static fields (plus the mean-pooled history) through cross network + DNN."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from models.layers.config import EmbeddingConfig
from models.layers.field_inputs import FieldInputs
from models.layers.dcnv2 import DCNv2, DCNv2Config
from models.output import ModelOutput


@dataclass
class DCNv2ModelConfig:
    """fields: static fields (None = all); timeline: mean-pooled into extra fields (None = off);
    match_features: its match statistics with the candidate as dense inputs (FieldInputs);
    dcnv2: the network (models.layers.dcnv2.DCNv2Config: cross layers, structure, DNN)."""

    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    fields: list[str] | None = None
    timeline: str | None = "behavior"
    match_features: bool = False
    dcnv2: DCNv2Config = field(default_factory=DCNv2Config)

class DCNv2Model(nn.Module):
    """logit = w^T DCNv2(x_0) + b, with x_{l+1} = x_0 * (W_l x_l + b_l) + x_l in the cross network.

    Source: Wang et al. 2021, "DCN V2: Improved Deep & Cross Network and Practical Lessons for
    Web-scale Learning to Rank Systems" (WWW 2021); equations in models/layers/dcnv2.py.
    """

    def __init__(self, cfg: DCNv2ModelConfig, meta: dict):
        super().__init__()
        self.inputs = FieldInputs(meta, cfg.embedding, cfg.fields, cfg.timeline, cfg.match_features)
        self.dcn = DCNv2(self.inputs.width, cfg.dcnv2)
        self.head = nn.Linear(self.dcn.out_dim, 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        h = self.dcn(self.inputs.flat(batch))  # (B, out_dim)
        return ModelOutput(logit=self.head(h).squeeze(-1))
