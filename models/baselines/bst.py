"""BST: Behavior Sequence Transformer (Chen et al. 2019, "Behavior Sequence Transformer for
E-commerce Recommendation in Alibaba").

  s_t    = W [e(F_1[t]); ...; e(F_k[t])] + b + p(bucket(gap_t))      t = 1..L   (history tokens)
  s_L+1  = W [e(c_1); ...; e(c_k)] + b + p(target)                               (the candidate, last)
  h      = Transformer(s_1 .. s_L+1)[L+1]                             output at the target position
  logit  = MLP([h; e(static field_1); ...; e(static field_m)])

- Tokens come from `HistoryTokens`: the candidate's query has a zero block where it has no field
  (a behaviour type), and one Linear W projects history and candidate alike.
- Position (Sec. 2.2): the paper's pos(v_t) = t(target) - t(v_t), bucketed by `time_gap_bucket`
  (log2 minutes, 0 at pads). The target gets its own bucket, one past the history's, rather than
  the smallest history bucket: its "gap" is 0 by definition, not a behaviour seen seconds ago, and
  a bucket of its own marks it as the target to every head.
- Attention is full (bidirectional) by default, as in the paper. With the target appended last it
  sees the whole history under a causal mask too, so with one layer `causal` does not change the
  logit at all; with more layers it restricts history tokens to older context.
- One FeatureEmbedding serves the history, the candidate and the static fields: the candidate's
  cate in its token and in the static part is one vector, trained by both paths, and no table is
  duplicated. Its widths are `embedding` (default item 64, cate 32, brand 32, others 16).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from common.errors import MDAFError
from data_prep.loader import batch_key
from models.layers.config import EmbeddingConfig, sequence_embedding
from models.layers.embedding import FeatureEmbedding, StaticFields, field_spaces
from models.layers.history import MAX_TIME_GAP_DAYS, HistoryTokens, history_spaces, n_time_buckets, time_gap_bucket
from models.layers.match import MatchFeatures
from models.layers.mlp import MLPConfig
from models.layers.feed_forward import FFN_ACTIVATIONS
from models.layers.transformer import TransformerEncoder
from models.output import ModelOutput


@dataclass
class BSTConfig:
    """timeline: which timeline forms the sequence.
    embedding: widths of every table (history, candidate and static fields share them).
    fields: static fields for the MLP; None for all.
    hidden: transformer width (tokens are projected to it).
    n_layers, n_heads, ffn_mult, ffn_activation: the transformer (the paper: 1 layer, 8 heads,
        LeakyReLU).
    dropout: inside the transformer.
    causal: causal attention instead of full (see the module doc).
    max_time_gap_days: gaps beyond this share the last time bucket.
    mlp: the MLP on [target output; static fields] (models.layers.mlp.MLPConfig).
    match_features: each history token also gets W_m m_t, its match indicators with the
        candidate, and the MLP the window's match statistics (models/layers/match.py).
    """

    timeline: str = "behavior"
    embedding: EmbeddingConfig = field(default_factory=sequence_embedding)
    fields: list[str] | None = None
    hidden: int = 128
    n_layers: int = 1
    n_heads: int = 8
    ffn_mult: int = 4
    ffn_activation: str = "leaky_relu"
    dropout: float = 0.1
    causal: bool = False
    max_time_gap_days: float = MAX_TIME_GAP_DAYS
    mlp: MLPConfig = field(default_factory=lambda: MLPConfig(hidden=[1024, 512, 256], dropout=0.3))
    match_features: bool = False


def check_config(cfg: BSTConfig) -> None:
    """Raise MDAFError naming the key when the transformer or the MLP cannot be built from `cfg`."""
    where = "model config (bst)"
    if cfg.n_heads < 1 or cfg.hidden % cfg.n_heads:
        raise MDAFError(f"{where}: key 'hidden' ({cfg.hidden}) must be a multiple of 'n_heads' ({cfg.n_heads})")
    for key, value, allowed in (
        ("ffn_activation", cfg.ffn_activation, FFN_ACTIVATIONS),
    ):
        if value not in allowed:
            raise MDAFError(f"{where}: key {key!r} is {value!r}; expected one of {sorted(allowed)}")


class BST(nn.Module):
    """forward(batch) -> ModelOutput with logit (B,)."""

    def __init__(self, cfg: BSTConfig, meta: dict):
        super().__init__()
        check_config(cfg)
        statics = field_spaces(meta, cfg.fields)
        spaces = [*history_spaces(meta, cfg.timeline).values(), *statics.values()]
        embedding = FeatureEmbedding(meta["vocab_sizes"], spaces, cfg.embedding.dim, cfg.embedding.dims)
        self.tokens = HistoryTokens(embedding, meta, cfg.timeline)
        self.static = StaticFields(embedding, statics)
        self.project = nn.Linear(self.tokens.width, cfg.hidden)
        self.n_buckets = n_time_buckets(cfg.max_time_gap_days * 86400.0)
        self.position = nn.Embedding(self.n_buckets + 1, cfg.hidden, padding_idx=0)  # + the target's bucket
        nn.init.normal_(self.position.weight, std=0.01)  # the feature tables' scale, not N(0, 1)
        with torch.no_grad():
            self.position.weight[0].zero_()
        self.encoder = TransformerEncoder(
            cfg.hidden, cfg.n_layers, cfg.n_heads, cfg.ffn_mult, cfg.dropout, cfg.causal, cfg.ffn_activation
        )
        self.matches = MatchFeatures(meta, cfg.timeline) if cfg.match_features else None
        self.match = nn.Linear(self.matches.n_fields, cfg.hidden, bias=False) if self.matches else None
        n_statistics = self.matches.n_statistics if self.matches else 0
        self.mlp = cfg.mlp.build(cfg.hidden + self.static.width + n_statistics)

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        tokens, query, mask = self.tokens(batch)  # (B, L, W), (B, W), (B, L)
        gap = batch[batch_key(self.tokens.timeline, "time_gap")]  # (B, L) seconds
        bucket = time_gap_bucket(gap, mask, self.n_buckets)  # (B, L), 0 at pads
        target = bucket.new_full((bucket.shape[0], 1), self.n_buckets)  # (B, 1)
        x = self.project(torch.cat([tokens, query[:, None]], dim=1))  # (B, L+1, H)
        x = x + self.position(torch.cat([bucket, target], dim=1))
        features = []
        if self.matches is not None:
            indicators = self.matches.indicators(batch)  # (B, L, k)
            x = x + nn.functional.pad(self.match(indicators), (0, 0, 0, 1))  # the target token gets none
            features.append(self.matches.statistics(batch, indicators))
        full_mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)  # (B, L+1)
        h = self.encoder(x, full_mask)[:, -1]  # (B, H)
        return ModelOutput(logit=self.mlp(torch.cat([h, self.static.flat(batch), *features], dim=-1)).squeeze(-1))
