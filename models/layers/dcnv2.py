"""DCNv2: the full-rank cross network combined with a DNN (Wang et al. 2021).

Source: R. Wang et al., "DCN V2: Improved Deep & Cross Network and Practical Lessons for Web-scale
Learning to Rank Systems" (WWW 2021). With x_0 (B, D) the concatenated field embeddings,

    x_{l+1} = x_0 * (W_l x_l + b_l) + x_l        W_l: D x D, b_l: (D,)

Stacked:  DNN(cross(x_0))              out_dim = last hidden width (D with no hidden layer)
Parallel: [cross(x_0), DNN(x_0)]       out_dim = D + last hidden width
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from common.errors import MDAFError
from models.layers.mlp import MLPConfig

STRUCTURES = ("stacked", "parallel")


class CrossNetV2(nn.Module):
    """`n_layers` cross layers x_{l+1} = x_0 * (W_l x_l + b_l) + x_l; forward(x_0 (B, D)) -> (B, D)."""

    def __init__(self, dim: int, n_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(n_layers))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for linear in self.layers:
            x = x0 * linear(x) + x
        return x


@dataclass
class DCNv2Config:
    """n_cross: cross layers; structure: 'stacked' or 'parallel'; mlp: the DNN (hidden [] for the
    cross network alone; its out_dim is its last hidden width)."""

    n_cross: int = 3
    structure: str = "parallel"
    mlp: MLPConfig = field(default_factory=MLPConfig)

    def __post_init__(self) -> None:
        if self.structure not in STRUCTURES:
            raise MDAFError(f"model config: key 'structure' is {self.structure!r}; expected one of {list(STRUCTURES)}")


class DCNv2(nn.Module):
    """Cross network and DNN, stacked or parallel (module docstring). forward(x (B, D)) -> (B, out_dim)."""

    def __init__(self, in_dim: int, cfg: DCNv2Config):
        super().__init__()
        self.structure = cfg.structure
        self.cross = CrossNetV2(in_dim, cfg.n_cross)
        self.dnn = cfg.mlp.build(in_dim, out_dim=None)
        self.out_dim = self.dnn.out_dim if cfg.structure == "stacked" else in_dim + self.dnn.out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.structure == "stacked":
            return self.dnn(self.cross(x))  # (B, hidden[-1])
        return torch.cat([self.cross(x), self.dnn(x)], dim=-1)  # (B, D + hidden[-1])
