"""Logistic regression on the summary features MDAF reads: its static fields and the match
statistics of its timeline window (models/layers/match.py), never the raw sequence.

  logit = b + sum_f w_f[x_f] + v . s

w_f is a scalar per value of static field f (a one-hot linear model, stored as a width-1 embedding
table of the shared layer, so min counts and out-of-vocabulary ids behave as in every model); s the
window's match statistics; v and b start at zero. The floor every CTR table is read against: what a practitioner fits on
hand-made counts before any deep model.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.layers.embedding import FeatureEmbedding, StaticFields, field_spaces
from models.layers.match import MatchFeatures
from models.output import ModelOutput


@dataclass
class LogisticConfig:
    """fields: static fields (None = all, as MDAF's static branch); timeline: the window whose
    match statistics are read (None = static fields only)."""

    fields: list[str] | None = None
    timeline: str | None = "behavior"


class Logistic(nn.Module):
    def __init__(self, cfg: LogisticConfig, meta: dict):
        super().__init__()
        fields = field_spaces(meta, cfg.fields)
        self.weights = StaticFields(FeatureEmbedding(meta["vocab_sizes"], list(fields.values()), 1), fields)
        self.matches = MatchFeatures(meta, cfg.timeline) if cfg.timeline is not None else None
        self.linear = nn.Linear(self.matches.n_statistics if self.matches is not None else 0, 1)
        nn.init.zeros_(self.linear.weight)  # the usual start of a logistic regression: every logit 0 but the
        nn.init.zeros_(self.linear.bias)    # small field weights, p = 1/2

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        logit = self.weights.flat(batch).sum(dim=-1)  # (B,)
        s = self.matches.statistics(batch) if self.matches is not None else logit.new_zeros(len(logit), 0)
        return ModelOutput(logit=logit + self.linear(s).squeeze(-1))
