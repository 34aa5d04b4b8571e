"""The sequential branch: one timeline window -> a vector, with a choice of encoder.

  x_t = LayerNorm(Dropout(W token_t [+ W_m m_t]))             tokens: models/layers/history.py
  o   = Encoder(x, mask)                                      (B, L, H); mamba | transformer | gru | hybrid
  q   = LayerNorm(W query)                                    the candidate, same projection
  h   = [o_{L-1} ; sum_t softmax_t(q' . o_t / sqrt(H)) o_t]   (B, 2H), last real position + target
                                                              attention over real positions
  h   = o_{L-1}                                               (B, H), with `target_attention: false`
m_t (with `match_features`) holds 1/0 indicators "behaviour t has the candidate's category / brand /
item" (models/layers/match.py, on raw ids, so new ids match too). Identity is what the click
signal of a history is about (DIN's premise: users click ads like what they just browsed), but a
dot product of randomly initialised id embeddings only learns it id by id, from that id's own
samples; the indicators give it for every id at once. The encoder then weighs matches by recency
and behaviour type: for Mamba, h_t = exp(dt A) h_{t-1} + dt B x_t is already a decaying sum of
such inputs.
Windows are left-padded, so o_{L-1} is the newest behaviour's output (zeros for an empty history).
W has no bias: the LayerNorm right after it would turn a bias into one direction shared by every
token, which drowns the small initial embeddings (std 0.01); without it, tokens differ from the
first step.
With `encoder: mamba` this is Mamba4Rec in the "v2" configuration (item 64 / cate 32 embeddings,
hidden 128, 2 layers, d_state 16, d_conv 4, expand 2, FFN 4x GELU). `transformer` is BST's encoder
(with `time_embedding: true`, its time-gap position embedding), `gru` a GRU over the real positions,
`hybrid` MambaRec's gated Mamba / causal attention layers (models/ssm/hybrid.py, gate `gate`).
Without target attention (and without match features, which read the candidate) the branch's
output is the encoder's state after the newest behaviour, which a served model can update one
event at a time (models/ssm/streaming.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from common.errors import MDAFError
from data_prep.loader import batch_key
from models.layers.config import EmbeddingConfig, sequence_embedding
from models.layers.embedding import FeatureEmbedding
from models.layers.gru import MaskedGRU
from models.layers.history import MAX_TIME_GAP_DAYS, HistoryTokens, history_spaces, n_time_buckets, time_gap_bucket
from models.layers.match import MatchFeatures
from models.layers.target_attention import TargetAttention
from models.layers.transformer import TransformerEncoder
from models.ssm.hybrid import HybridEncoder
from models.ssm.mamba4rec_layer import Mamba4RecEncoder

ENCODERS = ("mamba", "transformer", "gru", "hybrid")


@dataclass
class SequenceConfig:
    """encoder: mamba | transformer | gru | hybrid.  timeline: the timeline read.
    embedding: widths of the history/candidate tables.  hidden, n_layers, dropout: the encoder.
    d_state, d_conv, expand, scan_backend: the Mamba mixer.  ffn_mult: FFN width (mamba, transformer).
    n_heads, causal: the transformer (n_heads also the hybrid's).  gate: the hybrid's, sequence | position.
    target_attention: pool the encoder's outputs against the candidate.  time_embedding: add a time-gap bucket embedding to the tokens.
    match_features: add W_m m_t to each token, m_t the behaviour's match indicators with the candidate.
    token_fields: the timeline fields embedded into the tokens (None: all); [btag] with match_features gives
    id-free tokens (what matched, how, and with time_embedding when), which cannot memorise ids.
    """

    encoder: str = "mamba"
    timeline: str = "behavior"
    embedding: EmbeddingConfig = field(default_factory=sequence_embedding)
    hidden: int = 128
    n_layers: int = 2
    dropout: float = 0.2
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    scan_backend: str = "auto"
    ffn_mult: int = 4
    n_heads: int = 8
    causal: bool = False
    gate: str = "sequence"
    target_attention: bool = True
    time_embedding: bool = False
    match_features: bool = False
    token_fields: list[str] | None = None


def build_encoder(cfg: SequenceConfig) -> nn.Module:
    if cfg.encoder == "mamba":
        return Mamba4RecEncoder(
            cfg.hidden, cfg.n_layers, d_state=cfg.d_state, d_conv=cfg.d_conv, expand=cfg.expand,
            dropout=cfg.dropout, ffn_mult=cfg.ffn_mult, scan_backend=cfg.scan_backend,
        )
    if cfg.encoder == "transformer":
        if cfg.hidden % cfg.n_heads:
            raise MDAFError(f"model config: key 'hidden' ({cfg.hidden}) must be a multiple of 'n_heads' ({cfg.n_heads})")
        return TransformerEncoder(cfg.hidden, cfg.n_layers, cfg.n_heads, cfg.ffn_mult, cfg.dropout, cfg.causal)
    if cfg.encoder == "gru":
        return MaskedGRU(cfg.hidden, cfg.n_layers, cfg.dropout)
    if cfg.encoder == "hybrid":
        return HybridEncoder(cfg.hidden, cfg.n_layers, n_heads=cfg.n_heads, gate=cfg.gate, d_state=cfg.d_state,
                             d_conv=cfg.d_conv, expand=cfg.expand, dropout=cfg.dropout, ffn_mult=cfg.ffn_mult,
                             scan_backend=cfg.scan_backend)
    raise MDAFError(f"model config: key 'encoder' is {cfg.encoder!r}; expected one of {list(ENCODERS)}")


class SequenceBranch(nn.Module):
    """forward(batch) -> (B, out_dim), out_dim = 2 * hidden (hidden without target attention)."""

    def __init__(self, cfg: SequenceConfig, meta: dict):
        super().__init__()
        spaces = history_spaces(meta, cfg.timeline)
        spaces = [spaces[f] for f in cfg.token_fields or spaces if f in spaces]
        embedding = FeatureEmbedding(meta["vocab_sizes"], spaces, cfg.embedding.dim, cfg.embedding.dims)
        self.tokens = HistoryTokens(embedding, meta, cfg.timeline, cfg.token_fields, query=cfg.target_attention)
        self.project = nn.Linear(self.tokens.width, cfg.hidden, bias=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.norm = nn.LayerNorm(cfg.hidden)
        self.n_buckets = n_time_buckets(MAX_TIME_GAP_DAYS * 86400.0)
        self.time = nn.Embedding(self.n_buckets, cfg.hidden, padding_idx=0) if cfg.time_embedding else None
        self.matches = MatchFeatures(meta, cfg.timeline) if cfg.match_features else None
        self.match = nn.Linear(self.matches.n_fields, cfg.hidden, bias=False) if cfg.match_features else None
        self.encoder = build_encoder(cfg)
        self.attention = TargetAttention(cfg.hidden) if cfg.target_attention else None
        self.out_dim = (2 if cfg.target_attention else 1) * cfg.hidden

    def stream_encoder(self) -> Mamba4RecEncoder:
        """The encoder, when the branch's output is its state after the newest behaviour alone."""
        if not isinstance(self.encoder, Mamba4RecEncoder) or self.attention is not None or self.match is not None \
                or self.time is not None:
            raise MDAFError("model config: streaming needs sequence.encoder mamba with target_attention, "
                            "match_features and time_embedding all false (each reads the candidate)")
        return self.encoder

    def event_input(self, event: dict[str, torch.Tensor]) -> torch.Tensor:
        """One behaviour per row (the timeline's fields, each (B,)) -> the encoder's input (B, H)."""
        tokens = torch.cat([self.tokens.embedding(s, event[f]) for f, s in self.tokens.fields.items()], dim=-1)
        return self.norm(self.drop(self.project(tokens)))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens, query, mask = self.tokens(batch)  # (B, L, W), (B, W), (B, L)
        x = self.project(tokens)  # (B, L, H)
        if self.time is not None:
            x = x + self.time(time_gap_bucket(batch[batch_key(self.tokens.timeline, "time_gap")], mask, self.n_buckets))
        if self.match is not None:
            x = x + self.match(self.matches.indicators(batch))  # (B, L, H)
        x = self.norm(self.drop(x))
        out = self.encoder(x, mask)  # (B, L, H), 0 at pads
        if self.attention is None:
            return out[:, -1]
        q = self.norm(self.project(query))  # (B, H)
        pooled, _ = self.attention(q, out, mask)  # (B, H)
        return torch.cat([out[:, -1], pooled], dim=-1)
