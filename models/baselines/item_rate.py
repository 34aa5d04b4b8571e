"""The candidate's click rate in the training split, shrunk toward its category's and the overall
rate: the CTR table's row that learns nothing but counts (what popularity is to next-item).

  p_0 = sum(clicks) / impressions                        over the training split
  p_l = (clicks_l[x_l] + m p_{l-1}) / (n_l[x_l] + m)     for each level l, coarse to fine (cate, item)
  logit = log p_L - log(1 - p_L)

each level the posterior mean of a Beta prior of strength m centred on the level above it (additive
smoothing toward the parent). It reads the candidate's fields and nothing of the user, the context
or the history; out-of-vocabulary ids share one count, as they share one embedding in every model.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from common.errors import MDAFError
from models.fitted import Batches, FittedModel
from models.layers.embedding import known_index
from models.output import ModelOutput


@dataclass
class ItemRateConfig:
    """levels: the candidate's static fields, coarse to fine; prior: m, the prior's strength in
    impressions."""

    levels: list[str] = field(default_factory=lambda: ["cate", "item"])
    prior: float = 20.0


class ItemRate(FittedModel):
    def __init__(self, cfg: ItemRateConfig, meta: dict):
        super().__init__()
        spaces = meta["static_fields"]
        unknown = [f for f in cfg.levels if f not in spaces]
        if unknown or not cfg.levels:
            raise MDAFError(f"model item_rate: key 'levels' is {cfg.levels}; expected static fields of this data set "
                            f"({sorted(spaces)})")
        if cfg.prior <= 0:
            raise MDAFError(f"model item_rate: key 'prior' is {cfg.prior}; expected a positive number of impressions")
        self.prior = cfg.prior
        self.levels = list(cfg.levels)
        for f in self.levels:
            size = int(meta["vocab_sizes"][spaces[f]])
            self.register_buffer(f"clicks_{f}", torch.zeros(size, dtype=torch.float64))
            self.register_buffer(f"shown_{f}", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("totals", torch.zeros(2, dtype=torch.float64))  # clicks, impressions

    def _index(self, batch: dict[str, torch.Tensor], f: str) -> torch.Tensor:
        return known_index(batch[f], len(getattr(self, f"shown_{f}")))

    def fit(self, train: Batches, val: Batches) -> str:
        """Counts over the training batches; validation is not read."""
        for b in train:
            y = b["label"].double()
            self.totals += torch.stack([y.sum(), y.new_tensor(len(y))])
            for f in self.levels:
                i = self._index(b, f)
                getattr(self, f"clicks_{f}").index_add_(0, i, y)
                getattr(self, f"shown_{f}").index_add_(0, i, torch.ones_like(y))
        clicks, shown = self.totals.tolist()
        return f"click rates of {int(shown):,} impressions ({clicks / max(shown, 1):.4f} overall), levels {self.levels}"

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        """The smoothed rate's logit; p = 1/2 for every sample before `fit`."""
        clicks, shown = self.totals
        p = (clicks / shown if shown > 0 else clicks.new_tensor(0.5)).expand(len(batch[self.levels[0]]))
        for f in self.levels:
            i = self._index(batch, f)
            p = (getattr(self, f"clicks_{f}")[i] + self.prior * p) / (getattr(self, f"shown_{f}")[i] + self.prior)
        p = p.clamp(1e-6, 1 - 1e-6)
        return ModelOutput(logit=(p.log() - (-p).log1p()).float())
