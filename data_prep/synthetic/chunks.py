"""The chunk loop: simulate blocks of users, write a chunk while the next one is simulated.

A chunk is `chunk_users // BLOCK_USERS` whole blocks (at least one). Block b's frames depend on
b alone, and chunks are written in block order, so the files do not depend on the chunk size.
Memory holds about two chunks at a time: the one being written and the one being simulated.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import polars as pl
from tqdm import tqdm

from data_prep.synthetic.csv_out import CsvSink
from data_prep.synthetic.streams import BLOCK_USERS, n_blocks

Frames = dict[str, pl.DataFrame]


def run_chunks(n_users: int, chunk_users: int, simulate: Callable[[int], Frames], sink: CsvSink,
               desc: str) -> None:
    """Call `simulate(b)` for every block b and append its frames to `sink`, chunk by chunk."""
    per_chunk = max(1, chunk_users // BLOCK_USERS)
    total = n_blocks(n_users)
    firsts = range(0, total, per_chunk)
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending: Future | None = None
        for first in tqdm(firsts, desc=desc, unit="chunk", disable=len(firsts) < 2):
            parts = [simulate(b) for b in range(first, min(first + per_chunk, total))]
            frames = {name: pl.concat([p[name] for p in parts], rechunk=False) for name in parts[0]}
            if pending is not None:
                pending.result()
            pending = writer.submit(_write_all, sink, frames)
        if pending is not None:
            pending.result()


def _write_all(sink: CsvSink, frames: Frames) -> None:
    for name, frame in frames.items():
        sink.write(name, frame)
