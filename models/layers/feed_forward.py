"""The position-wise feed-forward sub-layer of transformers and Mamba4Rec (Vaswani et al. 2017;
Liu et al. 2024, Sec. 3.3), with its residual and LayerNorm:

  FFN(x) = LayerNorm(x + Dropout(W_2 Dropout(act(W_1 x + b_1)) + b_2)),   W_1: H -> mult * H
"""
from __future__ import annotations

import torch
from torch import nn

FFN_ACTIVATIONS = {"gelu": nn.GELU, "leaky_relu": nn.LeakyReLU, "relu": nn.ReLU}


class FeedForward(nn.Module):
    """forward(x (..., H)) -> (..., H)."""

    def __init__(self, hidden: int, mult: int = 4, dropout: float = 0.1, activation: str = "gelu"):
        super().__init__()
        if activation not in FFN_ACTIVATIONS:
            raise ValueError(f"activation {activation!r}: expected one of {sorted(FFN_ACTIVATIONS)}")
        self.net = nn.Sequential(
            nn.Linear(hidden, mult * hidden),
            FFN_ACTIVATIONS[activation](),
            nn.Dropout(dropout),
            nn.Linear(mult * hidden, hidden),
            nn.Dropout(dropout),
        )
        self.norm = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.net(x))
