"""AutoInt+: multi-head self-attention over the field embeddings, plus a parallel DNN."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from common.errors import MDAFError
from models.layers.config import EmbeddingConfig
from models.layers.field_inputs import FieldInputs
from models.layers.mlp import MLPConfig
from models.output import ModelOutput


class InteractingLayer(nn.Module):
    """One AutoInt interacting layer over F fields; forward(e (B, F, d_in)) -> (B, F, heads * d_head).

    For each head h: alpha_{m,k} = softmax_k(<W_Q e_m, W_K e_k>) (optionally / sqrt(d_head)),
    e~_m = sum_k alpha_{m,k} W_V e_k; then e_m' = ReLU([e~_m^1; ...; e~_m^H] + W_res e_m).
    """

    def __init__(self, in_dim: int, heads: int, head_dim: int, dropout: float, scale: bool):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        width = heads * head_dim
        self.qkv = nn.Linear(in_dim, 3 * width, bias=False)
        self.residual = nn.Linear(in_dim, width, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.scale = head_dim ** -0.5 if scale else 1.0

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        b, f, _ = e.shape
        q, k, v = self.qkv(e).view(b, f, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (B, H, F, d_h)
        alpha = torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1)  # (B, H, F, F)
        mixed = (self.dropout(alpha) @ v).transpose(1, 2).reshape(b, f, -1)  # (B, F, H*d_h)
        return torch.relu(mixed + self.residual(e))


@dataclass
class AutoIntPlusConfig:
    """fields: static fields (None = all); timeline: mean-pooled into extra fields (None = off);
    match_features: its match statistics with the candidate as dense inputs of the DNN.
    Every field has width embedding.dim (per-space `dims` are refused: attention needs one width).
    attention_layers, heads, head_dim, attention_dropout, scale: the interacting layers;
    dnn: the parallel DNN (models.layers.mlp.MLPConfig)."""

    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    fields: list[str] | None = None
    timeline: str | None = "behavior"
    match_features: bool = False
    attention_layers: int = 3
    heads: int = 2
    head_dim: int = 16
    attention_dropout: float = 0.0
    scale: bool = False
    dnn: MLPConfig = field(default_factory=MLPConfig)

class AutoIntPlus(nn.Module):
    """logit = w^T [e_1'; ...; e_F'] + DNN([e_1; ...; e_F]), e' after the interacting layers.

    Source: Song et al. 2019, "AutoInt: Automatic Feature Interaction Learning via Self-Attentive
    Neural Networks" (CIKM 2019): multi-head self-attention across fields with a residual
    connection, stacked; AutoInt+ adds a DNN on the same embeddings and sums the two logits.
    """

    def __init__(self, cfg: AutoIntPlusConfig, meta: dict):
        super().__init__()
        if cfg.embedding.dims:
            raise MDAFError(
                f"model config (autoint): key 'embedding.dims' is {cfg.embedding.dims}; AutoInt attends "
                "across fields, so all need one width: set embedding.dim only"
            )
        self.inputs = FieldInputs(meta, cfg.embedding, cfg.fields, cfg.timeline, cfg.match_features)
        width = cfg.heads * cfg.head_dim
        self.attention = nn.Sequential(*(
            InteractingLayer(cfg.embedding.dim if i == 0 else width, cfg.heads, cfg.head_dim,
                             cfg.attention_dropout, cfg.scale)
            for i in range(cfg.attention_layers)
        ))
        out_width = width if cfg.attention_layers else cfg.embedding.dim
        self.attention_head = nn.Linear(self.inputs.n_fields * out_width, 1)
        self.dnn = cfg.dnn.build(self.inputs.width)

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        e = self.inputs(batch)  # (B, F, d)
        attended = self.attention(e).flatten(1)  # (B, F * H * d_h)
        logit = self.attention_head(attended) + self.dnn(self.inputs.flat(batch))  # (B, 1): fields (+ statistics)
        return ModelOutput(logit=logit.squeeze(-1))
