"""Selective scan: forward+backward time and peak memory of each back-end against the per-step loop.

    python benchmarks/bench_scan.py                 # batch {256, 2048} x L {50, 200, 1000} x d_inner {128, 256}
    python benchmarks/bench_scan.py --quick         # batch 256, L 50 only: a smoke run

What: y = selective_scan(x, dt, A, B, C) (models/mdaf/selective_scan.py), then the gradients of
loss = (y * g).sum() for all five inputs, with d_state 16 in float32 and Mamba-like inputs:
x, B, C ~ N(0, 1), dt = softplus(N(0, 1) - 3) (about 0.05), A = -exp(A_log) with A_log = log(1..16)
in every channel, g a fixed random tensor.

Baseline: the best plain-PyTorch form, a per-step loop computing exp(dt*A) and dt*B*x on the fly
(REFERENCES.md section 3). Three honest variants of it race at the smallest shape, the repo's
`selective_scan_reference` (the "reference" back-end) among them, and the fastest is the loop at every
shape. Figures are ratios against it, measured in the same run, since the machines are noisy.

Time: the best of up to 3 runs after one warm-up run, as many as fit in about 10 s (at least one).
Memory: every (back-end, shape) is measured in a fresh spawned process, which builds the inputs,
warms up at a tiny shape (loading the kernel, starting the thread pools), then resets its peak resident
memory (writing 5 to /proc/self/clear_refs sets VmHWM to the current VmRSS) and reads VmRSS. The peak
is VmHWM after the runs minus that VmRSS: what forward+backward adds on top of the inputs, its outputs
and gradients included. On CUDA, torch.cuda's peak allocated bytes are used the same way.
The loop keeps two (batch, d_inner, d_state) tensors per step for backward, so its memory and time
are estimated before each shape by extrapolating its largest measured shape so far (at first, the
race's) linearly in batch*L*d_inner; a shape is skipped when either exceeds its budget. The loop
slows down faster than linearly once it holds GBs (page faults: its freed per-step tensors go back to
the system and are faulted in again), so a loop measurement that runs past the time budget is also
stopped and reported as skipped. The kernels are never skipped. Where both ran, the kernel's output and gradients must equal the loop's within
float32 tolerance, or the benchmark stops.
Writes benchmarks/results/bench_scan.md (not with --quick).
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import itertools
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path

import psutil
import torch
import torch.nn.functional as F

from models.mdaf.selective_scan import selective_scan

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "bench_scan.md"
D_STATE = 16
REPEAT_SECONDS = 10.0  # timed runs per measurement: as many as fit in this (by the warm-up), 1 to 3
TARGET_SHAPE = (256, 50, 256)
TARGET_SPEEDUP = 3.0


@dataclass(frozen=True, order=True)
class Shape:
    batch: int
    length: int
    d_inner: int

    @property
    def size(self) -> int:
        return self.batch * self.length * self.d_inner


@dataclass
class Measurement:
    seconds: float  # the best timed run
    peak_mb: float


def loop_mul_sum(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """The per-step loop with y_t = sum_n h_t * C_t (a broadcast product and a sum instead of bmm)."""
    batch, length, d_inner = x.shape
    h = x.new_zeros(batch, d_inner, A.shape[1])
    ys = []
    for t in range(length):
        dt_t = dt[:, t, :, None]
        h = torch.exp(dt_t * A) * h + (dt_t * x[:, t, :, None]) * B[:, t, None, :]
        ys.append((h * C[:, t, None, :]).sum(-1))
    return torch.stack(ys, dim=1)


def loop_dtx_outside(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """The per-step loop with dt*x formed once for all steps before the loop (y by bmm)."""
    batch, length, d_inner = x.shape
    dtx = (dt * x).unsqueeze(-1)  # (batch, L, d_inner, 1)
    h = x.new_zeros(batch, d_inner, A.shape[1])
    ys = []
    for t in range(length):
        h = torch.exp(dt[:, t, :, None] * A) * h + dtx[:, t] * B[:, t, None, :]
        ys.append(torch.bmm(h, C[:, t, :, None]).squeeze(-1))
    return torch.stack(ys, dim=1)


LOOPS = {
    "reference back-end (bmm for y)": partial(selective_scan, backend="reference"),
    "mul+sum for y": loop_mul_sum,
    "dt*x before the loop": loop_dtx_outside,
}
KERNELS = {"cpu": partial(selective_scan, backend="cpu"), "cuda": partial(selective_scan, backend="cuda")}
IMPLEMENTATIONS = {**LOOPS, **KERNELS}


def kernel_availability() -> dict[str, str | None]:
    """Each kernel back-end -> None when it can run here, else the reason it cannot."""
    reasons = [] if torch.cuda.is_available() else ["torch.cuda.is_available() is False"]
    try:
        importlib.import_module("mamba_ssm.ops.selective_scan_interface")
    except Exception as exc:  # ImportError, or its CUDA extension failing to load
        reasons.append(f"mamba-ssm does not import: {type(exc).__name__}: {exc}")
    return {"cpu": None, "cuda": "; ".join(reasons) or None}


def make_inputs(shape: Shape, device: str) -> tuple[list[torch.Tensor], torch.Tensor]:
    """([x, dt, A, B, C] as leaves requiring grad, g), the same for every back-end (seed 0)."""
    gen = torch.Generator().manual_seed(0)
    b, length, d = shape.batch, shape.length, shape.d_inner
    x = torch.randn(b, length, d, generator=gen)
    dt = F.softplus(torch.randn(b, length, d, generator=gen) - 3)
    A = -torch.exp(torch.log(torch.arange(1, D_STATE + 1, dtype=torch.float32)).repeat(d, 1))
    B = torch.randn(b, length, D_STATE, generator=gen)
    C = torch.randn(b, length, D_STATE, generator=gen)
    g = torch.randn(b, length, d, generator=gen)
    return [t.to(device).requires_grad_() for t in (x, dt, A, B, C)], g.to(device)


def forward_backward(impl: str, leaves: list[torch.Tensor], g: torch.Tensor) -> tuple[float, list[torch.Tensor]]:
    """(seconds, [y, dx, ddt, dA, dB, dC]) of loss = (y * g).sum()."""
    began = time.perf_counter()
    y = IMPLEMENTATIONS[impl](*leaves)
    grads = torch.autograd.grad((y * g).sum(), leaves)
    if y.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - began, [y.detach(), *grads]


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(key + ":"))


def reset_peak(device: str) -> int:
    """Start a fresh peak; returns the memory in use now (resident bytes, or CUDA bytes allocated)."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    return _status_bytes("VmRSS")


