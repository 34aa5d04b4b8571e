"""Mamba4Rec (Liu et al. 2024, "Mamba4Rec: Towards Efficient Sequential Recommendation with
Selective State Space Models") as its code defines it:

    x = LayerNorm(Dropout(E[items]))
    per layer: h = LayerNorm(Dropout(Mamba(x)) [+ x])           the residual only with > 1 layer
               x = LayerNorm(h + Dropout(W_2 Dropout(GELU(W_1 h))))        FFN, 4x
    scores = x_{L-1} E^T, cross-entropy over all items (models/next_item/base.py)

Published settings (its config.yaml): hidden 64, d_state 32, d_conv 4, expand 2, 1 layer,
dropout 0.2, max length 200 (ML-1M; 50 and dropout 0.4 for the Amazon sets).
Where the code and the paper differ, the code is followed: with a single layer the paper's
residual around the mixer is absent. One departure: the code re-initialises every Linear layer
after building the model (RecBole's N(0, 0.02^2)), which also resets Mamba's dt projection
(initial dt about 0.69 instead of log-uniform in [0.001, 0.1]); here the mixer keeps mamba-ssm's
initialisation and the FFN torch's (`init: recbole` with dt_min = dt_max = ln 2 is the code's).
The mixer is the one MDAF uses (models/ssm/mamba.py), with its scan back-ends.

Switches (docs/next_item_investigation.md measures each; every default is the published model):
- residual: the residual around the mixer, x + Dropout(Mamba(x)); null: as the code, only with
  more than one layer;
- mixer_norm: the LayerNorm right after the mixer (false: the FFN reads its input unnormalised);
- dt_min, dt_max: the mixer's initial dt, log-uniform in [dt_min, dt_max]; dt_min = dt_max =
  ln 2 = 0.6931 with init recbole is the authors' code's initialisation (its dt bias reset to 0);
- init: mamba (torch's Linear and mamba-ssm's initialisation) | recbole (every Linear weight
  N(0, 0.02^2) and bias 0, RecBole's `_init_weights`, which the authors' code applies; the dt
  bias, set by dt_min and dt_max, is kept);
- position: none | learned | gap, an embedding added to E[item] before the dropout: `learned`,
  P[t] with t counted from the oldest item of the window (SASRec's); `gap`, the time since the
  event before, in the log2-minute buckets of models/layers/history.py (BST's time-gap
  embedding, Chen et al. 2019, of the gap between consecutive events so it stays causal; 0 for
  a window's first event).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from common.errors import MDAFError
from data_prep.loader import batch_key
from models.layers.history import MAX_TIME_GAP_DAYS, n_time_buckets, time_gap_bucket
from models.next_item.base import INIT_STD, ITEM, NextItemModel
from models.output import ModelOutput
from models.ssm.mamba4rec_layer import Mamba4RecEncoder

INITS = ("mamba", "recbole")
POSITIONS = ("none", "learned", "gap")


@dataclass
class Mamba4RecConfig:
    """The published model, and the switches of the module doc; max_len: the positions a learned
    position table holds (at least the training window L)."""

    timeline: str = "history"
    hidden: int = 64
    n_layers: int = 1
    d_state: int = 32
    d_conv: int = 4
    expand: int = 2
    dropout: float = 0.2
    scan_backend: str = "auto"
    head: str = "dot"  # dot | repeat_explore (models/next_item/base.py)
    residual: bool | None = None
    mixer_norm: bool = True
    dt_min: float = 0.001
    dt_max: float = 0.1
    init: str = "mamba"
    position: str = "none"
    max_len: int = 200

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise MDAFError(f"model config (mamba4rec): key 'init' is {self.init!r}; expected one of {list(INITS)}")
        if self.position not in POSITIONS:
            raise MDAFError(f"model config (mamba4rec): key 'position' is {self.position!r}; expected one of "
                            f"{list(POSITIONS)}")
        if not 0 < self.dt_min <= self.dt_max:
            raise MDAFError(f"model config (mamba4rec): keys 'dt_min' and 'dt_max' must satisfy 0 < dt_min <= dt_max, "
                            f"got {self.dt_min} and {self.dt_max}")


class Mamba4Rec(NextItemModel):
    def __init__(self, cfg: Mamba4RecConfig, meta: dict):
        super().__init__()
        self.timeline = cfg.timeline
        self.embedding = self.item_embedding(meta, cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)
        self.norm = nn.LayerNorm(cfg.hidden)
        self.position_kind = cfg.position
        self.n_buckets = n_time_buckets(MAX_TIME_GAP_DAYS * 86400.0)
        rows = {"none": 0, "learned": cfg.max_len, "gap": self.n_buckets}[cfg.position]
        self.position = nn.Embedding(rows, cfg.hidden, padding_idx=0 if cfg.position == "gap" else None) if rows else None
        residual = cfg.n_layers > 1 if cfg.residual is None else cfg.residual
        self.encoder = Mamba4RecEncoder(cfg.hidden, cfg.n_layers, d_state=cfg.d_state, d_conv=cfg.d_conv,
                                        expand=cfg.expand, dropout=cfg.dropout, scan_backend=cfg.scan_backend,
                                        residual=residual, mixer_norm=cfg.mixer_norm, dt_min=cfg.dt_min,
                                        dt_max=cfg.dt_max)
        self.use_head(cfg.head, cfg.hidden)
        with torch.no_grad():
            if self.position is not None:
                self.position.weight.normal_(std=INIT_STD)
                if cfg.position == "gap":
                    self.position.weight[0].zero_()
            if cfg.init == "recbole":
                for module in self.encoder.modules():
                    if isinstance(module, nn.Linear):
                        module.weight.normal_(std=INIT_STD)
                        if module.bias is not None and not getattr(module.bias, "_no_reinit", False):
                            module.bias.zero_()

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        """As NextItemModel.forward, with the window's time gaps for position 'gap'."""
        items, mask = batch[batch_key(self.timeline, ITEM)], batch[batch_key(self.timeline, "mask")]
        states = self.encoder(self.inputs(items, mask, batch.get(batch_key(self.timeline, "time_gap"))), mask)
        return ModelOutput(logit=self.head_scores(batch, states), states=states)

    def encode(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.inputs(items, mask), mask)

    def inputs(self, items: torch.Tensor, mask: torch.Tensor, ages: torch.Tensor | None = None) -> torch.Tensor:
        """The encoder's input (B, L, H): LayerNorm(Dropout(E[item] [+ position])); `ages` (B, L):
        seconds from each event to the prediction (the batch's time_gap), needed by position 'gap'."""
        x = self.embedding(ITEM, items)
        if self.position_kind == "learned":
            length = items.shape[1]
            if length > self.position.num_embeddings:
                raise MDAFError(f"model config (mamba4rec): the window holds {length} items but 'max_len' is "
                                f"{self.position.num_embeddings}")
            n_pad = length - mask.sum(dim=1, keepdim=True)  # (B, 1)
            x = x + self.position((torch.arange(length, device=items.device)[None, :] - n_pad).clamp_min(0))
        elif self.position_kind == "gap":
            if ages is None:
                raise MDAFError(f"model config (mamba4rec): position 'gap' needs the batch key "
                                f"{batch_key(self.timeline, 'time_gap')!r}")
            since = torch.zeros_like(ages)
            since[:, 1:] = ages[:, :-1] - ages[:, 1:]  # seconds from the event before to this one
            has_before = torch.zeros_like(mask)
            has_before[:, 1:] = mask[:, :-1]
            x = x + self.position(time_gap_bucket(since, mask & has_before, self.n_buckets))
        return self.norm(self.drop(x))

    def event_input(self, event: dict[str, torch.Tensor]) -> torch.Tensor:
        """The encoder's input for one event's items (B,): LayerNorm(Dropout(E[item]))."""
        if self.position is not None:
            raise MDAFError(f"model config (mamba4rec): streaming needs position 'none' (got {self.position_kind!r})")
        return self.norm(self.drop(self.embedding(ITEM, event[ITEM])))

    def stream_encoder(self) -> Mamba4RecEncoder:
        """The recurrence a served model steps through (models/ssm/streaming.py); none with the
        repeat-explore head, which reads the state of every position, not only the newest."""
        if self.repeat_explore is not None:
            raise MDAFError("model config (mamba4rec): streaming needs head 'dot' (the repeat-explore head reads "
                            "the states of the whole window)")
        return self.encoder
