"""MDAF's gated fusion of the static and sequential representations (both (B, H)):

  g = sigmoid(W [h_static ; h_seq] + b)         (B, H), per sample and per dimension
  h = g * h_seq + (1 - g) * h_static

g near 1 means the sample leans on its behaviour sequence, near 0 on its static features. b starts
at 0 and W small, so training starts from an even mix (g about 0.5).
"""
from __future__ import annotations

import torch
from torch import nn


class GatedFusion(nn.Module):
    """forward(h_static (B, H), h_seq (B, H)) -> (h (B, H), g (B, H))."""

    def __init__(self, hidden: int):
        super().__init__()
        self.gate = nn.Linear(2 * hidden, hidden)
        nn.init.zeros_(self.gate.bias)

    def forward(self, h_static: torch.Tensor, h_seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.sigmoid(self.gate(torch.cat([h_static, h_seq], dim=-1)))
        return g * h_seq + (1 - g) * h_static, g
