"""Synthetic next-item sequences whose next-item probabilities are known, in RecBole's atomic format.

Items fall into C clusters, each item i in cluster c(i) with a popularity w_i (Zipf inside the
cluster). User u has a taste pi_u over clusters (Dirichlet). Event t of u picks a cluster, then
an item of it by popularity:

    q_t(c) = stay [c = c_{t-1}] + move [c = c_{t-1} + 1 mod C] + (1 - stay - move) pi_u(c)
    p_t(i) = q_t(c(i)) w_i / W_{c(i)},        W_c = sum of w over cluster c

(the first event: q = pi_u). So the next item depends on the order of the history (its last
cluster, and the cluster after it), not only on what the user likes. Times increase by
exponential gaps. Beside `<name>.inter` the generator writes `<name>.oracle.parquet`: for each
event, the rank of the item that happened among all items under p_t (ties count as ranked above
it), so reports show the HR, NDCG and MRR of the true distribution: the ceiling of any model.

With `long_signal: true` the events come from the process of data_prep/next_item/long_signal.py
instead (long-lived interests under short-lived intents, where part of the signal lies thousands
of events back); the file layout and the oracle are the same.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from common.atomic import atomic_write_bytes, atomic_write_parquet
from common.config import load_config
from common.errors import MDAFError
from data_prep.next_item.long_signal import check_long_signal, interest_events

CONFIG_PATH = Path(__file__).resolve().parents[2] / "configs" / "data" / "next_item_synthetic.yaml"
T0 = 1_600_000_000  # 2020-09-13: times start here


@dataclass
class SequenceConfig:
    """configs/data/next_item_synthetic.yaml documents each key."""

    seed: int = 0
    n_users: int = 1000
    n_items: int = 1000
    n_clusters: int = 40
    events_per_user: float = 40.0
    min_events: int = 8
    taste_concentration: float = 0.3
    stay: float = 0.45
    move: float = 0.25
    item_zipf: float = 0.8
    mean_gap_hours: float = 12.0
    long_signal: bool = False
    interests: int = 16
    favourites: int = 8
    favourite_share: float = 0.8
    intent_events: float = 10.0

    def __post_init__(self) -> None:
        if min(self.n_users, self.n_items, self.n_clusters, self.min_events) < 1 or self.n_clusters > self.n_items:
            raise MDAFError("next-item synthetic config: n_users, n_items, n_clusters and min_events must be >= 1, "
                            "and n_clusters <= n_items")
        if not (0 <= self.stay and 0 <= self.move and self.stay + self.move <= 1):
            raise MDAFError(f"next-item synthetic config: 'stay' + 'move' must lie in [0, 1], got {self.stay} + {self.move}")
        if self.long_signal:
            check_long_signal(self)


def load_sequence_config(path: str | Path | None = None, **overrides) -> SequenceConfig:
    return load_config(SequenceConfig, path or CONFIG_PATH, overrides)


def generate_sequences(cfg: SequenceConfig, out_dir: str | Path, name: str = "synthetic") -> Path:
    """Write `<out_dir>/<name>.inter` and its oracle file (module docstring); returns the .inter."""
    rng = np.random.default_rng(cfg.seed)
    cluster, within = item_clusters(cfg, rng)
    if cfg.long_signal:
        rows, oracle = interest_events(cfg, cluster, within, rng, T0)
    else:
        rows, oracle = cluster_events(cfg, cluster, within, rng)
    out_dir = Path(out_dir)
    inter = out_dir / f"{name}.inter"
    atomic_write_parquet(pl.DataFrame(oracle, schema=["user", "time", "oracle_rank"], orient="row"),
                         out_dir / f"{name}.oracle.parquet")
    lines = ["user_id:token\titem_id:token\ttimestamp:float"] + [f"{u}\t{i}\t{t}" for u, i, t in rows]
    atomic_write_bytes(inter, ("\n".join(lines) + "\n").encode())
    return inter


def item_clusters(cfg: SequenceConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(cluster of each item (I,), w_i / W_c(i) (I,)): popularity inside each cluster ~ rank^-item_zipf."""
    cluster = np.sort(rng.integers(0, cfg.n_clusters, cfg.n_items))
    cluster[: cfg.n_clusters] = np.arange(cfg.n_clusters)  # every cluster has an item
    rank = np.zeros(cfg.n_items)
    for c in range(cfg.n_clusters):
        members = np.flatnonzero(cluster == c)
        rank[members] = rng.permutation(len(members)) + 1
    weight = rank ** -cfg.item_zipf
    return cluster, weight / np.bincount(cluster, weights=weight)[cluster]


def cluster_events(cfg: SequenceConfig, cluster: np.ndarray, within: np.ndarray, rng: np.random.Generator):
    """The stay/move process of the module doc: ([(user, item, time)], [(user, time, oracle rank)]), ids from 1."""
    taste = rng.dirichlet(np.full(cfg.n_clusters, cfg.taste_concentration), cfg.n_users)  # (U, C)
    lengths = np.maximum(rng.poisson(cfg.events_per_user, cfg.n_users), cfg.min_events)
    rows, oracle = [], []
    for u in range(cfg.n_users):
        last = -1
        t = T0 + int(rng.integers(0, 30 * 86400))
        for _ in range(lengths[u]):
            q = taste[u].copy() if last < 0 else (1 - cfg.stay - cfg.move) * taste[u]
            if last >= 0:
                q[last] += cfg.stay
                q[(last + 1) % cfg.n_clusters] += cfg.move
            p = q[cluster] * within  # (I,) the true next-item distribution
            item = int(rng.choice(cfg.n_items, p=p / p.sum()))
            t += 1 + int(rng.exponential(cfg.mean_gap_hours * 3600))
            rows.append((u + 1, item + 1, t))
            oracle.append((u + 1, t, int((p >= p[item]).sum())))  # 1 + the items ranked at or above it
            last = cluster[item]
    return rows, oracle
