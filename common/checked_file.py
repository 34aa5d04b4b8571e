"""Files that vouch for their own bytes: a format line, the SHA-256 of the payload, then the payload,
written through a temporary name and a rename (common/atomic.py).

    <format>\\n<sha256 hex of payload>\\n<payload>

A reader refuses a file of another format, and a payload whose digest differs from the recorded
one (a flipped byte, a file cut short), so damage is found on load and never becomes data.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from common.atomic import atomic_write_bytes
from common.errors import MDAFError


def write_checked(path: str | Path, fmt: str, payload: bytes) -> None:
    """Write `payload` to `path` under format name `fmt` (one line, no newline), atomically."""
    digest = hashlib.sha256(payload).hexdigest()
    atomic_write_bytes(path, b"%s\n%s\n" % (fmt.encode(), digest.encode()) + payload)


def read_checked(path: str | Path, fmt: str) -> bytes:
    """The payload of a file `write_checked` wrote with format `fmt`; MDAFError naming `path` when it
    is missing, of another format, or damaged."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MDAFError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    head, _, rest = data.partition(b"\n")
    recorded, _, payload = rest.partition(b"\n")
    if head != fmt.encode():
        raise MDAFError(f"{path}: not a {fmt!r} file (its first line is {head[:40]!r})")
    actual = hashlib.sha256(payload).hexdigest()
    if recorded != actual.encode():
        raise MDAFError(f"{path}: checksum mismatch (the file records sha256 {recorded[:16]!r}..., its payload "
                        f"has {actual[:16]}...): the file is damaged")
    return payload
