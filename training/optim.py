"""AdamW (decoupled weight decay, Loshchilov & Hutter 2019) with the decay only where it belongs.

    p <- p - lr (m_hat / (sqrt(v_hat) + eps) + wd p)      for matrices and embedding tables
    p <- p - lr  m_hat / (sqrt(v_hat) + eps)               for biases, norm scales, A_log, D

Embedding tables may learn at their own rate (`embedding_lr_scale` times lr), a control of the
overfitting that lives in id embeddings.

A parameter is exempt when it has one dimension (biases, LayerNorm/PReLU scales, D) or carries
`_no_weight_decay` (A_log, D: models/ssm/mamba.py). Embedding tables are decayed, but their
padding row is zero and receives no gradient (`padding_idx=0`), so Adam's update of it is zero and
the decoupled decay, wd * 0, keeps it zero: the padding row is never decayed nor trained.
"""
from __future__ import annotations

import torch
from torch import nn


def exempt_from_decay(param: nn.Parameter) -> bool:
    return param.ndim <= 1 or getattr(param, "_no_weight_decay", False)


def adamw(model: nn.Module, lr: float, weight_decay: float, betas: list[float],
          embedding_lr_scale: float = 1.0) -> torch.optim.AdamW:
    """AdamW over `model`'s trainable parameters in groups: decayed and exempt, and the embedding
    tables (decayed) at `embedding_lr_scale` times the learning rate."""
    own_rate = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)} if embedding_lr_scale != 1 else set()
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if not exempt_from_decay(p) and id(p) not in own_rate]
    exempt = [p for p in params if exempt_from_decay(p)]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": exempt, "weight_decay": 0.0}]
    if own_rate:
        tables = [p for p in params if id(p) in own_rate and not exempt_from_decay(p)]
        groups.append({"params": tables, "weight_decay": weight_decay, "lr": lr * embedding_lr_scale})
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))
