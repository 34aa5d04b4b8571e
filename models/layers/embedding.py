"""The embedding layer every model shares: one table per vocabulary space.

A field is looked up in the table of its vocabulary space (meta.json `static_fields` and
`timelines.<name>.fields`), so a candidate's `cate` and the history's `cate` share one table: a
model that compares the target with the history compares vectors from the same space. Index 0 is
padding and embeds to zeros (its row is never trained); index 1 is out-of-vocabulary, and so is
any index beyond a table: a table cut to the ids seen at least k times in train
(data_prep.vocab.with_min_count) reads the rarer ids as unknown.

Tables are initialised N(0, 0.01^2), the usual choice for CTR embeddings (FuxiCTR's default).
"""
from __future__ import annotations

import torch
from torch import nn

from common.errors import MDAFError
from data_prep.vocab import OOV


def known_index(index: torch.Tensor, size: int) -> torch.Tensor:
    """`index` with the indices beyond a table of `size` rows (a min count cut them) read as out of
    vocabulary, as every model reads them."""
    return index.masked_fill(index >= size, OOV)


class FeatureEmbedding(nn.Module):
    """Embeddings for the vocabulary spaces named in `spaces`.

    Args:
        vocab_sizes: space -> vocabulary size (meta.json `vocab_sizes`).
        spaces: the spaces this layer needs a table for.
        dim: the default embedding width.
        dims: per-space widths overriding `dim` (e.g. item 64, cate 32).
    """

    def __init__(self, vocab_sizes: dict[str, int], spaces: list[str], dim: int, dims: dict[str, int] | None = None):
        super().__init__()
        dims = dict(dims or {})
        missing = sorted({s for s in spaces if s not in vocab_sizes})
        if missing:
            raise MDAFError(f"embedding: no vocabulary for space(s) {missing}; meta.json has {sorted(vocab_sizes)}")
        self.dims = {s: int(dims.get(s, dim)) for s in dict.fromkeys(spaces)}
        self.tables = nn.ModuleDict(
            {s: nn.Embedding(int(vocab_sizes[s]), d, padding_idx=0) for s, d in self.dims.items()}
        )
        for table in self.tables.values():
            nn.init.normal_(table.weight, std=0.01)
            with torch.no_grad():
                table.weight[0].zero_()

    def forward(self, space: str, index: torch.Tensor) -> torch.Tensor:
        """(...) int64 indices of `space` -> (..., dims[space])."""
        table = self.tables[space]
        return table(known_index(index, table.num_embeddings))


def field_spaces(meta: dict, fields: list[str] | None = None) -> dict[str, str]:
    """Static field -> space for `fields` (all static fields when None), checked against meta."""
    spaces = dict(meta["static_fields"])
    if fields is None:
        return spaces
    unknown = [f for f in fields if f not in spaces]
    if unknown:
        raise MDAFError(f"model config: static field(s) {unknown} not in the dataset; it has {sorted(spaces)}")
    return {f: spaces[f] for f in fields}


class StaticFields(nn.Module):
    """Embeds a batch's static fields: `forward(batch)` -> (B, F, d) when all widths are equal,
    `flat(batch)` -> (B, sum of widths).

    Args:
        embedding: the shared FeatureEmbedding.
        fields: static field -> vocabulary space.
    """

    def __init__(self, embedding: FeatureEmbedding, fields: dict[str, str]):
        super().__init__()
        self.embedding = embedding
        self.fields = dict(fields)
        self.width = sum(embedding.dims[s] for s in self.fields.values())

    def embed(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """One (B, d_f) tensor per field, in `fields` order."""
        return [self.embedding(space, batch[field]) for field, space in self.fields.items()]

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack(self.embed(batch), dim=1)

    def flat(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat(self.embed(batch), dim=-1)
