"""Learning-rate factor per optimiser step: linear warm-up, then cosine decay.

With S steps per epoch, W = round(warmup_epochs * S) warm-up steps and T = epochs * S steps:
    f(t) = a + (1 - a) t / W                                   t < W
    f(t) = r + (1 - r) (1 + cos(pi (t - W) / (T - 1 - W))) / 2 W <= t < T
a = warmup_start, r = final_lr_ratio: f(0) = a, f(W) = 1, f(T - 1) = r (the last step of the
last epoch). The schedule is stepped per batch; early stopping may end training before T.
"""
from __future__ import annotations

import math

import torch


def lr_factor(step: int, total_steps: int, warmup_steps: int, warmup_start: float, final_ratio: float) -> float:
    """f(step) of the module docstring."""
    if step < warmup_steps:
        return warmup_start + (1.0 - warmup_start) * step / warmup_steps
    span = total_steps - 1 - warmup_steps
    progress = min(1.0, (step - warmup_steps) / span) if span > 0 else 1.0
    return final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int, warmup_epochs: float,
                  warmup_start: float, final_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR applying `lr_factor` to every parameter group; call `.step()` after each batch."""
    total = steps_per_epoch * epochs
    warmup = min(round(warmup_epochs * steps_per_epoch), total)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: lr_factor(t, total, warmup, warmup_start, final_ratio))
