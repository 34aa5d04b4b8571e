"""Popularity: every user gets the training targets' most frequent items,

    score_i = log p(i)        p: add-one smoothed training popularity (models/next_item/counting.py)

the list that knows nothing of the user. Its scores are log-probabilities, so the task's
cross-entropy is the unigram model's log-loss.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from models.next_item.counting import CountingModel
from models.output import ModelOutput


@dataclass
class PopConfig:
    timeline: str = "history"


class Pop(CountingModel):
    def __init__(self, cfg: PopConfig, meta: dict):
        super().__init__(cfg.timeline, meta)

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        items, _ = self.window(batch)
        return ModelOutput(logit=self.log_popularity().to(items.device).expand(len(items), -1))
