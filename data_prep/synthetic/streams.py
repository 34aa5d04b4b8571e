"""Random streams: one per purpose and per fixed-size user block, so output ignores chunking.

Every random draw comes from `stream(seed, purpose, index)`, a PCG64 generator seeded by
`SeedSequence(seed, spawn_key=(purpose, index))`. Users are simulated in blocks of `BLOCK_USERS`;
block b always uses the stream (purpose, b) whatever the chunk size, so writing 1 or 50 blocks
per chunk yields byte-identical files.
"""
from __future__ import annotations

import numpy as np

BLOCK_USERS = 1000

# purposes
CATALOG = 0        # categories, brands (shared latent world)
TAOBAO_CATALOG = 1  # ads and the Tianchi-56 id spaces
UB_CATALOG = 2      # items and the Tianchi-649 id spaces
TAOBAO_BLOCK = 3    # users, behaviours and impressions of one Tianchi-56 block
UB_BLOCK = 4        # users, views and conversions of one Tianchi-649 block
RELIST = 5          # the raw ids of relisted items or ads (index: the catalogue's own purpose)


def stream(seed: int, purpose: int, index: int = 0) -> np.random.Generator:
    """The generator for (`purpose`, `index`) under `seed`; independent of every other pair."""
    seq = np.random.SeedSequence(seed, spawn_key=(purpose, index))
    return np.random.Generator(np.random.PCG64(seq))


def n_blocks(n_users: int) -> int:
    """How many blocks `n_users` users fill (the last one may be partial)."""
    return -(-n_users // BLOCK_USERS)


def block_size(n_users: int, block: int) -> int:
    """Users in block `block`."""
    return min(BLOCK_USERS, n_users - block * BLOCK_USERS)
