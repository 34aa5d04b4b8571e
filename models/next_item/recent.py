"""Recently viewed: the user's own window items first, the most recent first, then every other item
by training popularity (the "recently viewed" strip of a shop; the repeat-consumption baseline of
Li et al., SIGIR 2023, "Repetition and Exploration in Sequential Recommendation").

Window items are ordered by three keys, each breaking the ties of the one before:
    1. recency: how many distinct event times of the window are newer than the item's last one
       (events at the same second tie);
    2. count: how often the item occurs in the window, more first;
    3. popularity: training popularity (models/next_item/counting.py), more first.
    score_i = 1 + L - rank_i      for the window's items (rank 1 = first; equal keys, equal scores)
    score_i = log p(i) < 0        for every other item
Nothing is learnt but popularity, for the ties and the rest of the list.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from data_prep.loader import batch_key
from data_prep.vocab import OOV
from models.next_item.counting import NEVER, CountingModel
from models.output import ModelOutput


@dataclass
class RecentConfig:
    timeline: str = "history"


class Recent(CountingModel):
    def __init__(self, cfg: RecentConfig, meta: dict):
        super().__init__(cfg.timeline, meta)
        self.register_buffer("popularity_rank", torch.zeros(self.size, dtype=torch.int64))  # 0 = most popular

    def finish(self) -> str:
        self.popularity_rank.copy_(torch.unique(-self.counts, sorted=True, return_inverse=True)[1])
        return ""

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        items, mask = self.window(batch)
        gaps = batch[batch_key(self.timeline, "time_gap")]  # (B, L): seconds before the target, non-increasing
        length = items.shape[1]
        newer = torch.zeros_like(items)  # distinct times after each position's: the windows are in time order
        newer[:, :-1] = (gaps[:, :-1] != gaps[:, 1:]).long().flip(1).cumsum(1).flip(1)
        count = torch.zeros(len(items), self.size, dtype=torch.long, device=items.device)
        count.scatter_add_(1, items, mask.long())
        # one integer key per position, smaller first: (recency, -count, popularity rank) in that order
        ranks = int(self.popularity_rank.max()) + 1
        key = (newer * (length + 1) + length - count.gather(1, items)) * ranks + self.popularity_rank[items]
        key = key.masked_fill(~mask, torch.iinfo(torch.long).max)
        ordered = key.sort(dim=1).values
        first = torch.ones_like(mask)
        first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
        rank = first.long().cumsum(1).gather(1, torch.searchsorted(ordered, key))  # 1 = first, equal keys alike
        scores = self.log_popularity().to(items.device).expand(len(items), -1).clone()
        # an item's positions share its count and popularity; its newest position has the best key
        scores.scatter_reduce_(1, items, (1 + length - rank).float().masked_fill(~mask, NEVER), "amax")
        scores[:, : OOV + 1] = NEVER
        return ModelOutput(logit=scores)
