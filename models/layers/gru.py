"""A GRU over left-padded windows that never reads the pads (the "gru" sequence encoder).

A GRU's state moves even on zero inputs (its biases), so the pads are moved out of the way: each
row is rotated so its real positions come first, the GRU runs on the packed real positions only
(`pack_padded_sequence`), and the outputs are rotated back into place; pads output 0.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class MaskedGRU(nn.Module):
    """forward(x (B, L, D) with D = `input_size` (default `hidden`), mask (B, L) bool, left-padded)
    -> (B, L, hidden), 0 at pads."""

    def __init__(self, hidden: int, n_layers: int = 1, dropout: float = 0.0, input_size: int | None = None):
        super().__init__()
        self.gru = nn.GRU(input_size or hidden, hidden, n_layers, batch_first=True,
                          dropout=dropout if n_layers > 1 else 0.0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, length, width = x.shape
        hidden = self.gru.hidden_size
        n_pad = length - mask.sum(dim=1)  # (B,)
        pos = torch.arange(length, device=x.device)
        to_front = ((pos[None, :] + n_pad[:, None]) % length)[..., None].expand(-1, -1, width)  # (B, L, D)
        packed = pack_padded_sequence(
            torch.gather(x, 1, to_front), (length - n_pad).clamp_min(1).cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=length)  # (B, L, H), real first
        back = ((pos[None, :] - n_pad[:, None]) % length)[..., None].expand(-1, -1, hidden)
        return torch.gather(out, 1, back) * mask[..., None]
