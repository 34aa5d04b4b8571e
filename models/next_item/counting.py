"""What the next-item models that learn by counting share (models/fitted.py): the window they read,
and training popularity, counted once over every training target with its window:

    p(i) = (c_i + 1) / (N + |I|)        c_i: training targets equal to item i, N: all of them,
                                        |I|: the catalogue (padding and unknown excluded)

Add-one smoothing (Laplace), so an item never seen as a training target still ranks, tied with
the others like it, below every seen one. Their forward returns (B, V) scores like every next-item
model's (models/next_item/base.py); padding and unknown score -inf: never ranked, never a
recommendation. What `fit` counted lives in buffers, so checkpoints and predict.py carry it.
"""
from __future__ import annotations

import torch

from data_prep.loader import batch_key
from data_prep.vocab import OOV
from models.fitted import Batches, FittedModel
from models.layers.embedding import known_index
from models.next_item.base import ITEM

NEVER = float("-inf")


class CountingModel(FittedModel):
    """A subclass may count more per training batch (`observe`) and say what (`finish`)."""

    def __init__(self, timeline: str, meta: dict):
        super().__init__()
        self.timeline = timeline
        self.size = int(meta["vocab_sizes"][ITEM])  # V: the catalogue, padding and unknown
        self.register_buffer("counts", torch.zeros(self.size, dtype=torch.float64))  # c_i: training targets

    def fit(self, train: Batches, val: Batches) -> str:
        counts = torch.zeros(self.size, dtype=torch.float64)
        with torch.no_grad():
            for batch in train:
                target = self.known(batch[ITEM])
                counts += torch.bincount(target[target > OOV], minlength=self.size)
                self.observe(batch)
        self.counts.copy_(counts)
        more = self.finish()
        return (f"popularity of {int(counts.sum()):,} training targets over {int((counts > 0).sum()):,} items"
                + (f"; {more}" if more else ""))

    def observe(self, batch: dict[str, torch.Tensor]) -> None:
        """Count what the model needs beyond popularity from one batch of training targets."""

    def finish(self) -> str:
        """Turn what `observe` counted into buffers; returns what was fitted, for the log."""
        return ""

    def known(self, items: torch.Tensor) -> torch.Tensor:
        """`items` with indices beyond the catalogue (a min count cut it) read as unknown."""
        return known_index(items, self.size)

    def window(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The window's items (B, L) (0 at pads) and mask (B, L)."""
        return self.known(batch[batch_key(self.timeline, ITEM)]), batch[batch_key(self.timeline, "mask")]

    def log_popularity(self) -> torch.Tensor:
        """(V,) float32: log p(i), -inf for padding and unknown."""
        catalogue = self.size - (OOV + 1)
        log_p = torch.log((self.counts + 1) / (self.counts.sum() + catalogue)).float()
        log_p[: OOV + 1] = NEVER
        return log_p
