"""DIN: Deep Interest Network (Zhou et al. 2018, "Deep Interest Network for Click-Through Rate
Prediction").

  w_t   = a(q, k_t) = MLP_a([q; k_t; q - k_t; q * k_t])  at real t, 0 at pads    (the activation unit)
  v_u   = sum_t w_t k_t                                                         (no softmax, Sec. 4.3)
  logit = MLP([v_u; q; e(static field_1); ...; e(static field_m)])

- q and k_t are `HistoryTokens`' candidate query and history tokens, in one space. The activation
  unit reads the full token, not only the blocks the candidate shares: q has zeros in the blocks
  it lacks (a behaviour type), so q - k_t and q * k_t add nothing there, but k_t itself lets the
  weight depend on the behaviour type (a purchase of the candidate's category may count more than a
  view). The cost is a few always-zero inputs.
- Without softmax the weights keep the intensity of the user's interest: many relevant behaviours
  give a larger v_u than one. Pads get weight 0, so a sample with no history pools to zeros.
- The candidate q is concatenated explicitly, so the MLP sees it whatever `fields` holds; with all
  static fields its blocks repeat the candidate's cate and brand embeddings, which is harmless.
- Activation PReLU, in the activation unit and the MLP: the paper's Dice adapts its rectifier to
  batch statistics, which in the activation unit would mix in pad positions and tie a sample's
  score to the rest of its batch; PReLU, which the paper also uses, has neither problem.
- One FeatureEmbedding serves history, candidate and static fields (shared tables, as in BST).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from common.errors import MDAFError
from models.layers.config import EmbeddingConfig, sequence_embedding
from models.layers.embedding import FeatureEmbedding, StaticFields, field_spaces
from models.layers.history import HistoryTokens, history_spaces
from models.layers.match import MatchFeatures
from models.layers.mlp import MLPConfig
from models.output import ModelOutput


@dataclass
class DINConfig:
    """timeline: which timeline is the user's behaviour history.
    embedding: widths of every table (history, candidate and static fields share them).
    fields: static fields for the MLP; None for all.
    attention: the activation unit's MLP (the paper: 80, 40; no dropout).
    mlp: the final MLP (the paper: 200, 80).
    match_features: each behaviour's match indicators with the candidate enter the activation
        unit, and the window's match statistics the final MLP (models/layers/match.py).
    """

    timeline: str = "behavior"
    embedding: EmbeddingConfig = field(default_factory=sequence_embedding)
    fields: list[str] | None = None
    attention: MLPConfig = field(default_factory=lambda: MLPConfig(hidden=[80, 40], dropout=0.0, activation="prelu"))
    mlp: MLPConfig = field(default_factory=lambda: MLPConfig(hidden=[200, 80], dropout=0.3, activation="prelu"))
    match_features: bool = False


class ActivationUnit(nn.Module):
    """DIN's local activation unit and weighted-sum pooling.

    forward(query (B, W), keys (B, L, W), mask (B, L) bool, extra (B, L, E) or None)
    -> (pooled (B, W), weights (B, L), 0 at pads); `extra` (per-position inputs such as match
    indicators) joins the unit's input [q; k; q - k; q * k].
    """

    def __init__(self, width: int, cfg: MLPConfig, extra: int = 0):
        super().__init__()
        self.mlp = cfg.build(4 * width + extra)

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor, extra: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        q = query[:, None].expand_as(keys)  # (B, L, W)
        inputs = [q, keys, q - keys, q * keys] + ([extra] if extra is not None else [])
        scores = self.mlp(torch.cat(inputs, dim=-1)).squeeze(-1)  # (B, L)
        weights = scores.masked_fill(~mask, 0.0)
        return torch.einsum("bl,blw->bw", weights, keys), weights


class DIN(nn.Module):
    """forward(batch) -> ModelOutput with logit (B,)."""

    def __init__(self, cfg: DINConfig, meta: dict):
        super().__init__()
        statics = field_spaces(meta, cfg.fields)
        spaces = [*history_spaces(meta, cfg.timeline).values(), *statics.values()]
        embedding = FeatureEmbedding(meta["vocab_sizes"], spaces, cfg.embedding.dim, cfg.embedding.dims)
        self.tokens = HistoryTokens(embedding, meta, cfg.timeline)
        self.static = StaticFields(embedding, statics)
        self.matches = MatchFeatures(meta, cfg.timeline) if cfg.match_features else None
        n_indicators, n_statistics = (self.matches.n_fields, self.matches.n_statistics) if self.matches else (0, 0)
        self.attention = ActivationUnit(self.tokens.width, cfg.attention, n_indicators)
        self.mlp = cfg.mlp.build(2 * self.tokens.width + self.static.width + n_statistics)

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        tokens, query, mask = self.tokens(batch)  # (B, L, W), (B, W), (B, L)
        indicators = self.matches.indicators(batch) if self.matches is not None else None  # (B, L, k)
        interest, _ = self.attention(query, tokens, mask, indicators)  # (B, W)
        features = [interest, query, self.static.flat(batch)]
        if self.matches is not None:
            features.append(self.matches.statistics(batch, indicators))
        return ModelOutput(logit=self.mlp(torch.cat(features, dim=-1)).squeeze(-1))
