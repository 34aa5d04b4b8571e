"""Synthetic sequences where part of the signal lies far back: long-lived interests under
short-lived intents (the `long_signal: true` process of data_prep/next_item/synthetic.py).

What real long histories look like, as the long-sequence CTR work reports it: SIM (Pi et al.
2020) and ETA (Chen et al. 2021) model Taobao users with thousands to tens of thousands of
behaviours; the behaviours that matter for a candidate are the user's earlier ones in the same
category, which a recent window rarely holds because the recent window is dominated by whatever
the user is shopping for now. SIM's hard search retrieves them by category alone and gains over
models that read only the latest events. The process below has exactly those two time scales and
nothing else:

  long-lived:  interests S_u, K clusters of the C (uniform, without replacement), and in each
               interest c a set F_{u,c} of f favourite items of c (uniform, without replacement);
               fixed for the user's whole history.
  short-lived: the intent k_t in S_u. k_0 ~ U(S_u); at each later event, with probability
               s = 1 / intent_events the intent is redrawn from U(S_u), else k_t = k_{t-1}.
  event:       x_t ~ P_u(. | k_t),  P_u(i | c) = [c(i) = c] (phi [i in F_{u,c}] / |F_{u,c}| + (1 - phi) w_i / W_c)

with w_i / W_c the popularity inside the cluster (as in the default process). A user therefore
returns to each interest about every K / s events, and the recent window shows the current
intent's cluster but, of its favourites, only those drawn since the intent began. Only a window
reaching back over earlier visits to the same cluster reveals F_{u,c}; one reading the whole
history also learns S_u.

The oracle (`oracle_rank`) ranks each event's item under its true distribution given the past:
  p_0 = M_u,   p_t = s M_u + (1 - s) P_u(. | k_{t-1}),   M_u = (1/K) sum_{c in S_u} P_u(. | c)
where k_{t-1} = c(x_{t-1}) is read off the previous item, so the oracle knows nothing a model could
not learn from a long enough history (S_u and F_{u,c}) and the process's parameters.
"""
from __future__ import annotations

import numpy as np

from common.errors import MDAFError


def check_long_signal(cfg) -> None:
    """Raise on settings the process cannot draw from (cfg: the generator's SequenceConfig)."""
    if not 1 <= cfg.interests <= cfg.n_clusters:
        raise MDAFError(f"next-item synthetic config: 'interests' must lie in [1, n_clusters={cfg.n_clusters}], "
                        f"got {cfg.interests}")
    if cfg.favourites < 1 or not 0 <= cfg.favourite_share <= 1 or cfg.intent_events < 1:
        raise MDAFError("next-item synthetic config: 'favourites' >= 1, 'favourite_share' in [0, 1] and "
                        f"'intent_events' >= 1 expected, got {cfg.favourites}, {cfg.favourite_share}, {cfg.intent_events}")


def interest_events(cfg, cluster: np.ndarray, within: np.ndarray, rng: np.random.Generator, t0: int):
    """Draw every user's events (module doc). cluster (I,) each item's cluster, within (I,) w_i / W_c(i).
    Returns ([(user, item, time)], [(user, time, oracle rank)]), users and items counted from 1."""
    n_items, s, phi = len(cluster), 1.0 / cfg.intent_events, cfg.favourite_share
    members = [np.flatnonzero(cluster == c) for c in range(cfg.n_clusters)]
    cdf = [np.cumsum(within[m]) for m in members]  # popularity inside each cluster, ending at 1
    lengths = np.maximum(rng.poisson(cfg.events_per_user, cfg.n_users), cfg.min_events)
    rows, oracle = [], []
    for u in range(cfg.n_users):
        interests = rng.choice(cfg.n_clusters, cfg.interests, replace=False)  # S_u
        P = np.zeros((cfg.interests, n_items))  # P_u(. | c) for c in S_u
        favourites = []
        for j, c in enumerate(interests):
            fav = rng.choice(members[c], min(cfg.favourites, len(members[c])), replace=False)
            P[j, members[c]] = (1 - phi) * within[members[c]]
            P[j, fav] += phi / len(fav)
            favourites.append(fav)
        n = int(lengths[u])
        redraw = rng.random(n) < s
        redraw[0] = True
        draws = rng.integers(0, cfg.interests, n)
        intent = draws[np.maximum.accumulate(np.where(redraw, np.arange(n), 0))]  # index into S_u, (n,)
        pick_favourite = rng.random(n) < phi
        slot = rng.random(n)
        items = np.empty(n, dtype=np.int64)
        for j, c in enumerate(interests):
            at = np.flatnonzero(intent == j)
            by_popularity = members[c][np.minimum(np.searchsorted(cdf[c], slot[at] * cdf[c][-1], side="right"),
                                                  len(members[c]) - 1)]
            favourite = favourites[j][np.minimum((slot[at] * len(favourites[j])).astype(np.int64), len(favourites[j]) - 1)]
            items[at] = np.where(pick_favourite[at], favourite, by_popularity)
        mixed = P.mean(axis=0)  # M_u
        truth = np.vstack([mixed, s * mixed + (1 - s) * P])  # row 0: p_0; row 1 + j: after an event of intent j
        ordered = np.sort(truth, axis=1)
        row = np.r_[0, intent[:-1] + 1]  # which p_t applies to event t
        p_item = truth[row, items]
        ranks = n_items - np.array([np.searchsorted(ordered[r], p, side="left") for r, p in zip(row, p_item)])
        times = t0 + int(rng.integers(0, 30 * 86400)) + np.cumsum(1 + rng.exponential(cfg.mean_gap_hours * 3600, n).astype(np.int64))
        rows += [(u + 1, int(i) + 1, int(t)) for i, t in zip(items, times)]
        oracle += [(u + 1, int(t), int(r)) for t, r in zip(times, ranks)]
    return rows, oracle
