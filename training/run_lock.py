"""One run directory, one run: an exclusive lock held for the run's whole life.

The lock is `fcntl.flock` on `<run_dir>/.lock`, which also holds the holder's process id, host
and start time. The kernel releases it when the process ends, however it ends (SIGKILL included),
so a crashed run never leaves a stale lock and `--resume` can follow at once. A second run, or a
`--resume`, of a directory in use stops with the holder named. flock works on local file systems;
on a network file system that ignores it, start runs of one name from one machine.
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from common.errors import MDAFError

LOCK_FILE = ".lock"


@contextlib.contextmanager
def locked_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir` (created if missing) exclusively for the block; MDAFError naming the holder
    when another process holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = open(run_dir / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise MDAFError(f"{run_dir}: in use by {holder}; wait for it to end, or choose another --run-name") from None
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()} on {socket.gethostname()} (started {started})\n")
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
