"""DCNv3: the Exponential and Linear Cross Networks with self-mask (Li et al. 2024).

Source: H. Li et al., "DCNv3: Towards Next Generation Deep Cross Network for CTR Prediction"
(arXiv 2407.13349, 2024; later renamed FCN). With x_1 (B, D) the concatenated field embeddings,
each cross layer computes

    h = W_l x_l                          W_l: D -> ceil(D/2), no bias
    c = [h, h * ReLU(LayerNorm(h))]      the self-mask keeps about half of h's entries; width D
    ECN: x_{l+1} = x_l * (c + b_l) + x_l     interaction order doubles per layer
    LCN: x_{l+1} = x_1 * (c + b_l) + x_l     interaction order grows by one per layer

with b_l (D,) initialised U(0, 1) and dropout after every layer. Each network ends in its own
Linear(D -> 1); the paper predicts sigmoid((logit_ECN + logit_LCN) / 2) and uses no DNN.

Odd D: the paper (and FuxiCTR's code, which uses D // 2 and then fails to broadcast) assumes D is
even. Here h has width ceil(D/2) and c = [h, h * mask] is cut to its first D columns, so the
last entry of h * mask is dropped when D is odd; for even D this is exactly the paper's layer.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class SelfMaskCross(nn.Module):
    """c = [h, h * ReLU(LayerNorm(h))] cut to width D, with h = W x (D -> ceil(D/2), no bias).

    forward(x (B, D)) -> c (B, D). Without `layer_norm` the mask is ReLU(h).
    """

    def __init__(self, dim: int, layer_norm: bool = True):
        super().__init__()
        self.dim = dim
        half = (dim + 1) // 2
        self.w = nn.Linear(dim, half, bias=False)
        self.norm = nn.LayerNorm(half) if layer_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.w(x)  # (B, ceil(D/2))
        mask = torch.relu(self.norm(h))  # (B, ceil(D/2))
        return torch.cat([h, h * mask], dim=-1)[..., : self.dim]  # (B, D)


class CrossNetworkV3(nn.Module):
    """A stack of self-mask cross layers and its Linear(D -> 1) head.

    exponential=True is the ECN (x_{l+1} = x_l * (c + b) + x_l); False is the LCN
    (x_{l+1} = x_1 * (c + b) + x_l). forward(x_1 (B, D)) -> (x_{L+1} (B, D), logit (B,)).
    """

    def __init__(self, dim: int, n_layers: int, dropout: float, layer_norm: bool, exponential: bool):
        super().__init__()
        self.exponential = exponential
        self.cross = nn.ModuleList(SelfMaskCross(dim, layer_norm) for _ in range(n_layers))
        self.bias = nn.ParameterList(nn.Parameter(torch.rand(dim)) for _ in range(n_layers))  # U(0, 1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dim, 1)

    def forward(self, x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x1
        for cross, b in zip(self.cross, self.bias):
            c = cross(x)  # (B, D)
            x = (x if self.exponential else x1) * (c + b) + x
            x = self.dropout(x)
        return x, self.head(x).squeeze(-1)


@dataclass
class DCNv3Output:
    """h_ecn, h_lcn: (B, D) the last layer of each network; logit_ecn, logit_lcn: (B,) their heads."""

    h_ecn: torch.Tensor
    h_lcn: torch.Tensor
    logit_ecn: torch.Tensor
    logit_lcn: torch.Tensor


@dataclass
class DCNv3Config:
    """The paper's defaults: 3 ECN layers with dropout 0.1, 4 LCN layers with dropout 0.3,
    LayerNorm in the self-mask."""

    ecn_layers: int = 3
    lcn_layers: int = 4
    ecn_dropout: float = 0.1
    lcn_dropout: float = 0.3
    layer_norm: bool = True


class DCNv3(nn.Module):
    """ECN and LCN side by side on the same input (see the module docstring).

    forward(x (B, D)) -> DCNv3Output.
    """

    def __init__(self, in_dim: int, cfg: DCNv3Config):
        super().__init__()
        self.out_dim = in_dim
        self.ecn = CrossNetworkV3(in_dim, cfg.ecn_layers, cfg.ecn_dropout, cfg.layer_norm, exponential=True)
        self.lcn = CrossNetworkV3(in_dim, cfg.lcn_layers, cfg.lcn_dropout, cfg.layer_norm, exponential=False)

    def forward(self, x: torch.Tensor) -> DCNv3Output:
        h_ecn, logit_ecn = self.ecn(x)
        h_lcn, logit_lcn = self.lcn(x)
        return DCNv3Output(h_ecn=h_ecn, h_lcn=h_lcn, logit_ecn=logit_ecn, logit_lcn=logit_lcn)