def read_peak(device: str) -> int:
    return torch.cuda.max_memory_allocated() if device == "cuda" else _status_bytes("VmHWM")


def measure(impl: str, shape: Shape, device: str, threads: int, save_to: Path | None) -> Measurement:
    """Time and peak memory of forward+backward; run in a fresh process (see the module doc)."""
    torch.set_num_threads(threads)
    leaves, g = make_inputs(shape, device)
    forward_backward(impl, *make_inputs(Shape(2, 4, shape.d_inner), device))
    in_use = reset_peak(device)
    warm_up, result = forward_backward(impl, leaves, g)
    repeats = max(1, min(3, int(REPEAT_SECONDS / warm_up)))
    times = []
    for _ in range(repeats):
        result = None  # free the previous run's outputs before the next run allocates its own
        seconds, result = forward_backward(impl, leaves, g)
        times.append(seconds)
    peak = read_peak(device) - in_use
    if save_to is not None:
        torch.save([t.cpu() for t in result], save_to)
    return Measurement(min(times), peak / 2**20)


def _measure_and_send(send: Connection, *args) -> None:
    send.send(measure(*args))


def run_fresh(impl: str, shape: Shape, device: str, threads: int, save_to: Path | None = None,
              timeout: float | None = None) -> Measurement | None:
    """`measure` in a freshly spawned process; None when it is stopped after `timeout` seconds."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_measure_and_send, args=(send, impl, shape, device, threads, save_to))
    child.start()
    send.close()
    try:
        return receive.recv() if receive.poll(timeout) else None
    except EOFError:  # the child died: its traceback is above, or it was killed for memory
        child.join()
        raise SystemExit(f"measuring {impl!r} at {shape} failed (exit code {child.exitcode})") from None
    finally:
        child.kill()
        child.join()


def check_equal(loop_file: Path, kernel_file: Path, kernel: str, shape: Shape) -> None:
    """Stop the benchmark unless the kernel's output and gradients equal the loop's (float32)."""
    names = ("y", "dx", "ddt", "dA", "dB", "dC")
    for name, want, got in zip(names, torch.load(loop_file), torch.load(kernel_file)):
        try:
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())
        except AssertionError as exc:
            raise SystemExit(f"{kernel} kernel differs from the loop in {name} at {shape}:\n{exc}")


def memory_budget(device: str) -> float:
    """Default memory budget for one loop measurement: half the memory available now, in bytes."""
    if device == "cuda":
        return torch.cuda.mem_get_info()[0] / 2
    return psutil.virtual_memory().available / 2


def bench_device(device: str, kernel: str, shapes: list[Shape], threads: int, mem_budget: float,
                 time_budget: float, work: Path) -> tuple[str, dict[Shape, dict]]:
    """(winning loop, {shape: {"loop": Measurement | skip reason, kernel: Measurement}}) on `device`."""
    smallest = min(shapes, key=lambda s: s.size)
    contest = {name: run_fresh(name, smallest, device, threads) for name in LOOPS}
    for name, m in contest.items():
        print(f"loop variant {name!r} at {smallest}: {m.seconds:.3f} s, peak {m.peak_mb:.0f} MB", flush=True)
    baseline = min(contest, key=lambda name: contest[name].seconds)
    print(f"baseline loop on {device}: {baseline!r} (fastest at the smallest shape)", flush=True)

    rows: dict[Shape, dict] = {}
    last = (smallest, contest[baseline])  # the loop's largest measured shape so far, for extrapolation
    loop_file, kernel_file = work / "loop.pt", work / "kernel.pt"
    for shape in sorted(shapes, key=lambda s: s.size):
        scale = shape.size / last[0].size
        # a measurement is at least a warm-up and one timed run
        est_bytes, est_seconds = last[1].peak_mb * 2**20 * scale, 2 * last[1].seconds * scale
        if est_bytes > mem_budget or est_seconds > time_budget:
            loop = f"skipped: needs ~{est_bytes / 2**30:.1f} GB / ~{est_seconds:.0f} s"
        elif (measured := run_fresh(baseline, shape, device, threads, loop_file, time_budget)) is None:
            loop = f"skipped: stopped at the {time_budget:g} s time budget"
        else:
            loop, last = measured, (shape, measured)
        checked = isinstance(loop, Measurement)
        rows[shape] = {"loop": loop, kernel: run_fresh(kernel, shape, device, threads, kernel_file if checked else None)}
        if checked:
            check_equal(loop_file, kernel_file, kernel, shape)
        print(describe(shape, rows[shape], kernel), flush=True)
    return baseline, rows


def describe(shape: Shape, row: dict, kernel: str) -> str:
    loop, fast = row["loop"], row[kernel]
    text = f"batch {shape.batch} L {shape.length} d_inner {shape.d_inner}: {kernel} {fast.seconds:.3f} s, {fast.peak_mb:.0f} MB"
    if isinstance(loop, str):
        return f"{text}; loop {loop}"
    return (f"{text}; loop {loop.seconds:.3f} s, {loop.peak_mb:.0f} MB: "
            f"{loop.seconds / fast.seconds:.1f}x faster, {loop.peak_mb / fast.peak_mb:.1f}x less memory")


def verdict(rows: dict[Shape, dict], kernel: str) -> list[str]:
    """The issue's target for `kernel`, and whether it is met."""
    target = Shape(*TARGET_SHAPE)
    speedups = {s: r["loop"].seconds / r[kernel].seconds for s, r in rows.items() if isinstance(r["loop"], Measurement)}
    lines = [f"Target: the {kernel} kernel at least {TARGET_SPEEDUP:g}x faster than the loop at batch {target.batch}, "
             f"L {target.length}, d_inner {target.d_inner}, and never slower at any measured shape."]
    if target in speedups:
        met = speedups[target] >= TARGET_SPEEDUP
        lines.append(f"- {TARGET_SPEEDUP:g}x at the target shape: {'met' if met else 'NOT met'} ({speedups[target]:.1f}x).")
    else:
        lines.append("- the target shape was not measured.")
    if not speedups:
        return lines
    slowest = min(speedups, key=speedups.get)
    met = speedups[slowest] >= 1
    lines.append(f"- never slower: {'met' if met else 'NOT met'} (lowest speed-up {speedups[slowest]:.1f}x, at "
                 f"batch {slowest.batch}, L {slowest.length}, d_inner {slowest.d_inner}).")
    return lines


