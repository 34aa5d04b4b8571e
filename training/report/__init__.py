"""A finished run's report: report.md, report.txt and PNG plots written into its run directory."""
from __future__ import annotations

from pathlib import Path

from training.report.write import write


def write_report(run_dir: Path, results_root: Path | None = None) -> None:
    """Write report.md, report.txt and the plots of the finished run in `run_dir`.

    `results_root` is searched recursively for other finished runs to compare against; it
    defaults to the run directory's parent.
    """
    write(Path(run_dir), None if results_root is None else Path(results_root))
