"""The one exception type for errors a user can cause (bad input files, bad configs)."""


class MDAFError(Exception):
    """A user-fixable problem; the message names the file, column or key and what was expected.

    Entry scripts catch it and exit non-zero with the message on one line.
    """
