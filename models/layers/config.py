"""Config pieces several models share."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EmbeddingConfig:
    """Embedding widths: `dim` for every vocabulary space, `dims` overriding it per space."""

    dim: int = 16
    dims: dict[str, int] = field(default_factory=dict)
