"""Per-user memory of the service: each user's newest events per timeline (a bounded window) and,
for a streaming model, the user's recurrent state (models/ssm/streaming.py), which has a fixed
size whatever the history. Not thread-safe: the service touches it from one worker thread only.

Events of a user on a timeline come in time order (equal times keep their arrival order): a
window is then what the loader would cut from a timeline (data_prep/windows.py), and a state has
folded the same events in the same order.
"""
from __future__ import annotations

import numpy as np
import torch

from common.errors import MDAFError
from models.ssm.streaming import Streamer, UserId, UserStates


class Window:
    """The newest `limit` rows (int64, `width` columns, time first) of one user on one timeline,
    oldest first. Appending is O(1) per row on average: rows go into a buffer of up to 2 * limit
    rows that is compacted when full."""

    def __init__(self, width: int, limit: int):
        self.limit = limit
        self.buf = np.zeros((min(limit, 8), width), np.int64)
        self.start = self.end = 0

    def __len__(self) -> int:
        return self.end - self.start

    def rows(self) -> np.ndarray:
        """(n, width), a view: oldest first."""
        return self.buf[self.start:self.end]

    def newest_time(self) -> int | None:
        return int(self.buf[self.end - 1, 0]) if len(self) else None

    def append(self, rows: np.ndarray) -> None:
        rows = rows[-self.limit:]
        if self.end + len(rows) > len(self.buf):
            keep = self.rows()[len(self) + len(rows) - self.limit:] if len(self) + len(rows) > self.limit else self.rows()
            size = max(len(keep) + len(rows), min(2 * len(self.buf), 2 * self.limit))
            buf = np.zeros((size, self.buf.shape[1]), np.int64) if size != len(self.buf) else self.buf
            buf[:len(keep)] = keep
            self.buf, self.start, self.end = buf, 0, len(keep)
        self.buf[self.end:self.end + len(rows)] = rows
        self.end += len(rows)
        self.start = max(self.start, self.end - self.limit)


class UserStore:
    """Windows of every user and timeline (columns `columns[timeline]`), events seen per user and
    timeline, and, with a `streamer`, states folded from the events of `stream_timeline`."""

    def __init__(self, columns: dict[str, list[str]], limit: int, streamer: Streamer | None = None,
                 stream_timeline: str | None = None):
        self.columns, self.limit = columns, limit
        self.streamer, self.stream_timeline = streamer, stream_timeline
        self.windows: dict[UserId, dict[str, Window]] = {}
        self.seen: dict[UserId, dict[str, int]] = {}
        self.states: UserStates | None = streamer.empty([]) if streamer is not None else None

    def window(self, user: UserId, timeline: str) -> np.ndarray:
        """(n, columns) the user's newest events on `timeline`, oldest first (empty for a new user)."""
        found = self.windows.get(user, {}).get(timeline)
        return found.rows() if found is not None else np.zeros((0, len(self.columns[timeline])), np.int64)

    def newest_time(self, user: UserId, timeline: str) -> int | None:
        """The time of the user's newest event on `timeline` (None before any)."""
        found = self.windows.get(user, {}).get(timeline)
        return found.newest_time() if found is not None else None

    def append(self, user: UserId, timeline: str, rows: np.ndarray) -> None:
        """Add encoded events (n, columns) to the user's window (order checked by the caller)."""
        windows = self.windows.setdefault(user, {})
        if timeline not in windows:
            windows[timeline] = Window(len(self.columns[timeline]), self.limit)
        windows[timeline].append(rows)
        seen = self.seen.setdefault(user, {})
        seen[timeline] = seen.get(timeline, 0) + len(rows)

    def fold(self, events: list[tuple[UserId, dict[str, np.ndarray]]]) -> None:
        """Fold each user's new events (field -> (n,) indices of the stream timeline, in order) into
        its state, one step per round for every user with an event left."""
        self.states.add([user for user, _ in events])
        queue: dict[UserId, list[dict[str, np.ndarray]]] = {}
        for user, fields in events:
            n = len(next(iter(fields.values())))
            queue.setdefault(user, []).extend({f: v[k] for f, v in fields.items()} for k in range(n))
        depth = max((len(q) for q in queue.values()), default=0)
        for step in range(depth):
            users = [u for u, q in queue.items() if len(q) > step]
            event = {f: torch.tensor([queue[u][step][f] for u in users]) for f in queue[users[0]][step]}
            self.streamer.update(self.states, users, event)

    def state(self, users: list[UserId]) -> torch.Tensor:
        """(len(users), H) the streamed output after each user's newest event (zeros for a user with
        none: the state before any event)."""
        out = self.states.out.new_zeros(len(users), self.states.shape.hidden)
        known = [k for k, u in enumerate(users) if u in self.states.index]
        if known:
            out[known] = self.states.out[[self.states.index[users[k]] for k in known]]
        return out

    # ----- snapshots -----
    def export(self) -> dict:
        """A copy of every window and count, as tensors and plain lists (UserStates saved beside it)."""
        users = list(self.windows)
        out = {"users": users, "seen": [self.seen[u] for u in users], "windows": {}}
        for timeline in self.columns:
            parts = [self.window(u, timeline) for u in users]
            out["windows"][timeline] = {"lengths": torch.tensor([len(p) for p in parts], dtype=torch.long),
                                        "rows": torch.from_numpy(np.concatenate(parts) if parts else
                                                                 np.zeros((0, len(self.columns[timeline])), np.int64))}
        return out

    def restore(self, saved: dict, states: UserStates | None) -> None:
        """The windows, counts and states of a snapshot (`export`, UserStates)."""
        self.windows, self.seen = {}, {}
        for k, user in enumerate(saved["users"]):
            self.seen[user] = dict(saved["seen"][k])
        for timeline, part in saved["windows"].items():
            if timeline not in self.columns or part["rows"].shape[1] != len(self.columns[timeline]):
                raise MDAFError(f"snapshot: timeline {timeline!r} does not match the run's {sorted(self.columns)}")
            rows = np.split(part["rows"].numpy(), np.cumsum(part["lengths"].numpy())[:-1])
            for user, block in zip(saved["users"], rows):
                if len(block):
                    self.windows.setdefault(user, {})[timeline] = Window(len(self.columns[timeline]), self.limit)
                    self.windows[user][timeline].append(block)
        if self.streamer is not None:
            self.states = states if states is not None else self.streamer.empty([])
