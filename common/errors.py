"""The one exception type for errors a user can cause (bad input files, bad configs), and how an
entry script reports it."""
from __future__ import annotations

import sys
from collections.abc import Callable


class MDAFError(Exception):
    """A user-fixable problem; the message names the file, column or key and what was expected.

    Entry scripts catch it and exit non-zero with the message on one line.
    """


def exit_status(body: Callable[[], object]) -> int:
    """Run an entry script's `body`: 0, or 1 after printing an MDAFError as one line on stderr.

    An OSError (a folder that cannot be written, a disk that is full, a file removed mid-run) is
    the machine's answer to a path the user chose, so it is reported the same way: its path and
    reason on one line. Outputs are written atomically (common/atomic.py), so nothing is left
    half-written either way.
    """
    try:
        body()
    except MDAFError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
