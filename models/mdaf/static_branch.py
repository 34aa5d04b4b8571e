"""MDAF's static branch: every static field (user profile, candidate ad, context) through a cross
network, DCNv3 (models/layers/dcnv3.py) or DCNv2 (models/layers/dcnv2.py).

  DCNv3: h = [h_ECN ; h_LCN] (B, 2D), and the two heads' logits for Tri-BCE
  DCNv2: h = DCNv2(x) (B, out_dim)
x is the concatenation of the fields' embeddings (width D), from `FieldInputs` like the static
baselines.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from common.errors import MDAFError
from models.layers.config import EmbeddingConfig
from models.layers.field_inputs import FieldInputs
from models.layers.mlp import MLPConfig
from models.layers.dcnv2 import DCNv2, DCNv2Config
from models.layers.dcnv3 import DCNv3, DCNv3Config

NETWORKS = ("dcnv3", "dcnv2")


@dataclass
class StaticConfig:
    """network: dcnv3 | dcnv2 (| none, handled by MDAF).  embedding, fields (None = all),
    timeline (mean-pooled into extra fields; None = static fields only).  dcnv3, dcnv2: the
    networks' own configs (models/layers/)."""

    network: str = "dcnv3"
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    fields: list[str] | None = None
    timeline: str | None = None
    dcnv3: DCNv3Config = field(default_factory=DCNv3Config)
    dcnv2: DCNv2Config = field(default_factory=lambda: DCNv2Config(mlp=MLPConfig(hidden=[512, 256])))


class StaticBranch(nn.Module):
    """forward(batch) -> (h (B, out_dim), aux_logits {name: (B,)})."""

    def __init__(self, cfg: StaticConfig, meta: dict):
        super().__init__()
        self.inputs = FieldInputs(meta, cfg.embedding, cfg.fields, cfg.timeline)
        width = self.inputs.width
        if cfg.network == "dcnv3":
            self.net = DCNv3(width, cfg.dcnv3)
            self.out_dim = 2 * width
        elif cfg.network == "dcnv2":
            self.net = DCNv2(width, cfg.dcnv2)
            self.out_dim = self.net.out_dim
        else:
            raise MDAFError(f"model config: key 'static.network' is {cfg.network!r}; expected one of {[*NETWORKS, 'none']}")

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = self.inputs.flat(batch)  # (B, D)
        if isinstance(self.net, DCNv3):
            out = self.net(x)
            return torch.cat([out.h_ecn, out.h_lcn], dim=-1), {"ecn": out.logit_ecn, "lcn": out.logit_lcn}
        return self.net(x), {}
