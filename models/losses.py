"""Click losses: binary cross-entropy with label smoothing, and DCNv3's Tri-BCE.

Label smoothing with s: target y -> y (1 - s) + s / 2 (so 0 -> s/2 and 1 -> 1 - s/2).

Tri-BCE (Li et al. 2024, DCNv3, its "Tri-BCE loss" section): with L the BCE of the final logit and L_k
the BCE of sub-network k's own logit,
    L_tri = L + sum_k w_k L_k,    w_k = max(0, L_k - L).
A sub-network that does worse than the whole gets a larger share of supervision.

Whether gradients flow through w_k: the authors' code (FuxiCTR model_zoo/DCNv3) does not detach
it, so d(w_k L_k) = (2 L_k - L) dL_k - L_k dL: the main loss's gradient is scaled by
(1 - sum_k L_k [w_k > 0]), which shrinks it and turns it negative once the branch losses sum
past 1 (e.g. early in training). We detach w_k by default, treating it as the weight the paper
calls it: the gradient is then dL + sum_k w_k dL_k, every coefficient non-negative.
`detach_weights=False` reproduces the authors' code.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from common.errors import MDAFError
from models.output import ModelOutput

AUX_LOSSES = ("none", "tri_bce")


def smooth_targets(target: torch.Tensor, smoothing: float) -> torch.Tensor:
    """y (1 - s) + s / 2, as float."""
    return target.float() * (1.0 - smoothing) + smoothing / 2.0


def bce_with_logits(logit: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Mean BCE of logits (B,) against 0/1 targets (B,) smoothed by `smoothing`; a scalar."""
    return F.binary_cross_entropy_with_logits(logit, smooth_targets(target, smoothing))


def tri_bce(
    logit: torch.Tensor, aux_logits: dict[str, torch.Tensor], target: torch.Tensor, smoothing: float = 0.0,
    detach_weights: bool = True,
) -> torch.Tensor:
    """L + sum_k w_k L_k with w_k = max(0, L_k - L) (module docstring); a scalar."""
    main = bce_with_logits(logit, target, smoothing)
    total = main
    for aux in aux_logits.values():
        branch = bce_with_logits(aux, target, smoothing)
        weight = (branch - main).clamp_min(0.0)
        total = total + (weight.detach() if detach_weights else weight) * branch
    return total


def model_loss(
    output: ModelOutput, target: torch.Tensor, smoothing: float = 0.0, aux_loss: str = "none",
    detach_weights: bool = True,
) -> torch.Tensor:
    """The training loss of one batch: BCE of `output.logit` ('none') or Tri-BCE over the model's
    auxiliary heads ('tri_bce', which needs a model that has some: DCNv3, MDAF)."""
    if aux_loss == "none":
        return bce_with_logits(output.logit, target, smoothing)
    if aux_loss == "tri_bce":
        if not output.aux_logits:
            raise MDAFError(
                "training config: key 'aux_loss' is 'tri_bce', but the model returns no auxiliary "
                "logits (aux_logits is empty); use a model with sub-network heads (dcnv3, mdaf) or aux_loss 'none'"
            )
        return tri_bce(output.logit, output.aux_logits, target, smoothing, detach_weights)
    raise MDAFError(f"training config: key 'aux_loss' is {aux_loss!r}; expected one of {list(AUX_LOSSES)}")
