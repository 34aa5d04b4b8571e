"""What every model's forward returns."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ModelOutput:
    """logit: (B,) the click logit.
    aux_logits: name -> (B,) logits of sub-networks with their own heads (DCNv3's ECN and LCN),
        for an auxiliary loss such as Tri-BCE (models/losses.py); empty for most models.
    diagnostics: name -> per-sample tensors a model reports about itself (MDAF: its fusion gate),
        read only by the object its `diagnostics()` hook returns (models/mdaf/gate_diagnostics.py).
    """

    logit: torch.Tensor
    aux_logits: dict[str, torch.Tensor] = field(default_factory=dict)
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)
