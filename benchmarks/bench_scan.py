"""Selective scan: forward+backward time and peak memory of each back-end against the per-step loop.

    python benchmarks/bench_scan.py                 # batch {256, 2048} x L {50, 200, 1000} x d_inner {128, 256}
    python benchmarks/bench_scan.py --quick         # batch 256, L 50 only: a smoke run

What: out = selective_scan(x, dt, A, B, C, D, z) (models/ssm/selective_scan.py), the scan with
Mamba's skip and gate, (scan(x, dt, A, B, C) + D*x) * silu(z), then the gradients of
loss = (out * g).sum() for all seven inputs, with d_state 16 in float32 and Mamba-like inputs:
x, B, C ~ N(0, 1), dt = softplus(N(0, 1) - 3) (about 0.05), A = -exp(A_log) with A_log = log(1..16)
in every channel, D ~ N(1, 0.1) (Mamba initialises it to 1; the spread tells the channels apart),
z the second half of a (batch, L, 2*d_inner) N(0, 1) leaf, a view as the mixer passes it (in_proj's
output split in two; its gradient is the wider leaf's), g a fixed random tensor.

Baseline: the best plain-PyTorch form, a per-step loop computing exp(dt*A) and dt*B*x on the fly
(the "reference" back-end's form), then the skip and gate applied after the loop, as the reference
does, so every back-end and variant computes the same function. Three honest variants of it race at the
smallest shape, the repo's `selective_scan_reference` (the "reference" back-end) among them, and the
fastest is the loop at every shape. Figures are ratios against it, measured in the same run, since
the machines are noisy.

Time: the best of up to 3 runs after one warm-up run, as many as fit in about 10 s (at least one).
Memory: every (back-end, shape) is measured in a fresh spawned process, which builds the inputs,
warms up at a tiny shape (loading the kernel, starting the thread pools), then resets its peak
resident memory (writing 5 to /proc/self/clear_refs sets VmHWM to the current VmRSS) and reads VmRSS.
The peak is VmHWM after the runs minus that VmRSS: what forward+backward adds on top of the inputs,
its outputs and gradients included. On CUDA, torch.cuda's peak allocated bytes are used the same way.
The machinery is benchmarks/measure.py's, shared with bench_encoders.py.
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

import importlib
import itertools
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from measure import RunStart, argument_parser, memory_budget, publish, run_fresh

from common.memory import read_peak, reset_peak
from models.ssm.selective_scan import selective_scan

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


def skip_and_gate(y: torch.Tensor, x: torch.Tensor, D: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """(y + D*x) * silu(z): the skip and gate after a loop's scan, as `selective_scan_reference` applies them."""
    return (y + D * x) * F.silu(z)


