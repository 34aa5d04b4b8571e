"""The repeat-explore head (RepeatNet: Ren et al., AAAI 2019, "RepeatNet: A Repeat Aware Neural
Recommendation Machine for Session-Based Recommendation"): the next item is either one of the
window's items again (repeat) or any item of the catalogue (explore), mixed by a learnt gate.

For the state s = s_t an encoder gives at position t, over the window's states h_j at positions
j <= t (causal: the query's own item included, no later one):

    P(repeat | s) = sigmoid(w_g . s + b_g)
    e_j           = v . tanh(W_h h_j + W_s s + R[bucket(t - j)] + G[bucket(time_t - time_j)])
    p_repeat(i)   = sum over j with x_j = i of softmax_j(e_j)              summed per item
    p_explore(i)  = softmax_i(s . E_i)                                      over the catalogue
    score_i       = log(P(repeat | s) p_repeat(i) + (1 - P(repeat | s)) p_explore(i))

RepeatNet's gate, its additive repeat attention and mixture; the attention here also reads how
far back each position is, in steps and in seconds (bucket(x) = floor(log2(1 + x)), at most 31;
the seconds are counted from the query's own event, so the time of the request never enters),
and its explore part is the dot-product scorer of models/next_item/base.py over the whole
catalogue (RepeatNet's leaves the session's items out), so P(repeat) = 0 gives back the dot head.
Padding and unknown items receive no mass (score -inf): they are neither explore candidates nor
repeat positions; a window with no known item has no repeat part (score = log p_explore).

The scores are log-probabilities over the catalogue: their log-softmax over its items, which the
task's cross-entropy takes, returns them unchanged, so training maximises the mixture's
likelihood, as RepeatNet's loss does. Cost on top of the dot head: (queries, L, H) for the
attention, (queries, V) for the mixture.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from data_prep.vocab import OOV

BUCKETS = 32  # log2 buckets of steps and of seconds back: 2**31 s is 68 years


def log2_bucket(x: torch.Tensor) -> torch.Tensor:
    """floor(log2(1 + x)) for x >= 0 (negative x read as 0), at most BUCKETS - 1."""
    return torch.log2(1 + x.clamp_min(0).double()).floor().long().clamp_max(BUCKETS - 1)


class RepeatExploreHead(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gate = nn.Linear(dim, 1)  # w_g, b_g
        self.query = nn.Linear(dim, dim, bias=False)  # W_q
        self.key = nn.Linear(dim, dim, bias=False)  # W_k
        self.steps = nn.Linear(dim, BUCKETS)  # W_r, b_r
        self.seconds = nn.Linear(dim, BUCKETS)  # W_t, b_t

    def forward(self, states: torch.Tensor, items: torch.Tensor, mask: torch.Tensor, gaps: torch.Tensor,
                table: torch.Tensor, every_position: bool = False) -> torch.Tensor:
        """Scores (N, V) from the states (B, L, H), items (B, L) (0 at pads), mask (B, L), time gaps
        (B, L) (seconds before the sample's time, non-increasing) and the item table (V, H).
        The queries: the last position of each row (N = B), or with `every_position` each real
        position, in the order of `states[mask]`."""
        batch, length, dim = states.shape
        items = items.masked_fill(items >= len(table), OOV)  # beyond a table a min count cut: unknown
        if every_position:
            rows, at = mask.nonzero(as_tuple=True)
            queries, pick = states, (rows, at)
        else:
            rows = torch.arange(batch, device=states.device)
            at = torch.full_like(rows, length - 1)
            queries, pick = states[:, -1:], (rows, torch.zeros_like(rows))
        s = queries[pick]  # (N, H)
        back = at[:, None] - torch.arange(length, device=states.device)  # (N, L): steps before the query
        seconds = gaps[rows] - gaps[rows, at][:, None]  # time_t - time_j
        repeatable = mask[rows] & (back >= 0) & (items[rows] > OOV)
        energy = (self.query(queries) @ self.key(states).transpose(1, 2))[pick] / math.sqrt(dim)  # (N, L)
        energy = (energy + self.steps(s).gather(1, log2_bucket(back)) + self.seconds(s).gather(1, log2_bucket(seconds)))
        energy = energy.float().masked_fill(~repeatable, torch.finfo(torch.float32).min)
        attention = torch.softmax(energy, dim=1) * repeatable  # rows without a repeatable position: all 0
        catalogue = table[OOV + 1:]
        p_repeat = torch.zeros(len(s), len(catalogue), device=s.device).scatter_add_(
            1, (items[rows] - (OOV + 1)).clamp_min(0), attention)  # pads and unknown carry no attention
        log_repeat = torch.log(p_repeat.clamp_min(torch.finfo(torch.float32).tiny)).masked_fill(p_repeat == 0,
                                                                                              float("-inf"))
        log_explore = F.log_softmax((s @ catalogue.T).float(), dim=1)
        gate = self.gate(s).squeeze(-1).float()
        has = repeatable.any(1)
        log_gate = torch.where(has, F.logsigmoid(gate), float("-inf"))[:, None]
        log_rest = torch.where(has, F.logsigmoid(-gate), 0.0)[:, None]
        mixture = torch.logaddexp(log_gate + log_repeat, log_rest + log_explore)  # (N, catalogue)
        return torch.cat([mixture.new_full((len(s), OOV + 1), float("-inf")), mixture], dim=1)
