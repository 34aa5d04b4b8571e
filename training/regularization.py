"""L2 regularisation of the embedding rows a batch reads (deep CTR models overfit through their id
embeddings, most of all after the first pass over the data: Zhang et al., "Towards Understanding
the Overfitting Phenomenon of Deep Click-Through Rate Prediction Models", CIKM 2022):

    R = lambda * sum over the batch's lookups of mean_b ||e_b||^2

with e_b what a lookup of models/layers/embedding.py returned for sample b (a history lookup sums
over its positions; pads embed to zero and add nothing). Only the rows the batch reads get a
gradient, unlike weight decay, which shrinks every row at every step.
"""
from __future__ import annotations

import torch
from torch import nn

from models.layers.embedding import FeatureEmbedding


class EmbeddingL2:
    """Collects the training-mode lookups of every FeatureEmbedding in `model` (forward hooks);
    `penalty()` returns R for the lookups since the last call."""

    def __init__(self, model: nn.Module, weight: float):
        self.weight = weight
        self.terms: list[torch.Tensor] = []
        for module in model.modules():
            if isinstance(module, FeatureEmbedding):
                module.register_forward_hook(self._collect)

    def _collect(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if module.training:
            self.terms.append(output.float().pow(2).flatten(1).sum(dim=1).mean())

    def penalty(self) -> torch.Tensor | float:
        total = self.weight * sum(self.terms)
        self.terms.clear()
        return total
