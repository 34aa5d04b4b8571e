"""The long-signal synthetic sequences (data_prep/next_item/long_signal.py): the process its
docstring states, an oracle that agrees with it, and a signal that only a long window reads."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from common.errors import MDAFError
from data_prep.next_item.synthetic import generate_sequences, item_clusters, load_sequence_config

SMALL = dict(long_signal=True, n_users=40, n_items=400, n_clusters=20, events_per_user=600.0, interests=12,
             favourites=6, favourite_share=0.8, intent_events=10.0)


def generated(tmp_path, **overrides):
    cfg = load_sequence_config(None, **{**SMALL, **overrides})
    inter = generate_sequences(cfg, tmp_path)
    events = pl.read_csv(inter, separator="\t").rename({"user_id:token": "user", "item_id:token": "item",
                                                         "timestamp:float": "time"})
    oracle = pl.read_parquet(tmp_path / "synthetic.oracle.parquet")
    cluster, _ = item_clusters(cfg, np.random.default_rng(cfg.seed))
    return cfg, events.with_columns(cluster=pl.Series(cluster[events["item"].to_numpy() - 1])), oracle


def test_users_keep_to_their_interests_and_favourites(tmp_path):
    cfg, events, oracle = generated(tmp_path, favourite_share=1.0)
    per_user = events.group_by("user").agg(pl.col("cluster").n_unique().alias("clusters"))
    assert per_user["clusters"].max() <= cfg.interests
    per_interest = events.group_by("user", "cluster").agg(pl.col("item").n_unique().alias("items"))
    assert per_interest["items"].max() <= cfg.favourites  # with favourite_share 1 only favourites occur
    assert events["time"].to_numpy().dtype.kind in "iu" and len(oracle) == len(events)


def test_oracle_ranks_within_an_intent_among_its_favourites(tmp_path):
    cfg, events, oracle = generated(tmp_path, favourite_share=1.0, intent_events=1e9)  # one intent per user
    ranks = oracle["oracle_rank"].to_numpy()
    first = np.r_[True, events["user"].to_numpy()[1:] != events["user"].to_numpy()[:-1]]
    # after the first event the true distribution is uniform over the intent's favourites: all tie
    assert (ranks[~first] == cfg.favourites).all()
    assert (ranks[first] <= cfg.interests * cfg.favourites).all()


def test_a_long_window_reads_what_a_short_one_cannot(tmp_path):
    """A count of the current cluster's items in the window (no model) ranks the next item: the
    hit rate at the favourites' count grows with the window, up to the oracle's."""
    cfg, events, oracle = generated(tmp_path)
    items, clusters = events["item"].to_numpy(), events["cluster"].to_numpy()
    users = events["user"].to_numpy()
    hits = {50: [], 500: []}
    for u in np.unique(users):
        rows = np.flatnonzero(users == u)
        for t in rows[-20:]:
            for length, found in hits.items():
                window = rows[(rows < t) & (rows >= t - length)]
                same = window[clusters[window] == clusters[t - 1]]
                top = pd_top(items[same], cfg.favourites)
                found.append(items[t] in top)
    short, long_ = np.mean(hits[50]), np.mean(hits[500])
    assert long_ > short + 0.05, (short, long_)
    best = (oracle["oracle_rank"].to_numpy() <= cfg.favourites).mean()
    assert long_ <= best + 0.05


def pd_top(items: np.ndarray, k: int) -> set:
    values, counts = np.unique(items, return_counts=True)
    return set(values[np.argsort(-counts, kind="stable")[:k]].tolist())


def test_impossible_settings_are_named():
    with pytest.raises(MDAFError, match="interests"):
        load_sequence_config(None, **{**SMALL, "interests": 99})
    with pytest.raises(MDAFError, match="favourite_share"):
        load_sequence_config(None, **{**SMALL, "favourite_share": 1.5})
