"""Outputs that appear whole or not at all: write under a temporary name, then rename.

A folder is built in `.<name>.tmp-<pid>` beside its final name while the builder holds the
folder's build lock (`fcntl.flock` on `.<name>.lock`): a second process building the same folder
waits for the first, and a temporary folder whose lock nobody holds was left by a process that
died mid-build (the kernel drops a dead process's locks), so `remove_stale` may delete it.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import polars as pl

from common.errors import MDAFError

log = logging.getLogger(__name__)

_TEMPORARY = re.compile(r"\.(?P<name>.+)\.tmp-\d+")
_LOCK = re.compile(r"\.(?P<name>.+)\.lock")
_HELD: set[Path] = set()  # folders whose build lock this process holds: the lock is re-entrant


def _lock_file(final: Path) -> Path:
    return final.with_name(f".{final.name}.lock")


def _take(final: Path, wait: bool) -> IO | None:
    """An open handle holding the build lock of `final`; None when another process holds it and
    not `wait`."""
    lock = _lock_file(final)
    while True:
        handle = open(lock, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                handle.close()
                return None
            log.info("%s: another process is building it; waiting for it to finish", final)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if os.path.samestat(os.stat(lock), os.fstat(handle.fileno())):
                return handle
        except FileNotFoundError:
            pass
        handle.close()  # the holder removed that lock file as it let go: take the current one


def _release(final: Path, handle: IO) -> None:
    _lock_file(final).unlink(missing_ok=True)
    handle.close()


@contextlib.contextmanager
def build_lock(final: str | Path) -> Iterator[None]:
    """Hold the build lock of folder `final` for the block, waiting while another process holds
    it (re-entrant within a process); its lock file is removed when the block ends."""
    final = Path(os.path.abspath(final))
    if final in _HELD:
        yield
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    handle = _take(final, wait=True)
    _HELD.add(final)
    try:
        yield
    finally:
        _HELD.discard(final)
        _release(final, handle)


def remove_stale(directory: str | Path) -> None:
    """Delete the temporary folders under `directory` that no process is building (their builder
    died mid-build: a SIGKILL, a power cut), and the lock files such builders left."""
    directory = Path(os.path.abspath(directory))
    if not directory.is_dir():
        return
    left: dict[str, list[Path]] = {}
    for entry in directory.iterdir():
        if (match := _LOCK.fullmatch(entry.name)) and entry.is_file():
            left.setdefault(match["name"], [])
        elif (match := _TEMPORARY.fullmatch(entry.name)) and entry.is_dir():
            left.setdefault(match["name"], []).append(entry)
    for name, folders in left.items():
        final = directory / name
        handle = None if final in _HELD else _take(final, wait=False)
        if handle is None:  # being built now
            continue
        for folder in folders:
            log.info("removing %s, left by a process that ended while building %s", folder, final)
            shutil.rmtree(folder, ignore_errors=True)
        _release(final, handle)


@contextlib.contextmanager
def atomic_dir(final: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory that is renamed to `final` only if the block succeeds.

    On any exception the temporary directory is removed, so a crash never leaves a
    half-written dataset; the build lock of `final` is held throughout (module docstring). With
    `overwrite`, an existing `final` is replaced after success.
    """
    final = Path(final)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    with build_lock(final):
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            yield tmp
            if final.exists():
                if not overwrite:
                    raise MDAFError(f"{final}: already exists; pass --overwrite to replace it")
                old = final.with_name(f".{final.name}.old-{os.getpid()}")
                final.rename(old)
                tmp.rename(final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with _removed_on_error(tmp):
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


def atomic_write_parquet(frame: pl.DataFrame, path: str | Path) -> None:
    """Write `frame` to the Parquet file `path` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with _removed_on_error(tmp):
        frame.write_parquet(tmp)
        os.replace(tmp, path)


@contextlib.contextmanager
def _removed_on_error(tmp: Path) -> Iterator[None]:
    """Delete the temporary file `tmp` when the block fails (a full disk, a rename refused)."""
    try:
        yield
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
