"""What every model's forward returns."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ModelOutput:
    """logit: (B,) the click logit; for a next-item model, (B, V) the score of every item.
    aux_logits: name -> (B,) logits of sub-networks with their own heads (DCNv3's ECN and LCN),
        for an auxiliary loss such as Tri-BCE (models/losses.py); empty for most models.
    diagnostics: name -> per-sample tensors a model reports about itself (MDAF: its fusion gate),
        read only by the object its `diagnostics()` hook returns (models/mdaf/gate_diagnostics.py).
    states: (B, L, H) a next-item model's state at every position, which its `score` turns into
        item scores, for training on every position at once (models/next_item/base.py).
    """

    logit: torch.Tensor
    aux_logits: dict[str, torch.Tensor] = field(default_factory=dict)
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)
    states: torch.Tensor | None = None
