"""Durability of the service's state: a write-ahead log of accepted events and atomic snapshots.

Log: JSON lines `{"seq": n, "user": u, "events": [...]}` in segment files `wal-<first seq>.jsonl`.
`append` returns a future that completes once its line is written, flushed and fsynced; lines
that arrive while a write is under way go out together in the next one (group commit), so one
fsync serves every request of a group. The service answers 200 only after that future.

Snapshots: every windows and counts (`windows-<seq>.bin`, checksummed, common/checked_file.py) and
the streaming states (`states-<seq>.pt`, UserStates.save) as they were after record `seq`, then
`snapshot.json` naming them, written last with an atomic rename: that rename is the commit. Files
of older snapshots, and log segments that hold only records up to `seq`, are then deleted.

Start: load the snapshot `snapshot.json` names, then replay every logged record after its seq, in
order. A crash mid-write leaves at most a torn last line in the newest segment it wrote; that line
was never acknowledged, and is skipped. Any other damage is an error naming the file and line.
"""
from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from common.atomic import atomic_write_bytes
from common.checked_file import read_checked, write_checked
from common.errors import MDAFError
from models.ssm.streaming import Streamer, UserStates

log = logging.getLogger(__name__)

SNAPSHOT = "snapshot.json"
SNAPSHOT_FORMAT = "mdaf-serving-snapshot-1"
WINDOWS_FORMAT = "mdaf-serving-windows-1"


def segment_path(directory: Path, first_seq: int) -> Path:
    return directory / f"wal-{first_seq:012d}.jsonl"


def segments(directory: Path) -> list[tuple[int, Path]]:
    """(first seq, path) of every log segment in `directory`, in order."""
    found = []
    for path in directory.glob("wal-*.jsonl"):
        try:
            found.append((int(path.stem.split("-", 1)[1]), path))
        except ValueError:
            raise MDAFError(f"{path}: not a log segment name (wal-<first seq>.jsonl)") from None
    return sorted(found)


class WriteAheadLog:
    """Appends records to the log in `directory` (module doc). `rotate()` starts a new segment with
    the next record, so a snapshot's records and the later ones live in different files."""

    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._io = ThreadPoolExecutor(1, thread_name_prefix="wal")
        self._pending: list[tuple[int, int, str, asyncio.Future]] = []
        self._generation = 0
        self._writer: asyncio.Task | None = None
        self._file: Any = None  # the open segment, and its generation
        self._file_generation = -1

    def append(self, record: dict) -> asyncio.Future:
        """Queue `record` (with its "seq"); the future completes when it is on disk."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((self._generation, int(record["seq"]), json.dumps(record) + "\n", future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_groups())
        return future

    def rotate(self) -> None:
        self._generation += 1

    async def _write_groups(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            group, self._pending = self._pending, []
            try:
                await loop.run_in_executor(self._io, self._write, [(g, s, line) for g, s, line, _ in group])
            except OSError as exc:
                log.error("write-ahead log: %s", exc)
                for *_, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for *_, future in group:
                if not future.done():
                    future.set_result(None)

    def _write(self, lines: list[tuple[int, int, str]]) -> None:
        """Write, flush and fsync one group (runs on the log's own thread)."""
        for generation, seq, line in lines:
            if generation != self._file_generation:
                self._close_file()
                self._file = open(segment_path(self.directory, seq), "ab")
                self._file_generation = generation
                _fsync_dir(self.directory)  # the new file's name is durable too
            self._file.write(line.encode())
        self._file.flush()
        os.fsync(self._file.fileno())

    async def close(self) -> None:
        """Wait for every queued record, then close the segment."""
        while self._writer is not None and not self._writer.done():
            await self._writer
        await asyncio.get_running_loop().run_in_executor(self._io, self._close_file)
        self._io.shutdown(wait=True)

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_log(directory: Path, after: int) -> list[dict]:
    """Every logged record with seq > `after`, in order (module doc for a torn last line)."""
    records: list[dict] = []
    for _, path in segments(directory):
        lines = path.read_bytes().split(b"\n")
        complete, torn = lines[:-1], lines[-1]  # a whole file ends with a newline: its last part is empty
        for number, line in enumerate(complete, 1):
            try:
                record = json.loads(line)
                seq = int(record["seq"])
            except (ValueError, KeyError, TypeError) as exc:
                raise MDAFError(f"{path}: line {number} is damaged ({exc}); the log cannot be replayed past it") \
                    from None
            if seq > after:
                if records and seq != records[-1]["seq"] + 1:
                    raise MDAFError(f"{path}: line {number} holds record {seq} after {records[-1]['seq']}; "
                                    "records are missing")
                records.append(record)
        if torn:
            log.warning("%s: skipping a torn last line of %d bytes (a write cut short by a crash; never "
                        "acknowledged)", path, len(torn))
    if records and records[0]["seq"] != after + 1:
        raise MDAFError(f"{directory}: the log resumes at record {records[0]['seq']}, the snapshot ends at {after}; "
                        "records are missing")
    return records


def write_snapshot(directory: Path, seq: int, windows: dict, states: UserStates | None, identity: dict) -> None:
    """The snapshot after record `seq` (module doc); removes what it makes obsolete."""
    buffer = io.BytesIO()
    torch.save(windows, buffer)
    names = {"windows": f"windows-{seq:012d}.bin", "states": f"states-{seq:012d}.pt" if states is not None else None}
    write_checked(directory / names["windows"], WINDOWS_FORMAT, buffer.getvalue())
    if states is not None:
        states.save(directory / names["states"])
    record = {"format": SNAPSHOT_FORMAT, "seq": seq, **names, "run": identity}
    atomic_write_bytes(directory / SNAPSHOT, json.dumps(record, indent=2).encode())
    _fsync_dir(directory)
    keep = {SNAPSHOT, *filter(None, names.values())}
    for path in [*directory.glob("windows-*.bin"), *directory.glob("states-*.pt")]:
        if path.name not in keep:
            path.unlink(missing_ok=True)
    found = segments(directory)
    for (_, path), (next_first, _) in zip(found, found[1:]):
        if next_first - 1 <= seq:  # every record of this segment is in the snapshot
            path.unlink(missing_ok=True)


def read_snapshot(directory: Path, identity: dict, streamer: Streamer | None) -> tuple[int, dict | None, UserStates | None]:
    """(seq, windows, states) of the snapshot in `directory`; (0, None, None) when there is none.
    MDAFError when it belongs to another run (`identity` differs) or a file is damaged."""
    path = directory / SNAPSHOT
    if not path.is_file():
        return 0, None, None
    try:
        record = json.loads(path.read_text())
        if record.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"format {record.get('format')!r}, expected {SNAPSHOT_FORMAT!r}")
    except (OSError, ValueError, AttributeError) as exc:
        raise MDAFError(f"{path}: not a snapshot record ({exc})") from None
    differ = sorted(k for k in identity if record["run"].get(k) != identity[k])
    if differ:
        raise MDAFError(f"{path}: the state of another run ({', '.join(f'{k} differs' for k in differ)}); serve "
                        "that run, or give this one another --state-dir")
    try:
        windows = torch.load(io.BytesIO(read_checked(directory / record["windows"], WINDOWS_FORMAT)),
                             weights_only=True)
    except (RuntimeError, EOFError, ValueError) as exc:
        raise MDAFError(f"{directory / record['windows']}: cannot read the windows ({exc})") from None
    states = None
    if record["states"] is not None and streamer is not None:
        states = streamer.load(directory / record["states"])
    return int(record["seq"]), windows, states
