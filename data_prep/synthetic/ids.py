"""Raw id spaces shaped like the real files: ids drawn sparse from realistic ranges, not 0..n-1.

Each latent entity (category, brand, ad, item, user) gets a distinct raw id in [1, high], where
high is about the largest id in the real data set (or larger when more entities are asked for).
"""
from __future__ import annotations

import numpy as np

# about the largest ids in Tianchi 56 (display-ad clicks)
TAOBAO_USER_MAX = 1_141_729
TAOBAO_ADGROUP_MAX = 846_811
TAOBAO_CATE_MAX = 12_960
TAOBAO_BRAND_MAX = 461_497
TAOBAO_CAMPAIGN_MAX = 423_436
TAOBAO_CUSTOMER_MAX = 255_875
# about the largest ids in Tianchi 649 (UserBehavior)
UB_USER_MAX = 1_018_011
UB_ITEM_MAX = 5_163_070
UB_CATE_MAX = 5_162_429


def sparse_ids(rng: np.random.Generator, n: int, high: int) -> np.ndarray:
    """`n` distinct ids from [1, max(high, 2n)] in random order (int64)."""
    high = max(high, 2 * n)
    return rng.choice(high, size=n, replace=False).astype(np.int64) + 1


def block_user_ids(rng: np.random.Generator, n_users: int, block: int, size: int,
                   block_users: int, high: int) -> np.ndarray:
    """Sorted distinct user ids of one block, drawn from the block's own slice of [1, high].

    The id range is cut into equal slices, one per block, so blocks never collide and ids
    increase from block to block; a block's ids depend only on its slice and its own stream.
    """
    n_slices = -(-n_users // block_users)
    span = max(max(high, 2 * n_users) // n_slices, 2 * block_users)
    local = np.sort(rng.choice(span, size=size, replace=False))
    return local.astype(np.int64) + 1 + block * span
