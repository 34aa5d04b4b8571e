"""Post-LN transformer encoder over a masked, left-padded sequence (Vaswani et al. 2017, as used by
BST, Chen et al. 2019, Sec. 2.3).

Each layer, for x (B, L, H):
  a = MultiHead(x) = concat_h softmax(Q_h K_h^T / sqrt(d) + M) V_h  W_O,   d = H / heads
  x = LayerNorm(x + Dropout(a))
  x = LayerNorm(x + Dropout(W_2 Dropout(act(W_1 x + b_1)) + b_2))        W_1: H -> ffn_mult * H
with M[t, s] = 0 where key s is visible to query t and -inf elsewhere:
  visible(t, s) = (mask_s and (s <= t when causal)) or s == t.

Why the diagonal is always visible. For a real query t it changes nothing: its own key is real and
s = t is causal. For a pad query it is the only guaranteed visible key, so no softmax row is all
-inf: a sample with no history at all, or with causal attention the pads before the first real
behaviour, still gives finite outputs and gradients, with no NaN-then-replace step. (torch's CPU
math kernel happens to return 0 for an all-masked row; other SDPA back-ends and versions need not,
so the encoder does not rely on it.) Real queries never see a pad key, so their outputs do not
depend on how much left padding precedes them. Outputs at pads are set to 0, so a sample with no
history encodes to all zeros.

The FFN uses GELU by default (as Mamba4Rec's FFN); BST's paper uses LeakyReLU, available as
`activation="leaky_relu"`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.layers.feed_forward import FFN_ACTIVATIONS, FeedForward



def visible_keys(mask: torch.Tensor, causal: bool) -> torch.Tensor:
    """(B, L) bool mask, True at real positions -> (B, L, L) bool, [b, t, s] True where query t may
    attend to key s (see the module doc: real keys, s <= t when causal, and always s == t)."""
    length = mask.shape[1]
    eye = torch.eye(length, dtype=torch.bool, device=mask.device)  # (L, L)
    visible = mask[:, None, :].expand(-1, length, -1)  # (B, L, L): key s is real
    if causal:
        visible = visible & torch.ones_like(eye).tril()
    return visible | eye


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention: forward(x (B, L, H), visible (B, L, L)) -> (B, L, H)."""

    def __init__(self, hidden: int, n_heads: int, dropout: float):
        super().__init__()
        if hidden % n_heads:
            raise ValueError(f"hidden {hidden} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.dropout = dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        b, length, hidden = x.shape
        qkv = self.qkv(x).view(b, length, 3, self.n_heads, hidden // self.n_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, L, d)
        p = self.dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=visible[:, None], dropout_p=p)  # (B, heads, L, d)
        return self.out(a.transpose(1, 2).reshape(b, length, hidden))


class TransformerLayer(nn.Module):
    """One post-LN layer: attention and FFN sub-layers, each with dropout, residual and LayerNorm."""

    def __init__(self, hidden: int, n_heads: int, ffn_mult: int, dropout: float, activation: str):
        super().__init__()
        self.attention = SelfAttention(hidden, n_heads, dropout)
        self.norm1 = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)
        self.ffn = FeedForward(hidden, ffn_mult, dropout, activation)

    def forward(self, x: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.attention(x, visible)))  # (B, L, H)
        return self.ffn(x)


class TransformerEncoder(nn.Module):
    """A stack of `n_layers` post-LN transformer layers; no embeddings inside.

    forward(x (B, L, H), mask (B, L) bool, True at real positions) -> (B, L, H), 0 at pads.

    Args:
        hidden: model width H (divisible by n_heads).
        n_layers: number of layers.
        n_heads: attention heads.
        ffn_mult: FFN inner width as a multiple of H.
        dropout: on attention weights, after each sub-layer and inside the FFN.
        causal: position t attends only to positions <= t.
        activation: FFN activation, one of FFN_ACTIVATIONS.
    """

    def __init__(
        self, hidden: int, n_layers: int = 1, n_heads: int = 8, ffn_mult: int = 4, dropout: float = 0.1,
        causal: bool = False, activation: str = "gelu",
    ):
        super().__init__()
        if activation not in FFN_ACTIVATIONS:
            raise ValueError(f"activation {activation!r}: expected one of {sorted(FFN_ACTIVATIONS)}")
        self.causal = causal
        self.layers = nn.ModuleList(
            TransformerLayer(hidden, n_heads, ffn_mult, dropout, activation) for _ in range(n_layers)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        visible = visible_keys(mask, self.causal)  # (B, L, L)
        for layer in self.layers:
            x = layer(x, visible)
        return x * mask[..., None]
