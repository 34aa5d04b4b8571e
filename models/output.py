"""What every model's forward returns."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ModelOutput:
    """logit: (B,) the click logit.
    aux_logits: name -> (B,) logits of sub-networks with their own heads (DCNv3's ECN and LCN),
        for an auxiliary loss such as Tri-BCE (models/losses.py); empty for most models.
    gate: (B, H) MDAF's fusion gate g (weight on the sequential branch), None for other models.
    """

    logit: torch.Tensor
    aux_logits: dict[str, torch.Tensor] = field(default_factory=dict)
    gate: torch.Tensor | None = None
