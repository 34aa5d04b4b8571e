"""A finished run, loaded once to answer requests: its config, best weights, vocabularies and
calibration, through the functions predict.py and training use (training/predict.py
`trained_model` and `run_calibration`, data_prep/loader.py `make_batch`, training/ranking.py
`ranked_scores`), so a request scores exactly as the same sample does offline (tests hold
the service to predict.py at 1e-6).

A request's samples become a table whose pointers index the user's windows, and `make_batch`
cuts the last seq_len events before each sample's time from them, as the loader cuts them from a
timeline. A CTR sample reads only events strictly before its `time`. Where the model streams
(models/ssm/streaming.py), the sequential branch is read from the user's state instead, whenever
every event it folded is before the sample's time (always, for next-item); the state covers the
user's whole history, where the window covers the last seq_len events.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.errors import MDAFError
from data_prep.dataset import ProcessedDataset, SplitTable
from data_prep.loader import batch_key, make_batch
from data_prep.timeline import raw_column
from data_prep.vocab import OOV, Vocab
from models.registry import model_task
from models.ssm.streaming import Streamer, UserId, weights_digest
from serving.config import ServeConfig
from serving.features import Features
from serving.store import UserStore
from training.device import resolve_device
from training.predict import run_calibration, run_config, trained_model
from training.ranking import ranked_scores

log = logging.getLogger(__name__)


@dataclass
class Samples:
    """One /score request, encoded: candidates of `user` shown at `time` (static: field -> (n,)
    indices; raw: field -> (n,) raw ids)."""

    user: UserId
    time: int
    static: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]

    @property
    def n(self) -> int:
        return len(next(iter(self.static.values())))


@dataclass
class Ranking:
    """One /recommend request: the top `k` items for `user` at `time` (what a model reading time
    gaps measures the history from, as a training target's time)."""

    user: UserId
    k: int
    time: int


class RunScorer:
    def __init__(self, run_dir: str | Path, cfg: ServeConfig):
        self.run_dir = Path(run_dir)
        self.config = run_config(self.run_dir)
        self.model_name = self.config["model"]["name"]
        self.task = model_task(self.model_name)
        self.dataset = ProcessedDataset(self.config["data"]["prepared_dir"])
        self.fingerprint = self.dataset.fingerprint()
        self.device = resolve_device(cfg.device)
        self.model = trained_model(self.run_dir, self.config, cfg.checkpoint, self.dataset, self.device).eval()
        self.weights = weights_digest(self.model)
        self.calibration = run_calibration(self.run_dir, cfg.checkpoint) if self.task == "ctr" else None
        self.features = Features(self.dataset)
        self.seq_len = cfg.seq_len or int(self.config["train"]["seq_len"])
        self.max_rows = cfg.max_batch_rows
        self.fields = {t: [*self.dataset.timeline_fields(t), *map(raw_column, self.dataset.timeline_raw_ids(t))]
                       for t in self.dataset.timeline_names}
        self.columns = {t: self.features.columns(t) for t in self.fields}
        self.mask_history = bool((self.config.get("ranking") or {}).get("mask_history", False))
        self.streamer, self.stream_timeline = self._streaming() if cfg.streaming else (None, None)
        if self.task == "next_item":
            self.timeline = self.model.timeline
            self.items = Vocab.load(self.dataset.root / "vocab", "item").raw.to_list()  # index i -> items[i - 2]
        self.passes = 0  # forward passes run

    def _streaming(self) -> tuple[Streamer | None, str | None]:
        """The model's streamer and the timeline it folds, when it streams: a state of its recurrence,
        and an input for one event (probed with a padding event) are both refused otherwise."""
        try:
            streamer = Streamer(self.model)
            timeline = getattr(self.model, "timeline", None) or self.model.sequence.tokens.timeline
            with torch.no_grad():
                self.model.event_input({f: torch.zeros(1, dtype=torch.long, device=self.device)
                                        for f in self.dataset.timeline_fields(timeline)})
        except MDAFError as exc:
            log.info("%s does not stream (%s): every request recomputes from the window", self.model_name, exc)
            return None, None
        return streamer, timeline

    def identity(self) -> dict[str, str]:
        """What a saved state must have been made by: the model, its weights and its data."""
        return {"model": self.model_name, "weights": self.weights, "dataset": self.fingerprint["meta_sha256"]}

    def describe(self) -> dict:
        return {"run": self.run_dir.name, "path": str(self.run_dir.resolve()), "task": self.task,
                "model": self.model_name, "weights_sha256": self.weights,
                "dataset": {"dir": str(self.dataset.root), "source": self.dataset.meta.get("source"),
                            **self.fingerprint},
                "seq_len": self.seq_len, "streaming": self.streamer is not None,
                "stream_timeline": self.stream_timeline,
                "calibration": self.calibration.to_dict() if self.calibration is not None else None,
                "timelines": self.columns}

    # ----- tables of requests -----
    def _windows(self, store: UserStore, user: UserId, before: int | None, skip: str | None) -> dict[str, np.ndarray]:
        """The user's events per timeline that a sample at `before` reads (all with None), the last
        seq_len of them; none on timeline `skip`."""
        out = {}
        for timeline, columns in self.columns.items():
            rows = store.window(user, timeline) if timeline != skip else np.zeros((0, len(columns)), np.int64)
            if before is not None:
                rows = rows[: np.searchsorted(rows[:, 0], before, side="left")]
            out[timeline] = rows[-self.seq_len:]
        return out

    def _table(self, groups: list[tuple[dict[str, np.ndarray], int]], time: np.ndarray, users: np.ndarray,
               static: dict[str, np.ndarray], raw: dict[str, np.ndarray]) -> tuple[SplitTable, dict]:
        """A table of sum(n) samples whose pointers index `groups` (windows, n: the group's samples)."""
        counts = [n for _, n in groups]
        arrays, start, end = {}, {}, {}
        for timeline, columns in self.columns.items():
            parts = [windows[timeline] for windows, _ in groups]
            rows = np.concatenate(parts) if parts else np.zeros((0, len(columns)), np.int64)
            arrays[timeline] = {c: rows[:, k] for k, c in enumerate(columns)}
            offsets = np.cumsum([0, *(len(p) for p in parts)])
            start[timeline], end[timeline] = np.repeat(offsets[:-1], counts), np.repeat(offsets[1:], counts)
        n = int(sum(counts))
        return SplitTable("serving", np.zeros(n, np.int8), time, users, static, start, end, raw), arrays

    def _batches(self, table: SplitTable, arrays: dict):
        """(row indices, batch on the device) of `table`, max_batch_rows at a time."""
        n = len(table)
        for lo in range(0, n, self.max_rows):
            idx = np.arange(lo, min(n, lo + self.max_rows))
            batch = make_batch(table, idx, arrays, self.fields, self.seq_len)
            self.passes += 1
            yield idx, {k: v.to(self.device) for k, v in batch.items()}

    # ----- CTR -----
    def state_is_current(self, store: UserStore, job: Samples) -> bool:
        """Whether the user's streamed state holds only events before the sample's time."""
        if self.streamer is None:
            return False
        rows = store.window(job.user, self.stream_timeline)
        return len(rows) == 0 or int(rows[-1, 0]) < job.time

    @torch.no_grad()
    def score(self, jobs: list[Samples], store: UserStore) -> list[np.ndarray]:
        """The logits (n,) of each job's candidates, every job in one forward pass (or one per
        max_batch_rows rows; those read from a state in one more)."""
        out: list[np.ndarray | None] = [None] * len(jobs)
        streamed = [self.state_is_current(store, job) for job in jobs]
        for flag in (False, True):
            picked = [k for k, s in enumerate(streamed) if s == flag]
            if not picked:
                continue
            part = [jobs[k] for k in picked]
            skip = self.stream_timeline if flag else None
            groups = [(self._windows(store, j.user, j.time, skip), j.n) for j in part]
            counts = [j.n for j in part]
            table, arrays = self._table(
                groups, np.repeat([j.time for j in part], counts).astype(np.int64),
                np.repeat([int_id(j.user) for j in part], counts).astype(np.int64),
                {f: np.concatenate([j.static[f] for j in part]) for f in part[0].static},
                {f: np.concatenate([j.raw[f] for j in part]) for f in part[0].raw})
            state = store.state([j.user for j in part]).repeat_interleave(torch.tensor(counts), 0) if flag else None
            logits = np.zeros(len(table), np.float32)
            for idx, batch in self._batches(table, arrays):
                result = self.model(batch) if state is None else self.model(batch, sequence_state=state[idx].to(self.device))
                logits[idx] = result.logit.float().cpu().numpy()
            for k, piece in zip(picked, np.split(logits, np.cumsum(counts)[:-1])):
                out[k] = piece
        return out

    # ----- next-item -----
    @torch.no_grad()
    def recommend(self, jobs: list[Ranking], store: UserStore) -> list[tuple[list, list[float]]]:
        """(items (raw ids), scores) of each job: its top k under the run's masking rules
        (training/ranking.py: never padding or unknown; the window's items with mask_history)."""
        streamed = self.streamer is not None
        skip = self.timeline if streamed and not self.mask_history else None
        groups = [(self._windows(store, j.user, None, skip), 1) for j in jobs]
        n = len(jobs)
        table, arrays = self._table(groups, np.array([j.time for j in jobs], np.int64), np.zeros(n, np.int64),
                                    {f: np.zeros(n, np.int32) for f in self.dataset.static_fields}, {})
        state = store.state([j.user for j in jobs]) if streamed else None
        out = []
        for idx, batch in self._batches(table, arrays):
            scores = self.model.score(state[idx].to(self.device)) if streamed else self.model(batch).logit
            history = batch[batch_key(self.timeline, "item")] if self.mask_history else None
            scores = ranked_scores(scores, history)
            rankable = torch.isfinite(scores).sum(1)
            top = torch.topk(scores, min(max(jobs[i].k for i in idx), scores.shape[1]), dim=1)
            for row, i in enumerate(idx):
                k = min(jobs[i].k, int(rankable[row]))
                out.append(([self.items[int(j) - (OOV + 1)] for j in top.indices[row, :k]],
                            top.values[row, :k].tolist()))
        return out


def int_id(user: UserId) -> int:
    """The sample column `user_id` (int64) of a user id: the id when it is an int64, else 0."""
    return user if isinstance(user, int) and -2**63 <= user < 2**63 else 0
