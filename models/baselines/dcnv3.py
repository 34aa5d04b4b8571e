"""DCNv3 on its own: the static fields (plus the mean-pooled history) through ECN and LCN."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from models.layers.config import EmbeddingConfig
from models.layers.field_inputs import FieldInputs
from models.layers.dcnv3 import DCNv3, DCNv3Config
from models.output import ModelOutput


@dataclass
class DCNv3ModelConfig:
    """fields: static fields (None = all); timeline: mean-pooled into extra fields (None = off);
    match_features: its match statistics with the candidate as dense inputs (FieldInputs);
    dcnv3: the network (models.layers.dcnv3.DCNv3Config)."""

    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    fields: list[str] | None = None
    timeline: str | None = "behavior"
    match_features: bool = False
    dcnv3: DCNv3Config = field(default_factory=DCNv3Config)

class DCNv3Model(nn.Module):
    """logit = (logit_ECN(x_1) + logit_LCN(x_1)) / 2, x_1 the concatenated field embeddings.

    Source: Li et al. 2024, "DCNv3: Towards Next Generation Deep Cross Network for CTR Prediction"
    (equations in models/layers/dcnv3.py). The two heads are returned as aux_logits {"ecn", "lcn"}
    so the Tri-BCE loss (models/losses.py) can supervise each network.
    """

    def __init__(self, cfg: DCNv3ModelConfig, meta: dict):
        super().__init__()
        self.inputs = FieldInputs(meta, cfg.embedding, cfg.fields, cfg.timeline, cfg.match_features)
        self.dcn = DCNv3(self.inputs.width, cfg.dcnv3)

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        out = self.dcn(self.inputs.flat(batch))  # x_1: (B, D)
        logit = (out.logit_ecn + out.logit_lcn) / 2  # (B,)
        return ModelOutput(logit=logit, aux_logits={"ecn": out.logit_ecn, "lcn": out.logit_lcn})
