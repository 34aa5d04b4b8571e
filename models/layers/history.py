"""A timeline window and its candidate as tokens of one width (shared by every sequential model).

For timeline T with index fields F_1..F_k (e.g. `behavior`: cate, brand, btag):
  token_t = [e(F_1[t]); ...; e(F_k[t])]            (B, L, W), zeros at pads (index 0 embeds to 0)
  query   = [e(c_1); ...; e(c_k)]                  (B, W)
where c_j is the candidate's static field in the same vocabulary space as F_j (meta.json
`target_fields`), and a zero block where the candidate has none (a behaviour type, say). So the
candidate and each behaviour live in one space, and one linear map projects both.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from common.errors import MDAFError
from data_prep.loader import batch_key
from models.layers.embedding import FeatureEmbedding


def history_spaces(meta: dict, timeline: str) -> dict[str, str]:
    """Index field -> vocabulary space of `timeline`, checked against meta."""
    timelines = meta["timelines"]
    if timeline not in timelines:
        raise MDAFError(f"model config: key 'timeline' is {timeline!r}; the dataset has {sorted(timelines)}")
    return dict(timelines[timeline]["fields"])


class HistoryTokens(nn.Module):
    """`forward(batch)` -> (tokens (B, L, W), query (B, W), mask (B, L) bool, True at real behaviours).

    Args:
        embedding: the shared FeatureEmbedding; it must hold a table for every space of the timeline.
        meta: the dataset's meta.json.
        timeline: which timeline to read (`behavior`, `click`, ...).
        fields: the timeline's fields to embed (None: all of them).
        query: whether the query is read (target attention needs a field shared with the candidate).
    """

    def __init__(self, embedding: FeatureEmbedding, meta: dict, timeline: str, fields: list[str] | None = None,
                 query: bool = True):
        super().__init__()
        self.embedding = embedding
        self.timeline = timeline
        self.fields = history_spaces(meta, timeline)
        if fields is not None:
            unknown = [f for f in fields if f not in self.fields]
            if unknown or not fields:
                raise MDAFError(f"model config: key 'token_fields' is {fields!r}; expected some of timeline "
                                f"{timeline!r}'s fields {sorted(self.fields)}")
            self.fields = {f: self.fields[f] for f in fields}
        targets = dict(meta.get("target_fields", {}))
        by_space = {space: field for field, space in targets.items()}
        self.candidate = {f: by_space.get(s) for f, s in self.fields.items()}  # history field -> static field
        if query and not any(self.candidate.values()):
            raise MDAFError(
                f"model config: timeline {timeline!r} shares no vocabulary space with the candidate "
                f"(meta.json target_fields {targets}); target attention needs at least one"
            )
        self.width = sum(embedding.dims[s] for s in self.fields.values())

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        t = self.timeline
        tokens = torch.cat([self.embedding(s, batch[batch_key(t, f)]) for f, s in self.fields.items()], dim=-1)
        parts = []
        for field, space in self.fields.items():
            column = self.candidate[field]
            if column is None:  # a zero block, from the batch alone (no label needed at prediction)
                parts.append(tokens.new_zeros(tokens.shape[0], self.embedding.dims[space]))
            else:
                parts.append(self.embedding(space, batch[column]))
        return tokens, torch.cat(parts, dim=-1), batch[batch_key(t, "mask")]


MAX_TIME_GAP_DAYS = 32.0  # default: older behaviours share the last time bucket (the windows span 22-30 days)


def time_gap_bucket(gap: torch.Tensor, mask: torch.Tensor, n_buckets: int) -> torch.Tensor:
    """Bucket index of each behaviour's age, for a time-gap position embedding (BST, Sec. 3.2).

    bucket = 1 + min(floor(log2(1 + gap / 60 s)), n_buckets - 2), and 0 at pads: minutes-scale
    resolution for recent behaviours, doubling with age.
    """
    minutes = gap.clamp_min(0).to(torch.float32) / 60.0
    bucket = torch.floor(torch.log2(1.0 + minutes)).long().clamp_max(n_buckets - 2) + 1
    return bucket * mask


def n_time_buckets(max_gap_s: float) -> int:
    """Buckets needed by `time_gap_bucket` for gaps up to `max_gap_s` seconds (plus the pad)."""
    return int(math.floor(math.log2(1.0 + max_gap_s / 60.0))) + 2
