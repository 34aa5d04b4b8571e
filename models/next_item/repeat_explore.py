"""The repeat-explore head (RepeatNet: Ren et al., AAAI 2019, "RepeatNet: A Repeat Aware Neural
Recommendation Machine for Session-Based Recommendation"): the next item is either one of the
window's items again (repeat) or any item of the catalogue (explore), mixed by a learnt gate.

For the state s = s_t an encoder gives at position t, over the window's states h_j at positions
j <= t (causal: the query's own item included, no later one):

    P(repeat | s) = sigmoid(w_g . s + b_g)
    e_j           = (W_q s) . (W_k h_j) / sqrt(H) + (W_r s + b_r)[bucket(t - j)]
                    + (W_t s + b_t)[bucket(time_t - time_j)]
    p_repeat(i)   = sum over j with x_j = i of softmax_j(e_j)              summed per item
    p_explore(i)  = softmax_i(s . E_i)                                      over the catalogue
    score_i       = log(P(repeat | s) p_repeat(i) + (1 - P(repeat | s)) p_explore(i))

RepeatNet's gate and mixture. Its repeat attention is additive (v . tanh(W h_j + U s)), which on
every position of a window (train_on: all) costs (positions, L, H); here the state attends to each
position's state by a scaled dot product, (positions, L), and reads the position's recency in
steps and in seconds through profiles it sets itself: W_r s gives a weight to each log2 bucket
of steps back, W_t s to each of seconds back (bucket(x) = floor(log2(1 + x)), at most 31; the
seconds count from the query's own event, so the time of the request never enters). The explore
part is the dot-product scorer of models/next_item/base.py over the whole catalogue (RepeatNet's
leaves the session's items out), so P(repeat) = 0 gives back the dot head.

Padding and unknown items receive no mass (score -inf): neither explore candidates nor repeat
positions; a window with no known item has no repeat part (score = log p_explore). The scores are
log-probabilities over the catalogue (their log-softmax returns them unchanged), so the task's
cross-entropy is their negative log-likelihood, which it takes directly (`log_probabilities` of
models/next_item/base.py): training maximises the mixture's likelihood, as RepeatNet's loss does.
Computed as log((1 - P) p_explore) over the catalogue, plus softplus(log P p_repeat(i) -
log((1 - P) p_explore(i))) at each window item (the same log of the sum), so beyond the dot head's
(queries, V) scores only (queries, L) tensors are built: with the last position as the query, a
cost linear in L; on every position (train_on: all), (B, L, L), quadratic as self-attention's.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from data_prep.vocab import OOV
from models.layers.embedding import known_index

BUCKETS = 32  # log2 buckets of steps and of seconds back: 2**31 s is 68 years
EDGES = [2**k - 1 for k in range(1, BUCKETS)]  # bucket k holds [2**k - 1, 2**(k + 1) - 1)


def log2_bucket(x: torch.Tensor) -> torch.Tensor:
    """floor(log2(1 + x)) of integers x >= 0 (negative x read as 0), at most BUCKETS - 1, as int64."""
    return torch.bucketize(x, torch.tensor(EDGES, dtype=x.dtype, device=x.device), right=True)


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
        items = known_index(items, len(table))
        queries = states if every_position else states[:, -1:]  # (B, Q, H)
        at = torch.arange(length - queries.shape[1], length, device=states.device)  # (Q,): their positions
        back = at[:, None] - torch.arange(length, device=states.device)  # (Q, L): steps before the query
        repeatable = (mask & (items > OOV))[:, None, :] & (back >= 0)  # (B, Q, L)
        energy = self.query(queries) @ self.key(states).transpose(1, 2) / math.sqrt(dim)
        energy = energy + self.steps(queries).gather(2, log2_bucket(back).expand(batch, -1, -1))
        seconds = gaps[:, None, :] - gaps[:, at, None]  # time_t - time_j
        energy = energy + self.seconds(queries).gather(2, log2_bucket(seconds))
        energy = energy.float().masked_fill(~repeatable, torch.finfo(torch.float32).min)
        attention = torch.softmax(energy, dim=2) * repeatable  # rows without a repeatable position: all 0
        # p_repeat of each window item, held at the item's first position in the row: no (N, V) table
        first = first_positions(items)[:, None, :].expand_as(attention)
        p_repeat = torch.zeros_like(attention).scatter_add_(2, first, attention)
        pick = mask if every_position else torch.ones_like(mask[:, -1:])  # the queries kept, as states[mask]
        s, p_repeat, has = queries[pick], p_repeat[pick], repeatable.any(2)[pick]  # (N, H), (N, L), (N,)
        window = items[:, None, :].expand_as(attention)[pick]  # (N, L)
        gate = self.gate(s).squeeze(-1).float()
        log_gate = torch.where(has, F.logsigmoid(gate), float("-inf"))
        log_rest = torch.where(has, F.logsigmoid(-gate), 0.0)
        # log((1 - P) p_explore): padding and unknown at -inf through the bias of the product with E
        never = torch.zeros(len(table), device=s.device, dtype=s.dtype)
        never[: OOV + 1] = float("-inf")
        log_explore = F.log_softmax(F.linear(s, table, never).float(), dim=1)
        scores = log_explore + log_rest[:, None]  # (N, V)
        # + log(1 + P p_repeat / ((1 - P) p_explore)) at each window item, once (at its first position)
        held = p_repeat > 0
        log_ratio = (log_gate[:, None] + torch.log(p_repeat.clamp_min(torch.finfo(torch.float32).tiny))
                     - log_rest[:, None] - log_explore.gather(1, window))  # not finite where not held (padding)
        lift = torch.where(held, F.softplus(torch.where(held, log_ratio, 0.0)), 0.0)
        return scores.scatter_add_(1, window, lift)


def first_positions(items: torch.Tensor) -> torch.Tensor:
    """(B, L): for each position, the first position of the row holding the same item."""
    ordered, order = items.sort(dim=1, stable=True)  # equal items keep their order
    starts = torch.ones_like(items, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    run = torch.cummax(torch.where(starts, torch.arange(items.shape[1], device=items.device), 0), dim=1).values
    return torch.empty_like(items).scatter_(1, order, order.gather(1, run))
