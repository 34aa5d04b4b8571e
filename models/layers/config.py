"""Config pieces several models share."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EmbeddingConfig:
    """Embedding widths: `dim` for every vocabulary space, `dims` overriding it per space."""

    dim: int = 16
    dims: dict[str, int] = field(default_factory=dict)


def sequence_embedding() -> EmbeddingConfig:
    """The history/candidate widths of Mamba4Rec v2, used by every sequential model alike:
    item 64, category 32, brand 32, other spaces (behaviour type) 16."""
    return EmbeddingConfig(dim=16, dims={"item": 64, "cate": 32, "brand": 32})
