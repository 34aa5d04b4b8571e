"""Micro-batching: requests that arrive together share one forward pass.

Requests queue as jobs; one worker thread takes them in arrival order, as many as fit in
`max_rows` rows (candidates, users), and hands the whole batch to `process`, which scores every
job of a kind in one forward pass. While the worker is busy, new requests queue up and form the
next batch: under load batches grow by themselves, and a lone request never waits for company
unless `wait_s` asks it to (the first job of a batch then waits that long for others).

Everything that reads or changes the per-user store runs on that one thread, in arrival order, so
the store needs no locks and a score sees every event accepted before it. `after(jobs, results)`
runs on the event loop between batches, in order (the service logs accepted events there, so the
log's order is the order events were applied in).
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Job:
    kind: str
    payload: Any
    rows: int
    future: asyncio.Future
    arrived: float = field(default=0.0)


class MicroBatcher:
    """process(jobs) -> one result per job (an Exception instance fails that job alone), run on the
    worker thread; after(jobs, results) -> results, run on the event loop before they are handed out."""

    def __init__(self, process: Callable[[list[Job]], list[Any]],
                 after: Callable[[list[Job], list[Any]], list[Any]], wait_s: float, max_rows: int):
        self.process, self.after, self.wait_s, self.max_rows = process, after, wait_s, max_rows
        self._queue: deque[Job] = deque()
        self._arrived = asyncio.Event()
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="model")
        self._task: asyncio.Task | None = None
        self._busy = False
        self.batches = self.jobs = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, kind: str, payload: Any, rows: int = 1) -> Any:
        """The result of `payload`'s job once its batch has run; raises the job's exception."""
        loop = asyncio.get_running_loop()
        job = Job(kind, payload, rows, loop.create_future(), loop.time())
        self._queue.append(job)
        self._arrived.set()
        return await job.future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._arrived.wait()
            if not self._queue:
                self._arrived.clear()
                continue
            if self.wait_s:
                await asyncio.sleep(max(0.0, self._queue[0].arrived + self.wait_s - loop.time()))
            self._busy = True
            jobs = [self._queue.popleft()]
            rows = jobs[0].rows
            while self._queue and rows + self._queue[0].rows <= self.max_rows:
                rows += self._queue[0].rows
                jobs.append(self._queue.popleft())
            try:
                results = await loop.run_in_executor(self._worker, self.process, jobs)
            except Exception as exc:  # a bug in `process`: fail this batch, keep serving
                log.exception("batch of %d job(s) failed", len(jobs))
                results = [exc] * len(jobs)
            results = self.after(jobs, results)
            self.batches += 1
            self.jobs += len(jobs)
            for job, result in zip(jobs, results):
                if job.future.done():  # the client went away
                    continue
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)
            self._busy = False

    async def close(self) -> None:
        """Finish the jobs queued so far, then stop the worker."""
        while self._queue or self._busy:
            await asyncio.sleep(0.001)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._worker.shutdown(wait=True)
