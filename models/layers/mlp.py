"""The multi-layer perceptron every model ends in: [Linear -> activation -> dropout] * k (-> Linear)."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from common.errors import MDAFError

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "prelu": nn.PReLU}


@dataclass
class MLPConfig:
    """hidden: widths of the hidden layers; dropout: after each hidden activation; activation: one
    of ACTIVATIONS; batch_norm: BatchNorm1d before each activation. The one config of every MLP
    (a model's head, a DNN part), nested in the models' configs."""

    hidden: list[int] = field(default_factory=lambda: [1024, 512, 256])
    dropout: float = 0.1
    activation: str = "relu"
    batch_norm: bool = False

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise MDAFError(f"model config: key 'activation' is {self.activation!r}; expected one of {sorted(ACTIVATIONS)}")

    def build(self, in_dim: int, out_dim: int | None = 1) -> "MLP":
        return MLP(in_dim, self.hidden, out_dim, self.dropout, self.activation, self.batch_norm)


class MLP(nn.Sequential):
    """Args:
        in_dim: input width.
        hidden: widths of the hidden layers (e.g. [256, 128, 64]).
        out_dim: width of a final linear layer with no activation; None for none.
        dropout: dropout after each hidden activation.
        activation: one of ACTIVATIONS.
        batch_norm: BatchNorm1d before each activation.
    """

    def __init__(
        self, in_dim: int, hidden: list[int], out_dim: int | None = 1, dropout: float = 0.0,
        activation: str = "relu", batch_norm: bool = False,
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r}: expected one of {sorted(ACTIVATIONS)}")
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            layers += [ACTIVATIONS[activation](), nn.Dropout(dropout)]
            width = h
        if out_dim is not None:
            layers.append(nn.Linear(width, out_dim))
            width = out_dim
        super().__init__(*layers)
        self.out_dim = width