def render(header: list[str], sections: list[tuple[str, str, str, dict[Shape, dict]]], unavailable: list[str]) -> str:
    lines = ["# bench_scan: selective scan, forward+backward, d_state 16, float32", "", *header, ""]
    for device, kernel, baseline, rows in sections:
        lines += [f"## `{kernel}` kernel on {device}; loop: {baseline}", "",
                  "| batch | L | d_inner | loop s | loop peak MB | kernel s | kernel peak MB | speed-up (loop/kernel) | memory ratio |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for shape in sorted(rows):
            loop, fast = rows[shape]["loop"], rows[shape][kernel]
            cells = [str(shape.batch), str(shape.length), str(shape.d_inner)]
            if isinstance(loop, str):
                cells += [loop, "", f"{fast.seconds:.3f}", f"{fast.peak_mb:.0f}", "", ""]
            else:
                cells += [f"{loop.seconds:.3f}", f"{loop.peak_mb:.0f}", f"{fast.seconds:.3f}", f"{fast.peak_mb:.0f}",
                          f"{loop.seconds / fast.seconds:.1f}x", f"{loop.peak_mb / fast.peak_mb:.1f}x"]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", *verdict(rows, kernel), ""]
    lines += [*unavailable, "",
              "Seconds: the best of up to 3 runs after a warm-up. Peak MB: the resident memory (CUDA: allocated "
              "memory) that forward+backward adds on top of its inputs, each figure from a fresh process. Memory "
              "ratio: loop peak / kernel peak. Skipped loop shapes: the loop's memory or time (a warm-up and "
              "one run), extrapolated from its largest measured shape, is over the budget, or its "
              "measurement was stopped at the time budget. Where both ran, the kernel's output and "
              "gradients equal the loop's within rtol 1e-4, atol 1e-4 x each tensor's largest magnitude."]
    return "\n".join(lines)


def cpu_model() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        return next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), platform.machine())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="batch 256, L 50, both d_inner only")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (default: torch's)")
    parser.add_argument("--memory-budget-gb", type=float, help="skip the loop above this (default: half the available memory)")
    parser.add_argument("--time-budget-s", type=float, default=60.0, help="time budget of one loop measurement (a warm-up and at least one run)")
    args = parser.parse_args()

    batches, lengths = ([256], [50]) if args.quick else ([256, 2048], [50, 200, 1000])
    shapes = [Shape(*s) for s in itertools.product(batches, lengths, [128, 256])]
    began, load_before = time.perf_counter(), os.getloadavg()
    availability = kernel_availability()
    unavailable = [f"`{k}` back-end: not available ({why})." for k, why in availability.items() if why]
    print(*unavailable, sep="\n", flush=True)

    sections = []
    with tempfile.TemporaryDirectory() as work:
        for kernel in (k for k, why in availability.items() if why is None):
            device = "cuda" if kernel == "cuda" else "cpu"
            budget = args.memory_budget_gb * 2**30 if args.memory_budget_gb else memory_budget(device)
            print(f"{kernel} kernel on {device}: loop memory budget {budget / 2**30:.1f} GB, "
                  f"time budget {args.time_budget_s:g} s", flush=True)
            baseline, rows = bench_device(device, kernel, shapes, args.threads, budget, args.time_budget_s, Path(work))
            sections.append((device, kernel, baseline, rows))

    load_after = os.getloadavg()
    command = " ".join(["python benchmarks/bench_scan.py", *sys.argv[1:]])
    header = [f"Machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads. "
              f"Date: {datetime.date.today()}. Command: `{command}`.",
              f"Load average (1, 5, 15 min): {', '.join(f'{v:.2f}' for v in load_before)} at the start, "
              f"{', '.join(f'{v:.2f}' for v in load_after)} at the end. Total run time {time.perf_counter() - began:.0f} s."]
    report = render(header, sections, unavailable)
    print(report)
    if not args.quick:  # a smoke run leaves the results file alone
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(report + "\n")


if __name__ == "__main__":
    main()
