"""Item-to-item co-occurrence kNN: the items that followed the user's recent items in the training
sequences, the nearer and the more recent the more, in the spirit of the neighbourhood methods that
match recurrent networks on session data (Jannach & Ludewig, RecSys 2017, "When Recurrent Neural
Networks meet the Neighborhood for Session-Based Recommendation"; the sequential rules of
Ludewig & Jannach, UMUAI 2018, "Evaluation of session-based recommendation algorithms").

Fitted by counting, over every training target b with the `steps` items before it in its window:

    C(a, b) = sum over training targets b, for d = 1..steps: [the item d positions before b is a] / d
    N(a)    = the `neighbours` items b with the largest C(a, b)                    (the kNN table)

Scored from the user's `recent` newest window items x_1 (newest), x_2, ...:

    v(b)    = sum_k C(x_k, b) [b in N(x_k)] / k                  recency-weighted votes
    q(b)    = v(b) / sum_b' v(b')                                (0 when no vote: a window of unknowns)
    score_b = log((1 - w) q(b) + w p(b))                          w: `popularity_weight`

p: add-one smoothed training popularity (models/next_item/counting.py), which ranks the items no
neighbour votes for, and breaks ties. The scores are log-probabilities of that mixture, so the
task's cross-entropy is its log-loss. Every user's sequences count, the user's own included, as in
item-based kNN; only training targets are counted, so no validation or test target is ever seen.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from common.errors import MDAFError
from data_prep.vocab import OOV
from models.next_item.base import ITEM
from models.next_item.counting import NEVER, CountingModel
from models.output import ModelOutput


@dataclass
class KNNConfig:
    """steps: how far before a training target an item counts as its predecessor; neighbours:
    the items kept per item; recent: the user's newest window items that vote; popularity_weight:
    w of the module docstring, in (0, 1)."""

    timeline: str = "history"
    steps: int = 10
    neighbours: int = 100
    recent: int = 10
    popularity_weight: float = 0.01

    def __post_init__(self) -> None:
        for key in ("steps", "neighbours", "recent"):
            if getattr(self, key) < 1:
                raise MDAFError(f"model config (knn): key {key!r} must be >= 1, got {getattr(self, key)!r}")
        if not 0 < self.popularity_weight < 1:
            raise MDAFError(f"model config (knn): key 'popularity_weight' must be in (0, 1), got "
                            f"{self.popularity_weight!r}")


class KNN(CountingModel):
    def __init__(self, cfg: KNNConfig, meta: dict):
        super().__init__(cfg.timeline, meta)
        self.cfg = cfg
        k = min(cfg.neighbours, self.size)
        self.register_buffer("neighbour", torch.zeros(self.size, k, dtype=torch.int64))  # N(a), 0 = none
        self.register_buffer("weight", torch.zeros(self.size, k))  # C(a, N(a)), 0 = none
        self.parts: list[tuple[torch.Tensor, torch.Tensor]] = []  # C while fitting: (a V + b, C) parts

    def observe(self, batch: dict[str, torch.Tensor]) -> None:
        items, mask = self.window(batch)
        target = self.known(batch[ITEM])
        steps = min(self.cfg.steps, items.shape[1])
        before = items[:, -steps:].flip(1)  # (B, steps): d = 1, 2, ... positions before the target
        real = mask[:, -steps:].flip(1) & (target[:, None] > OOV)
        distance = torch.arange(1, steps + 1, dtype=torch.float64).expand_as(before)
        pair = before[real] * self.size + target[:, None].expand_as(before)[real]
        self.parts.append((pair, 1 / distance[real]))
        if len(self.parts) >= 64:
            self.parts = [self.summed()]

    def summed(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The parts counted so far as one: (distinct pairs a V + b, increasing; their C)."""
        pairs, inverse = torch.unique(torch.cat([torch.zeros(0, dtype=torch.int64), *(p for p, _ in self.parts)]),
                                      return_inverse=True)
        values = torch.cat([torch.zeros(0, dtype=torch.float64), *(c for _, c in self.parts)])
        return pairs, torch.zeros(len(pairs), dtype=torch.float64).scatter_add_(0, inverse, values)

    def finish(self) -> str:
        pairs, c = self.summed()
        self.parts = []
        a, b = pairs // self.size, pairs % self.size
        order = torch.sort(-c, stable=True).indices
        order = order[torch.sort(a[order], stable=True).indices]  # by a, then C falling
        a, b, c = a[order], b[order], c[order]
        starts = torch.searchsorted(a, a, side="left")
        slot = torch.arange(len(a)) - starts  # the rank of b among a's successors
        kept = slot < self.neighbour.shape[1]
        self.neighbour.zero_()
        self.weight.zero_()
        self.neighbour[a[kept], slot[kept]] = b[kept]
        self.weight[a[kept], slot[kept]] = c[kept].float()
        return f"{len(c):,} item pairs, up to {self.neighbour.shape[1]} neighbours per item"

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        items, mask = self.window(batch)
        recent = min(self.cfg.recent, items.shape[1])
        newest, real = items[:, -recent:].flip(1), mask[:, -recent:].flip(1)  # (B, R): k = 1, 2, ...
        decay = real / torch.arange(1, recent + 1, device=items.device)  # 1/k at real positions, 0 at pads
        votes = torch.zeros(len(items), self.size, device=items.device)
        votes.scatter_add_(1, self.neighbour[newest].flatten(1),
                           (self.weight[newest] * decay[..., None]).flatten(1))  # (B, R K)
        votes[:, : OOV + 1] = 0  # the empty slots of N(a) point at padding
        total = votes.sum(1, keepdim=True)
        q = votes / total.clamp_min(torch.finfo(votes.dtype).tiny)
        w = self.cfg.popularity_weight
        scores = torch.log((1 - w) * q + w * self.log_popularity().to(items.device).exp())
        scores[:, : OOV + 1] = NEVER
        return ModelOutput(logit=scores)
