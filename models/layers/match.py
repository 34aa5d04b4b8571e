"""Identity between the candidate and its history: match indicators per behaviour and window
statistics per sample, read from raw ids so they survive ids the vocabularies never saw.

For timeline T and each of its fields F that the candidate carries too (same vocabulary space):
    m_t,F = [F of behaviour t == the candidate's F]                              (B, L)
compared on raw ids where the dataset keeps them (meta.json `raw_ids`), so an item first seen on
the test day still matches its views earlier that day; on indices otherwise, where an
out-of-vocabulary id never matches. m is 0 at pads and where either id is missing.

Statistics of the window (B, S), each O(1) in size, for every such F:
    count_F = log(1 + sum_t m_t,F)                   how often the user met the candidate's F
    share_F = sum_t m_t,F / max(1, n)                how much of the window it fills (n real positions)
    since_F = log(1 + hours since the newest match)   log(1 + 24 * 32) when there is none
    after_F = log(1 + behaviours since the newest match)    log(1 + n) when there is none
    count_F,b = log(1 + sum_t m_t,F [type_t == b])   per behaviour type b, when T has one (`btag`)
and for the window as a whole: log(1 + n), and the share of each behaviour type (a user's habit of
carting or buying). These are the features the click signal of a history is about (DIN's premise:
users click what they just browsed), given for every id at once instead of learned id by id.
"""
from __future__ import annotations

import torch
from torch import nn

from data_prep.loader import batch_key
from data_prep.timeline import raw_column
from data_prep.vocab import MISSING, OOV
from models.layers.history import MAX_TIME_GAP_DAYS, history_spaces

BEHAVIOUR_FIELD = "btag"
NO_MATCH_HOURS = 24 * MAX_TIME_GAP_DAYS


class MatchFeatures(nn.Module):
    """`indicators(batch)` -> (B, L, n_fields) float; `statistics(batch)` -> (B, n_statistics).

    Args:
        meta: the dataset's meta.json.
        timeline: the timeline compared with the candidate.
    """

    def __init__(self, meta: dict, timeline: str):
        super().__init__()
        self.timeline = timeline
        fields = history_spaces(meta, timeline)
        by_space = {space: field for field, space in meta.get("target_fields", {}).items()}
        self.pairs = {f: by_space[s] for f, s in fields.items() if s in by_space}  # history field -> candidate field
        raw_history = set(meta["timelines"][timeline].get("raw_ids", []))
        raw_candidate = set(meta.get("raw_ids", []))
        self.raw = {f: f in raw_history and c in raw_candidate for f, c in self.pairs.items()}
        self.n_types = meta["vocab_sizes"][fields[BEHAVIOUR_FIELD]] - 2 if BEHAVIOUR_FIELD in fields else 0
        self.n_fields = len(self.pairs)
        self.n_statistics = self.n_fields * (4 + self.n_types) + 1 + self.n_types

    def indicators(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        t = self.timeline
        mask = batch[batch_key(t, "mask")]  # (B, L)
        out = []
        for field, candidate in self.pairs.items():
            if self.raw[field]:
                hist, cand = batch[batch_key(t, raw_column(field))], batch[raw_column(candidate)][:, None]
                known = cand != MISSING
            else:
                hist, cand = batch[batch_key(t, field)], batch[candidate][:, None]
                known = cand > OOV
            out.append((hist == cand) & known & mask)
        return torch.stack(out, dim=-1).float()  # (B, L, n_fields)

    def statistics(self, batch: dict[str, torch.Tensor], indicators: torch.Tensor | None = None) -> torch.Tensor:
        """The window statistics of the module docstring; `indicators` if already computed."""
        t = self.timeline
        m = self.indicators(batch) if indicators is None else indicators  # (B, L, k)
        real = batch[batch_key(t, "mask")].float()  # (B, L)
        n = real.sum(dim=1, keepdim=True)  # (B, 1)
        hours = batch[batch_key(t, "time_gap")].float() / 3600.0  # (B, L)
        count = m.sum(dim=1)  # (B, k)
        newest = torch.where(m > 0, hours[..., None], torch.full_like(m, NO_MATCH_HOURS)).amin(dim=1)
        # positions count back from the newest behaviour (at L-1, windows are left-padded)
        back = torch.arange(m.shape[1] - 1, -1, -1, device=m.device, dtype=m.dtype)[None, :, None]  # (1, L, 1)
        after = torch.where(m > 0, back, n[..., None]).amin(dim=1)  # (B, k)
        parts = [torch.log1p(count), count / n.clamp_min(1.0), torch.log1p(newest), torch.log1p(after)]
        window = [torch.log1p(n)]
        if self.n_types:
            types = nn.functional.one_hot(batch[batch_key(t, BEHAVIOUR_FIELD)], self.n_types + 2)[..., 2:].float()  # (B, L, b)
            types = types * real[..., None]
            parts.append(torch.log1p(torch.einsum("nlk,nlt->nkt", m, types).flatten(1)))  # (B, k * b)
            window.append(types.sum(dim=1) / n.clamp_min(1.0))
        return torch.cat(parts + window, dim=-1)  # (B, n_statistics)

