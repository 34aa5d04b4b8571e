"""Mamba4Rec's layer (Liu et al. 2024, "Mamba4Rec: Towards Efficient Sequential Recommendation with
Selective State Space Models", Sec. 3.2-3.3):

  h = LayerNorm(x + Dropout(Mamba(x)))                          (without `x +` when residual is off,
                                                                without the LayerNorm when mixer_norm is)
  out = LayerNorm(h + Dropout(W_2 Dropout(GELU(W_1 h))))        (position-wise FFN, 4x)

The authors' code puts no residual around the mixer when there is a single layer
(`residual=False`, models/next_item/mamba4rec.py); MDAF's "v2" branch always keeps it. Padding is
handled inside the mixer (models/ssm/mamba.py); dt_min and dt_max set its initial dt.
"""
from __future__ import annotations

import torch
from torch import nn

from models.layers.feed_forward import FeedForward
from models.ssm.mamba import Mamba


class Mamba4RecLayer(nn.Module):
    """forward(x (B, L, H), mask (B, L) bool) -> (B, L, H)."""

    def __init__(
        self, hidden: int, d_state: int = 16, d_conv: int = 4, expand: int = 2, dropout: float = 0.2,
        ffn_mult: int = 4, scan_backend: str = "auto", residual: bool = True, mixer_norm: bool = True,
        dt_min: float = 0.001, dt_max: float = 0.1,
    ):
        super().__init__()
        self.mamba = Mamba(hidden, d_state=d_state, d_conv=d_conv, expand=expand, dt_min=dt_min, dt_max=dt_max,
                           scan_backend=scan_backend)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden) if mixer_norm else nn.Identity()
        self.ffn = FeedForward(hidden, ffn_mult, dropout, "gelu")
        self.residual = residual

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.drop(self.mamba(x, mask))
        return self.ffn(self.norm(x + h if self.residual else h))

    def step(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, tuple]:
        """One event: x (B, H) and the mixer's state -> (out (B, H), new state); see Mamba.step."""
        h, *state = self.mamba.step(x, *state)
        h = self.drop(h)
        return self.ffn(self.norm(x + h if self.residual else h)), tuple(state)


class Mamba4RecEncoder(nn.Module):
    """A stack of Mamba4Rec layers: forward(x (B, L, H), mask (B, L)) -> (B, L, H), 0 at pads."""

    def __init__(self, hidden: int, n_layers: int = 2, **layer_kwargs):
        super().__init__()
        self.layers = nn.ModuleList(Mamba4RecLayer(hidden, **layer_kwargs) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        return x * mask[..., None]

    def empty_state(self, batch: int, device: torch.device | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every layer's (conv window, scan state) before any event."""
        return [layer.mamba.empty_state(batch, device) for layer in self.layers]

    def step(self, x: torch.Tensor, states: list[tuple]) -> tuple[torch.Tensor, list[tuple]]:
        """One event per row: x (B, H) -> (the forward's output at that event (B, H), new states)."""
        new = []
        for layer, state in zip(self.layers, states):
            x, state = layer.step(x, state)
            new.append(state)
        return x, new
