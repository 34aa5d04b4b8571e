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
    """Run an entry script's `body`: 0, or 1 after printing an MDAFError as one line on stderr."""
    try:
        body()
    except MDAFError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