def loop_mul_sum(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                 D: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The per-step loop with y_t = sum_n h_t * C_t (a broadcast product and a sum instead of bmm)."""
    batch, length, d_inner = x.shape
    h = x.new_zeros(batch, d_inner, A.shape[1])
    ys = []
    for t in range(length):
        dt_t = dt[:, t, :, None]
        h = torch.exp(dt_t * A) * h + (dt_t * x[:, t, :, None]) * B[:, t, None, :]
        ys.append((h * C[:, t, None, :]).sum(-1))
    return skip_and_gate(torch.stack(ys, dim=1), x, D, z)


def loop_dtx_outside(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                     D: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The per-step loop with dt*x formed once for all steps before the loop (y by bmm)."""
    batch, length, d_inner = x.shape
    dtx = (dt * x).unsqueeze(-1)  # (batch, L, d_inner, 1)
    h = x.new_zeros(batch, d_inner, A.shape[1])
    ys = []
    for t in range(length):
        h = torch.exp(dt[:, t, :, None] * A) * h + dtx[:, t] * B[:, t, None, :]
        ys.append(torch.bmm(h, C[:, t, :, None]).squeeze(-1))
    return skip_and_gate(torch.stack(ys, dim=1), x, D, z)


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
    """([x, dt, A, B, C, D, xz] as leaves requiring grad, g), the same for every back-end (seed 0);
    xz is (batch, L, 2*d_inner), and z is its second half."""
    gen = torch.Generator().manual_seed(0)
    b, length, d = shape.batch, shape.length, shape.d_inner
    x = torch.randn(b, length, d, generator=gen)
    dt = F.softplus(torch.randn(b, length, d, generator=gen) - 3)
    A = -torch.exp(torch.log(torch.arange(1, D_STATE + 1, dtype=torch.float32)).repeat(d, 1))
    B = torch.randn(b, length, D_STATE, generator=gen)
    C = torch.randn(b, length, D_STATE, generator=gen)
    D = 1 + 0.1 * torch.randn(d, generator=gen)
    xz = torch.randn(b, length, 2 * d, generator=gen)
    g = torch.randn(b, length, d, generator=gen)
    return [t.to(device).requires_grad_() for t in (x, dt, A, B, C, D, xz)], g.to(device)


def forward_backward(impl: str, leaves: list[torch.Tensor], g: torch.Tensor) -> tuple[float, list[torch.Tensor]]:
    """(seconds, [out, dx, ddt, dA, dB, dC, dD, dxz]) of loss = (out * g).sum()."""
    *inputs, xz = leaves
    began = time.perf_counter()
    out = IMPLEMENTATIONS[impl](*inputs, xz[..., g.shape[-1]:])  # z: a view, as the mixer passes it
    grads = torch.autograd.grad((out * g).sum(), leaves)
    if out.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - began, [out.detach(), *grads]


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


def measure_fresh(impl: str, shape: Shape, device: str, threads: int, save_to: Path | None = None,
                  timeout: float | None = None) -> Measurement | None:
    """`measure` in a freshly spawned process; None when it is stopped after `timeout` seconds."""
    return run_fresh(f"measuring {impl!r} at {shape}", measure, impl, shape, device, threads, save_to, timeout=timeout)


def check_equal(loop_file: Path, kernel_file: Path, kernel: str, shape: Shape) -> None:
    """Stop the benchmark unless the kernel's output and gradients equal the loop's (float32)."""
    names = ("out", "dx", "ddt", "dA", "dB", "dC", "dD", "dz (of the wider leaf)")
    for name, want, got in zip(names, torch.load(loop_file), torch.load(kernel_file)):
        try:
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())
        except AssertionError as exc:
            raise SystemExit(f"{kernel} kernel differs from the loop in {name} at {shape}:\n{exc}")


def bench_device(device: str, kernel: str, shapes: list[Shape], threads: int, mem_budget: float,
                 time_budget: float, work: Path) -> tuple[str, dict[Shape, dict]]:
    """(winning loop, {shape: {"loop": Measurement | skip reason, kernel: Measurement}}) on `device`."""
    smallest = min(shapes, key=lambda s: s.size)
    contest = {name: measure_fresh(name, smallest, device, threads) for name in LOOPS}
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
        elif (measured := measure_fresh(baseline, shape, device, threads, loop_file, time_budget)) is None:
            loop = f"skipped: stopped at the {time_budget:g} s time budget"
        else:
            loop, last = measured, (shape, measured)
        checked = isinstance(loop, Measurement)
        rows[shape] = {"loop": loop, kernel: measure_fresh(kernel, shape, device, threads, kernel_file if checked else None)}
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
    lines = ["# bench_scan: selective scan with skip and gate, (scan + D*x) * silu(z), forward+backward, "
             "d_state 16, float32", "", *header, ""]
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


def main() -> None:
    parser = argument_parser(__doc__, quick="batch 256, L 50, both d_inner only", limited="the loop")
    parser.add_argument("--time-budget-s", type=float, default=60.0, help="time budget of one loop measurement (a warm-up and at least one run)")
    args = parser.parse_args()

    batches, lengths = ([256], [50]) if args.quick else ([256, 2048], [50, 200, 1000])
    shapes = [Shape(*s) for s in itertools.product(batches, lengths, [128, 256])]
    start = RunStart()
    availability = kernel_availability()
    unavailable = [f"`{k}` back-end: not available ({why})." for k, why in availability.items() if why]
    print(*unavailable, sep="\n", flush=True)

    sections = []
    with tempfile.TemporaryDirectory() as work:
        for kernel in (k for k, why in availability.items() if why is None):
            device = "cuda" if kernel == "cuda" else "cpu"
            budget = memory_budget(device, args.memory_budget_gb)
            print(f"{kernel} kernel on {device}: loop memory budget {budget / 2**30:.1f} GB, "
                  f"time budget {args.time_budget_s:g} s", flush=True)
            baseline, rows = bench_device(device, kernel, shapes, args.threads, budget, args.time_budget_s, Path(work))
            sections.append((device, kernel, baseline, rows))

    publish(render(start.header(args.threads), sections, unavailable), RESULTS, write=not args.quick)


if __name__ == "__main__":
    main()
