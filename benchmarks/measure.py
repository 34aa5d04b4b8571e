"""What the benchmarks measure with: a measurement in a freshly spawned process, its peak memory,
the memory budget, the options every benchmark takes, the machine and load lines of a results file,
and its printing and writing.

Peak memory: `reset_peak` / `read_peak` (common/memory.py). Each measurement runs in a fresh
process, so no earlier measurement's heap or high-water mark counts.
"""
from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TypeVar

import psutil
import torch


T = TypeVar("T")


def memory_budget(device: str, gb: float | None = None) -> float:
    """The memory budget for one measurement, in bytes: `gb` when given, else half the memory available now."""
    if gb:
        return gb * 2**30
    if device == "cuda":
        return torch.cuda.mem_get_info()[0] / 2
    return psutil.virtual_memory().available / 2


def argument_parser(doc: str, quick: str, limited: str) -> argparse.ArgumentParser:
    """A parser with the options every benchmark takes: --quick (`quick`: what the smoke run measures),
    --threads, and --memory-budget-gb (`limited`: what the budget skips)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"{quick}; the results file is left alone")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (default: torch's)")
    parser.add_argument("--memory-budget-gb", type=float,
                        help=f"skip {limited} above this (default: half the available memory)")
    return parser


def _call_and_send(send: Connection, target: Callable[..., object], args: tuple) -> None:
    send.send(target(*args))


def run_fresh(what: str, target: Callable[..., T], *args: object, timeout: float | None = None) -> T | None:
    """`target(*args)` in a freshly spawned process; None when it is stopped after `timeout` seconds.

    `target` must be a module-level function (spawn pickles it by name); `what` names the
    measurement in the message that stops the benchmark when the child dies.
    """
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_call_and_send, args=(send, target, args))
    child.start()
    send.close()
    try:
        return receive.recv() if receive.poll(timeout) else None
    except EOFError:  # the child died: its traceback is above, or it was killed for memory
        child.join()
        raise SystemExit(f"{what} failed (exit code {child.exitcode})") from None
    finally:
        child.kill()
        child.join()


def best_step_time(step: Callable[[], float], warm_up: int = 2, budget_s: float = 10.0) -> float:
    """The least of 2 to 5 timed `step()` calls (each returns its own seconds), as many as fit in
    `budget_s` by the last of `warm_up` untimed calls."""
    last = [step() for _ in range(warm_up)][-1]
    return min(step() for _ in range(max(2, min(5, int(budget_s / last)))))


def cpu_model() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        return next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), platform.machine())


@dataclass(frozen=True)
class RunStart:
    """When a benchmark run began and the load average then, for the header of its report."""

    seconds: float = field(default_factory=time.perf_counter)
    load: tuple[float, float, float] = field(default_factory=os.getloadavg)

    def header(self, threads: int) -> list[str]:
        """The machine line (with the date and the command) and the load line, as of now."""
        command = " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])
        return [f"Machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, {threads} threads. "
                f"Date: {datetime.date.today()}. Command: `{command}`.",
                f"Load average (1, 5, 15 min): {', '.join(f'{v:.2f}' for v in self.load)} at the start, "
                f"{', '.join(f'{v:.2f}' for v in os.getloadavg())} at the end. "
                f"Total run time {time.perf_counter() - self.seconds:.0f} s."]


def publish(report: str, results: Path, write: bool) -> None:
    """Print the report, and write it to `results` when `write` (a smoke run leaves the file alone)."""
    print(report)
    if write:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(report + "\n")
