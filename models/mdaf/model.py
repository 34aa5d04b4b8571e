"""MDAF (Mamba-DCN with Adaptive Fusion): a static branch and a sequential branch, fused by a gate.

  h_static = LayerNorm(W_s StaticBranch(batch))        DCNv3 | DCNv2 over the static fields
  h_seq    = LayerNorm(W_q SequenceBranch(batch))      Mamba4Rec | transformer | GRU over the history
  h, g     = GatedFusion(h_static, h_seq)              the gate of models/mdaf/fusion.py
  logit    = MLP([h ; s])                              s: the window's match statistics, with
                                                       `match_statistics` (models/layers/match.py)
           (+ b + sum_f w_f[x_f] + v . s)              with `wide`: a logistic regression on the static
                                                       fields and the statistics beside the deep part,
                                                       as in Wide & Deep (Cheng et al. 2016)

Both branches are projected to one width H and normalised, so the gate weighs vectors of the same
scale. Variants by config alone (configs/model/):
  MDAF-Full        sequence.encoder: mamba        static.network: dcnv3   fusion: gate
  MDAF-Static      sequence.encoder: none         static.network: dcnv3
  MDAF-Sequential  sequence.encoder: mamba        static.network: none
  MDAF-BST         sequence.encoder: transformer  static.network: dcnv3   fusion: gate
`fusion: concat` replaces the gate by [h_static ; h_seq]. With one branch there is nothing to fuse
and the MLP reads that branch alone. The output carries, with DCNv3, its two heads' logits for
Tri-BCE, and the gate (B, H) for its diagnostics (models/mdaf/gate_diagnostics.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from common.errors import MDAFError
from models.baselines.logistic import Logistic, LogisticConfig
from models.layers.match import MatchFeatures
from models.layers.mlp import MLPConfig
from models.mdaf.fusion import GatedFusion
from models.mdaf.gate_diagnostics import GateDiagnostics
from models.mdaf.sequence_branch import SequenceBranch, SequenceConfig
from models.mdaf.static_branch import StaticBranch, StaticConfig
from models.output import ModelOutput

FUSIONS = ("gate", "concat")


@dataclass
class MDAFConfig:
    """sequence, static: the branches ('none' as encoder / network drops one).
    fusion: gate | concat.  hidden: the width H both branches are projected to.
    mlp: the head (models.layers.mlp.MLPConfig).  match_statistics: the head also reads the match statistics of the
    sequence's timeline (counts, shares and recency of the candidate's item / category / brand).
    wide: add a logistic regression on the static fields and those statistics to the logit
    (models/baselines/logistic.py)."""

    sequence: SequenceConfig = field(default_factory=SequenceConfig)
    static: StaticConfig = field(default_factory=StaticConfig)
    fusion: str = "gate"
    hidden: int = 128
    mlp: MLPConfig = field(default_factory=lambda: MLPConfig(hidden=[256, 128], dropout=0.3))
    match_statistics: bool = False
    wide: bool = False


def _projection(in_dim: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.LayerNorm(hidden))


class MDAF(nn.Module):
    def __init__(self, cfg: MDAFConfig, meta: dict):
        super().__init__()
        if cfg.fusion not in FUSIONS:
            raise MDAFError(f"model config (mdaf): key 'fusion' is {cfg.fusion!r}; expected one of {list(FUSIONS)}")
        use_seq, use_static = cfg.sequence.encoder != "none", cfg.static.network != "none"
        if not (use_seq or use_static):
            raise MDAFError("model config (mdaf): 'sequence.encoder' and 'static.network' are both 'none'; keep one branch")
        self.sequence = SequenceBranch(cfg.sequence, meta) if use_seq else None
        self.static = StaticBranch(cfg.static, meta) if use_static else None
        self.seq_proj = _projection(self.sequence.out_dim, cfg.hidden) if use_seq else None
        self.static_proj = _projection(self.static.out_dim, cfg.hidden) if use_static else None
        both = use_seq and use_static
        self.fusion = GatedFusion(cfg.hidden) if both and cfg.fusion == "gate" else None
        width = 2 * cfg.hidden if both and cfg.fusion == "concat" else cfg.hidden
        self.matches = MatchFeatures(meta, cfg.sequence.timeline) if cfg.match_statistics else None
        width += self.matches.n_statistics if self.matches is not None else 0
        self.mlp = cfg.mlp.build(width)
        self.wide = Logistic(LogisticConfig(timeline=cfg.sequence.timeline), meta) if cfg.wide else None

    def forward(self, batch: dict[str, torch.Tensor], sequence_state: torch.Tensor | None = None) -> ModelOutput:
        """sequence_state: the sequential branch's output from a served user state (models/ssm/streaming.py),
        used instead of reading the batch's window."""
        parts, aux = [], {}
        if self.static is not None:
            h_static, aux = self.static(batch)
            parts.append(self.static_proj(h_static))  # (B, H)
        if self.sequence is not None:
            seq = self.sequence(batch) if sequence_state is None else sequence_state
            parts.append(self.seq_proj(seq))  # (B, H)
        gate = None
        if self.fusion is not None:
            h, gate = self.fusion(*parts)
        else:
            h = torch.cat(parts, dim=-1)
        if self.matches is not None:
            h = torch.cat([h, self.matches.statistics(batch)], dim=-1)
        logit = self.mlp(h).squeeze(-1)
        if self.wide is not None:
            logit = logit + self.wide(batch).logit
        return ModelOutput(logit=logit, aux_logits=aux,
                           diagnostics={"gate": gate} if gate is not None else {})

    def stream_encoder(self) -> nn.Module:
        """The recurrence of a streaming variant (models/ssm/streaming.py); MDAFError for others."""
        if self.sequence is None or self.matches is not None:
            raise MDAFError("model config (mdaf): streaming needs the sequential branch and match_statistics false")
        return self.sequence.stream_encoder()

    def event_input(self, event: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.sequence.event_input(event)

    def diagnostics(self) -> GateDiagnostics | None:
        """What the report shows of this model: its gate, when it fuses two branches with one."""
        return GateDiagnostics() if self.fusion is not None else None
