"""One served run: its scorer, the per-user store, the write-ahead log and the micro-batcher, and
what each kind of request does with them.

Events are applied in the worker (windows, then one `step` per round for every user with an event
left), then logged on the event loop in the order they were applied; the reply waits for the
fsync of its line. A snapshot copies the store in the worker between batches, the log starts a
new segment at that point, and the copy is written on another thread (serving/wal.py).
"""
from __future__ import annotations

import asyncio
import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.errors import MDAFError
from models.ssm.streaming import UserId, UserStates
from serving.batching import Job, MicroBatcher
from serving.config import ServeConfig
from serving.scorer import Ranking, RunScorer, Samples
from serving.store import UserStore
from serving.wal import WriteAheadLog, read_log, read_snapshot, write_snapshot

log = logging.getLogger(__name__)


@dataclass
class Events:
    """One /events request, checked and encoded: the raw events as logged (each with its timeline
    and time), their rows per timeline, in order, and where each timeline's first one stands."""

    user: UserId
    raw: list[dict]
    rows: dict[str, np.ndarray]
    first: dict[str, int]


class Service:
    def __init__(self, run_dir: str | Path, cfg: ServeConfig):
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.cfg = cfg
        self.scorer = RunScorer(run_dir, cfg)
        self.state_dir = Path(cfg.state_dir) if cfg.state_dir else Path(run_dir) / "serving"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        limit = cfg.window or self.scorer.seq_len
        if limit < self.scorer.seq_len:
            raise MDAFError(f"serve config: key 'window' ({limit}) must be at least the events a recompute reads "
                            f"(seq_len {self.scorer.seq_len})")
        self.store = UserStore(self.scorer.columns, limit, self.scorer.streamer, self.scorer.stream_timeline)
        self.seq = 0  # the last record applied
        self.snapshot_seq = 0
        self.recover()
        self.batcher: MicroBatcher | None = None
        self.wal: WriteAheadLog | None = None
        self._timer: asyncio.Task | None = None
        self._snapshot_lock: asyncio.Lock | None = None

    # ----- start and stop -----
    def recover(self) -> None:
        """The last snapshot, then every logged record after it (serving/wal.py)."""
        seq, windows, states = read_snapshot(self.state_dir, self.scorer.identity(), self.scorer.streamer)
        if windows is not None:
            self.store.restore(windows, states)
        self.seq = self.snapshot_seq = seq
        records = read_log(self.state_dir, seq)
        for record in records:
            (result,) = self._apply([self.events(record["user"], record["events"], where=f"log record {record['seq']}")])
            if isinstance(result, Exception):
                raise MDAFError(f"{self.state_dir}: log record {record['seq']} cannot be applied ({result})")
        log.info("state %s: snapshot after record %d, %d logged record(s) replayed, %d user(s)", self.state_dir,
                 seq, len(records), len(self.store.windows))

    async def start(self) -> None:
        self.wal = WriteAheadLog(self.state_dir)
        self.batcher = MicroBatcher(self._process, self._after, self.cfg.batch_wait_ms / 1000, self.cfg.max_batch_rows)
        self.batcher.start()
        self._snapshot_lock = asyncio.Lock()
        self._timer = asyncio.get_running_loop().create_task(self._snapshot_every())

    async def stop(self) -> None:
        """Finish queued requests, write a last snapshot, close the log."""
        if self._timer is not None:
            self._timer.cancel()
        await self.snapshot()
        await self.batcher.close()
        await self.wal.close()

    async def _snapshot_every(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.snapshot_every_s)
            try:
                await self.snapshot()
            except Exception:  # a full disk: keep serving, the log still holds everything
                log.exception("snapshot failed")

    async def snapshot(self) -> None:
        """Write the store as it is after the last applied record, if anything changed."""
        async with self._snapshot_lock:
            seq, windows, states = await self.batcher.submit("snapshot", None, rows=0)
            if seq == self.snapshot_seq:
                return
            await asyncio.get_running_loop().run_in_executor(
                None, write_snapshot, self.state_dir, seq, windows, states, self.scorer.identity())
            self.snapshot_seq = seq
            log.info("snapshot after record %d written to %s", seq, self.state_dir)

    # ----- requests -----
    async def score(self, samples: Samples) -> np.ndarray:
        """The logits of `samples`' candidates."""
        return await self.batcher.submit("score", samples, samples.n)

    async def recommend(self, ranking: Ranking) -> tuple[list, list[float]]:
        return await self.batcher.submit("recommend", ranking)

    async def add_events(self, events: Events) -> int:
        """Apply and log `events`; returns their record's seq once it is on disk."""
        record, durable = await self.batcher.submit("events", events, len(events.raw))
        await durable
        return record["seq"]

    async def user(self, user: UserId) -> dict:
        return await self.batcher.submit("user", user, rows=0)

    def events(self, user: UserId, raw: list[dict], where: str = "events") -> Events:
        """Check and encode raw events (field -> raw value, with `timeline` and `time` where given):
        the timeline defaults to the run's only one, the time to now."""
        timelines = list(self.scorer.columns)
        now = int(time.time())
        checked, first, last = [], {}, {}
        for k, event in enumerate(raw):
            event = dict(event)
            timeline = event.setdefault("timeline", timelines[0] if len(timelines) == 1 else None)
            if timeline not in self.scorer.columns:
                raise MDAFError(f"{where}.{k}.timeline: {'required' if timeline is None else repr(timeline)}; "
                                f"this run's timelines are {timelines}")
            if event.get("time") is None:
                event["time"] = now
            if event["time"] < last.get(timeline, event["time"]):
                raise MDAFError(f"{where}.{k}.time: {event['time']} is before the event above it on timeline "
                                f"{timeline!r} ({last[timeline]}); events come in time order")
            first.setdefault(timeline, k)
            last[timeline] = event["time"]
            checked.append(event)
        rows = {t: self.scorer.features.encode_events(t, [e for e in checked if e["timeline"] == t])
                for t in timelines}
        return Events(user, checked, rows, first)

    # ----- on the worker thread -----
    def _process(self, jobs: list[Job]) -> list[Any]:
        """Each run of jobs of one kind, in order, together (serving/batching.py)."""
        results: list[Any] = []
        start = 0
        while start < len(jobs):
            end = start
            while end < len(jobs) and jobs[end].kind == jobs[start].kind:
                end += 1
            kind, payloads = jobs[start].kind, [j.payload for j in jobs[start:end]]
            try:
                if kind == "events":
                    results += self._apply(payloads)
                elif kind == "score":
                    results += self.scorer.score(payloads, self.store)
                elif kind == "recommend":
                    results += self.scorer.recommend(payloads, self.store)
                elif kind == "snapshot":
                    results += [self._copy()] * len(payloads)
                else:
                    results += [self._describe_user(u) for u in payloads]
            except Exception as exc:  # a bug: fail these jobs alone and keep serving
                log.exception("%d %s job(s) failed", end - start, kind)
                results += [exc] * (end - start)
            start = end
        return results

    def _apply(self, batches: list[Events]) -> list[dict | Exception]:
        """Apply each request's events (all or nothing per request); returns its log record, or the
        MDAFError that refused it."""
        out: list[dict | Exception] = []
        fold = []
        for events in batches:
            late = [(k, timeline, newest) for timeline, k in events.first.items()
                    if (newest := self.store.newest_time(events.user, timeline)) is not None
                    and events.raw[k]["time"] < newest]
            if late:
                k, timeline, newest = late[0]
                out.append(MDAFError(f"events.{k}.time: {events.raw[k]['time']} is before the user's newest event "
                                     f"on timeline {timeline!r} ({newest}); events come in time order"))
                continue
            for timeline, rows in events.rows.items():
                if len(rows):
                    self.store.append(events.user, timeline, rows)
            stream = events.rows.get(self.store.stream_timeline) if self.store.streamer is not None else None
            if stream is not None and len(stream):
                columns = self.scorer.columns[self.store.stream_timeline]
                fold.append((events.user, {f: stream[:, columns.index(f)]
                                           for f in self.scorer.dataset.timeline_fields(self.store.stream_timeline)}))
            self.seq += 1
            out.append({"seq": self.seq, "user": events.user, "events": events.raw})
        if fold:
            try:
                self.store.fold(fold)
            except Exception:  # a bug: the events are in the windows and the log; the states miss them
                log.exception("folding %d user(s)' events into their states failed", len(fold))
        return out

    def _copy(self) -> tuple[int, dict, UserStates | None]:
        states = self.store.states
        if states is not None:
            states = UserStates(list(states.ids), [(c.clone(), s.clone()) for c, s in states.layers],
                                states.out.clone(), states.model)
        return self.seq, copy.deepcopy(self.store.export()), states

    def _describe_user(self, user: UserId) -> dict:
        return {"user": user, "seen": dict(self.store.seen.get(user, {})),
                "windows": {t: {"columns": columns, "rows": self.store.window(user, t).tolist()}
                            for t, columns in self.scorer.columns.items()},
                "streamed": user in self.store.states.index if self.store.states is not None else False}

    # ----- on the event loop, between batches -----
    def _after(self, jobs: list[Job], results: list[Any]) -> list[Any]:
        out = []
        for job, result in zip(jobs, results):
            if job.kind == "events" and isinstance(result, dict):
                result = (result, self.wal.append(result))
            elif job.kind == "snapshot" and not isinstance(result, Exception):
                self.wal.rotate()  # records after the snapshot's go to a new segment
            out.append(result)
        return out

    def health(self) -> dict:
        return {"status": "ok", "run": self.scorer.run_dir.name, "users": len(self.store.windows),
                "events_applied": self.seq, "snapshot_after": self.snapshot_seq,
                "batches": self.batcher.batches if self.batcher else 0,
                "requests_batched": self.batcher.jobs if self.batcher else 0, "forward_passes": self.scorer.passes}
