"""Attention pooling of a sequence against the candidate, padding masked (Mamba4Rec v2's pooling).

  alpha_t = softmax_t( q . k_t / sqrt(H) )  over real positions t only,
  pooled  = sum_t alpha_t v_t,
with q the projected candidate (B, H) and k_t = v_t the encoder output (B, L, H). A sample with no
real position pools to zeros (not NaN).
"""
from __future__ import annotations

import math

import torch
from torch import nn


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim restricted to `mask`; all-masked rows give all zeros."""
    scores = scores.masked_fill(~mask, float("-inf"))
    any_real = mask.any(dim=-1, keepdim=True)
    scores = torch.where(any_real, scores, torch.zeros_like(scores))
    return torch.softmax(scores, dim=-1) * any_real


class TargetAttention(nn.Module):
    """Scaled dot-product attention of one query over a masked sequence.

    forward(query (B, H), seq (B, L, H), mask (B, L) bool) -> (pooled (B, H), weights (B, L)).
    """

    def __init__(self, hidden: int):
        super().__init__()
        self.query = nn.Linear(hidden, hidden, bias=False)
        self.scale = 1.0 / math.sqrt(hidden)

    def forward(self, query: torch.Tensor, seq: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = torch.einsum("bh,blh->bl", self.query(query), seq) * self.scale
        weights = masked_softmax(scores, mask)
        return torch.einsum("bl,blh->bh", weights, seq), weights
