"""The hybrid Mamba / self-attention block of MambaRec (A. G. Sai, "State-Space Models for Large
Sequence Modeling in Sequential Recommendation", its public code), with causal and padding masks
everywhere:

  a_t = LayerNorm(x_t + Dropout(SelfAttention(x)_t))          causal: keys s <= t, real keys only
  m_t = Dropout(Mamba(x)_t)                                   the mixer of models/ssm/mamba.py
  g_t = sigmoid(w . xbar_t + b)                               the gate, a scalar
  h_t = g_t m_t + (1 - g_t) a_t,     out_t = FFN(h_t)         FFN: models/layers/feed_forward.py

Gate `sequence`: xbar_t is the mean of x over the real positions s <= t. At the last position, the
one a next-item model scores and MDAF reads, this is the mean over the whole window, the published
per-sequence gate; at earlier positions it is that gate of the prefix, so training on every
position never lets a position's gate read a later item. (The published code averages over the
padding too and attends without masks, so its gate and its attention see the future.)
Gate `position`: xbar_t = x_t, one gate per position.
"""
from __future__ import annotations

import torch
from torch import nn

from common.errors import MDAFError
from models.layers.feed_forward import FeedForward
from models.layers.transformer import SelfAttention, visible_keys
from models.ssm.mamba import Mamba

GATES = ("sequence", "position")


def prefix_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, H), (B, L) -> (B, L, H): at t, the mean of x over real positions s <= t (0 before the first)."""
    keep = mask[..., None].to(x.dtype)
    return torch.cumsum(x * keep, dim=1) / torch.cumsum(keep, dim=1).clamp_min(1.0)


class HybridLayer(nn.Module):
    """forward(x (B, L, H), mask (B, L), visible (B, L, L)) -> (out (B, L, H), gate (B, L))."""

    def __init__(self, hidden: int, n_heads: int = 2, gate: str = "sequence", d_state: int = 16, d_conv: int = 4,
                 expand: int = 2, dropout: float = 0.2, ffn_mult: int = 4, scan_backend: str = "auto"):
        super().__init__()
        if gate not in GATES:
            raise MDAFError(f"model config: key 'gate' is {gate!r}; expected one of {list(GATES)}")
        if hidden % n_heads:
            raise MDAFError(f"model config: key 'hidden' ({hidden}) must be a multiple of 'n_heads' ({n_heads})")
        self.gate_kind = gate
        self.mamba = Mamba(hidden, d_state=d_state, d_conv=d_conv, expand=expand, scan_backend=scan_backend)
        self.attention = SelfAttention(hidden, n_heads, dropout)
        self.norm = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)
        self.gate = nn.Linear(hidden, 1)
        self.ffn = FeedForward(hidden, ffn_mult, dropout, "gelu")

    def forward(self, x: torch.Tensor, mask: torch.Tensor, visible: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.norm(x + self.drop(self.attention(x, visible)))
        m = self.drop(self.mamba(x, mask))
        g = torch.sigmoid(self.gate(prefix_mean(x, mask) if self.gate_kind == "sequence" else x))  # (B, L, 1)
        return self.ffn(g * m + (1 - g) * a), g.squeeze(-1)


class HybridEncoder(nn.Module):
    """A stack of hybrid layers: forward(x (B, L, H), mask (B, L)) -> (B, L, H), 0 at pads.
    After each forward, `gates` holds every layer's gate at the last position, (B, n_layers)."""

    def __init__(self, hidden: int, n_layers: int = 1, **layer_kwargs):
        super().__init__()
        self.layers = nn.ModuleList(HybridLayer(hidden, **layer_kwargs) for _ in range(n_layers))
        self.gates: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        visible = visible_keys(mask, causal=True)  # (B, L, L)
        gates = []
        for layer in self.layers:
            x, g = layer(x, mask, visible)
            gates.append(g[:, -1])
        self.gates = torch.stack(gates, dim=1).detach()
        return x * mask[..., None]
