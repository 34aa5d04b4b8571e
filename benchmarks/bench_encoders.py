"""Sequential-branch encoders: training-step throughput and peak memory of Mamba against the transformer.

    python benchmarks/bench_encoders.py             # L {50, 200, 1000, 2000, 5000} at batch 8, and L 50 at batch 256
    python benchmarks/bench_encoders.py --quick     # L 50 and 200 only: a smoke run
    python benchmarks/bench_encoders.py --dropout 0 # both encoders without dropout (inference-like)

What: one training step of models/mdaf/sequence_branch.py's SequenceBranch (tokens, projection,
encoder, target attention) under a Linear(out_dim -> 1) head: forward, BCE-with-logits loss,
backward and an Adam step, on the CPU in float32. Three encoders, all hidden 128 with
SequenceConfig's other defaults (FFN 4x GELU, dropout 0.2):
- Mamba: `SequenceConfig(encoder="mamba")`, Mamba4Rec's "v2" configuration (2 layers, d_state 16,
  d_conv 4, expand 2), scan and convolution on the C++ CPU kernels;
- Transformer (2 layers): BST's encoder with its time-gap embedding
  (`encoder="transformer", time_embedding=True`), 8 heads, at Mamba's depth: the fair comparison;
- Transformer (1 layer, BST paper): the same with the one layer of BST's paper, a second baseline;
- Hybrid (2 layers): MambaRec's gated Mamba / causal attention layers (`encoder="hybrid"`, 8 heads).
The batch is synthetic, built directly: a `behavior` timeline (cate, brand, btag) with full-length
histories (mask all True), random indices and time gaps, the candidate's cate and brand, 0/1 labels.
The vocabularies are small (1000 cates and brands), so that the embedding tables' Adam update stays
small next to the encoders. The batch is 8 at every L and for every encoder, so that memory growth
in L shows: the 2-layer transformer keeps (batch, heads, L, L) attention weights and needs about
7.5 GB at L 2000 and batch 8, so batch 32 would need about 30 GB, more than half a 22 GB machine.
One extra row: batch 256 at L 50, the throughput at a usual training batch.
The dropout includes the transformer's attention dropout, with which torch's CPU
scaled_dot_product_attention takes its math path (the (batch, heads, L, L) weights and dropout mask
materialised); without dropout it takes a fused kernel whose memory grows linearly in L, and the
transformer is far faster at long L. The default figures are those of training with dropout, as
configured; `--dropout 0` measures the other case, into bench_encoders_dropout0.md.

Time: after a tiny step (batch 2, L 4) and 2 warm-up steps, the best of 2 to 5 steps, as many as
fit in about 10 s by the second warm-up step. Seq/s: batch / that time.
Memory: each (encoder, shape) runs in a fresh spawned process, which builds the model, its Adam
optimiser and the batch and takes the tiny step (loading the kernels, creating the gradients and
Adam's state, starting the thread pools), then resets its peak resident memory (writing 5 to
/proc/self/clear_refs; benchmarks/measure.py, as bench_scan.py does). Peak: VmHWM after the steps
minus VmRSS at that reset, what training steps add on top of the model, its optimiser and the batch.
A transformer or hybrid shape is skipped when its memory, extrapolated from its last measured shape linearly
in batch and quadratically in L (attention is O(L^2), an over-estimate), exceeds the budget (by
default half the memory available at the start).
Writes benchmarks/results/bench_encoders.md (not with --quick).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from measure import RunStart, argument_parser, best_step_time, memory_budget, publish, run_fresh

from common.memory import read_peak, reset_peak
from models.mdaf.sequence_branch import SequenceBranch, SequenceConfig

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "bench_encoders.md"
BATCH = 8  # every L, every encoder: the largest power of two at which the 2-layer transformer fits L 2000 in 11 GB
WIDE_BATCH = 256  # the extra row, at L 50
LENGTHS = [50, 200, 1000, 2000, 5000]
VOCAB = 1000  # cates and brands each
META = {
    "vocab_sizes": {"cate": VOCAB, "brand": VOCAB, "btag": 6},  # btag: pad, out-of-vocabulary, 4 types
    "timelines": {"behavior": {"fields": {"cate": "cate", "brand": "brand", "btag": "btag"}}},
    "target_fields": {"cate": "cate", "brand": "brand"},
}
MAMBA = "Mamba"
ENCODERS = {
    MAMBA: SequenceConfig(encoder="mamba"),
    "Transformer (2 layers)": SequenceConfig(encoder="transformer", time_embedding=True, n_layers=2, n_heads=8),
    "Transformer (1 layer, BST paper)": SequenceConfig(encoder="transformer", time_embedding=True, n_layers=1, n_heads=8),
    "Hybrid (2 layers)": SequenceConfig(encoder="hybrid", n_layers=2, n_heads=8),
}
QUADRATIC = ("transformer", "hybrid")  # encoders whose memory grows as L^2
BASELINES = [name for name in ENCODERS if name != MAMBA]
WARM_UP_STEPS = 2
REPEAT_SECONDS = 10.0  # timed steps per measurement: as many as fit in this (by the warm-up), 2 to 5
SPEED_TARGETS = {50: 1.0, 1000: 3.0}  # L -> least Mamba seq/s / transformer seq/s, at BATCH
LINEAR_FROM, LINEAR_FACTOR = 200, 1.5  # Mamba's peak / L within this factor from L LINEAR_FROM on


@dataclass(frozen=True, order=True)
class Shape:
    length: int
    batch: int


@dataclass
class Measurement:
    seconds: float  # the best timed step
    peak_mb: float

    def seq_per_s(self, shape: Shape) -> float:
        return shape.batch / self.seconds


def make_batch(shape: Shape) -> dict[str, torch.Tensor]:
    """A synthetic batch of full-length `behavior` histories, as the loader's keys and dtypes (seed 0)."""
    gen = torch.Generator().manual_seed(0)
    b, length = shape.batch, shape.length
    sizes = META["vocab_sizes"]
    return {
        **{f"behavior_{f}": torch.randint(2, sizes[f], (b, length), generator=gen) for f in ("cate", "brand", "btag")},
        "behavior_mask": torch.ones(b, length, dtype=torch.bool),
        "behavior_time_gap": torch.randint(60, 30 * 86400, (b, length), generator=gen),  # seconds
        **{f: torch.randint(2, sizes[f], (b,), generator=gen) for f in ("cate", "brand")},
        "label": torch.randint(0, 2, (b,), generator=gen).float(),
    }


def train_step(model: nn.Module, optimiser: torch.optim.Optimizer, batch: dict[str, torch.Tensor]) -> float:
    """Seconds of forward, BCE-with-logits loss, backward and an optimiser step."""
    began = time.perf_counter()
    loss = F.binary_cross_entropy_with_logits(model(batch).squeeze(-1), batch["label"])
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return time.perf_counter() - began


def measure(cfg: SequenceConfig, shape: Shape, threads: int) -> Measurement:
    """Time and peak memory of training steps; run in a fresh process (see the module doc)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    branch = SequenceBranch(cfg, META)
    model = nn.Sequential(branch, nn.Linear(branch.out_dim, 1))
    optimiser = torch.optim.Adam(model.parameters())
    batch = make_batch(shape)
    train_step(model, optimiser, make_batch(Shape(4, 2)))
    in_use = reset_peak("cpu")
    seconds = best_step_time(lambda: train_step(model, optimiser, batch), WARM_UP_STEPS, REPEAT_SECONDS)
    return Measurement(seconds, (read_peak("cpu") - in_use) / 2**20)


def bench(encoders: dict[str, SequenceConfig], shapes: list[Shape], threads: int, budget: float) -> dict[Shape, dict[str, Measurement | str]]:
    """{shape: {encoder: Measurement, or the reason it was skipped}}, shapes in the order given."""
    rows: dict[Shape, dict[str, Measurement | str]] = {}
    last: dict[str, tuple[Shape, Measurement]] = {}  # each encoder's last measured shape, for extrapolation
    for shape in shapes:
        row: dict[str, Measurement | str] = {}
        for name, cfg in encoders.items():
            if cfg.encoder in QUADRATIC and name in last:
                before, m = last[name]
                estimate = m.peak_mb * 2**20 * shape.batch / before.batch * (shape.length / before.length) ** 2
                if estimate > budget:
                    row[name] = f"skipped: needs ~{estimate / 2**30:.1f} GB"
                    continue
            row[name] = run_fresh(f"measuring {name} at {shape}", measure, cfg, shape, threads)
            last[name] = (shape, row[name])
        rows[shape] = row
        print(describe(shape, row), flush=True)
    return rows


def describe(shape: Shape, row: dict[str, Measurement | str]) -> str:
    cells = [f"{name} {m}" if isinstance(m, str) else f"{name} {m.seq_per_s(shape):.1f} seq/s, {m.peak_mb:.0f} MB"
             for name, m in row.items()]
    return f"L {shape.length} batch {shape.batch}: " + "; ".join(cells)


def speedup(row: dict[str, Measurement | str], baseline: str) -> float | None:
    """Mamba's seq/s over `baseline`'s (same batch), or None when either was not measured."""
    mamba, other = row[MAMBA], row[baseline]
    if isinstance(mamba, str) or isinstance(other, str):
        return None
    return other.seconds / mamba.seconds


def verdict(rows: dict[Shape, dict[str, Measurement | str]]) -> list[str]:
    """The targets, and whether each is met."""
    lines = [f"Targets (batch {BATCH}): Mamba at least as fast as the transformer at L 50 and at least "
             f"{SPEED_TARGETS[1000]:g}x faster at L 1000, against each baseline; Mamba's memory linear in L: "
             f"peak MB / L within a factor {LINEAR_FACTOR:g} from L {LINEAR_FROM} to {LENGTHS[-1]}."]
    for length, least in SPEED_TARGETS.items():
        for baseline in BASELINES:
            row = rows.get(Shape(length, BATCH))
            ratio = None if row is None else speedup(row, baseline)
            target = f"- Mamba at least {least:g}x the seq/s of {baseline} at L {length}"
            if ratio is None:
                lines.append(f"{target}: not measured.")
            else:
                lines.append(f"{target}: {'met' if ratio >= least else 'NOT met'} ({ratio:.2f}x).")
    per_position = {s.length: r[MAMBA].peak_mb / s.length for s, r in rows.items()  # Mamba is never skipped
                    if s.batch == BATCH and s.length >= LINEAR_FROM}
    if len(per_position) < 2:
        lines.append(f"- linear memory: not measured (needs two lengths from L {LINEAR_FROM} on).")
        return lines
    spread = max(per_position.values()) / min(per_position.values())
    values = ", ".join(f"{v:.2f} at L {k}" for k, v in sorted(per_position.items()))
    lines.append(f"- linear memory: {'met' if spread <= LINEAR_FACTOR else 'NOT met'} "
                 f"(peak MB / L {values}: a factor {spread:.2f}).")
    return lines


def render(header: list[str], rows: dict[Shape, dict[str, Measurement | str]], budget: float, dropout: float) -> str:
    lines = ["# bench_encoders: sequential-branch training step, Mamba vs transformer, hidden 128, float32, CPU",
             "", *header, "",
             "| L | batch | " + " | ".join(f"{name} seq/s | peak MB" for name in ENCODERS) + " | "
             + " | ".join(f"speed-up vs {name}" for name in BASELINES) + " | Mamba MB per position (peak / L) |",
             "|---|---|" + "---|---|" * len(ENCODERS) + "---|" * len(BASELINES) + "---|"]
    for shape in sorted(rows):
        row = rows[shape]
        cells = [str(shape.length), str(shape.batch)]
        for m in row.values():
            cells += [m, ""] if isinstance(m, str) else [f"{m.seq_per_s(shape):.1f}", f"{m.peak_mb:.0f}"]
        ratios = [speedup(row, baseline) for baseline in BASELINES]
        cells += ["" if r is None else f"{r:.2f}x" for r in ratios]
        cells.append(f"{row[MAMBA].peak_mb / shape.length:.2f}")  # Mamba is never skipped
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *verdict(rows), "",
              "Seq/s: batch / the best of 2 to 5 training steps (forward, loss, backward, Adam step) after "
              f"{WARM_UP_STEPS} warm-up steps. Peak MB: the resident memory the steps add on top of the model, "
              "its optimiser state and the batch, each figure from a fresh process. Speed-up: Mamba seq/s / "
              f"the baseline's, at the same batch. Skipped: the shape's memory, extrapolated from the "
              f"encoder's last measured shape (linearly in batch, quadratically in L), is over the "
              f"{budget / 2**30:.1f} GB budget. Full-length histories (no padding), small vocabularies "
              f"({VOCAB} cates and brands), dropout {dropout} (training mode). With dropout, the transformer's "
              "attention dropout makes torch's CPU attention take its math path, (batch, heads, L, L) weights "
              "and dropout mask materialised; without dropout a fused kernel runs, with memory linear in L."]
    return "\n".join(lines)


def main() -> None:
    parser = argument_parser(__doc__, quick="L 50 and 200 only", limited="a transformer or hybrid shape")
    parser.add_argument("--dropout", type=float, help="dropout of both encoders (default: the configs' "
                        f"{ENCODERS[MAMBA].dropout}); the results go to bench_encoders_dropout<value>.md")
    args = parser.parse_args()
    encoders = ENCODERS if args.dropout is None else {
        name: replace(cfg, dropout=args.dropout) for name, cfg in ENCODERS.items()
    }
    dropout = encoders[MAMBA].dropout
    results = RESULTS if args.dropout is None else RESULTS.with_name(f"bench_encoders_dropout{args.dropout:g}.md")

    lengths = LENGTHS[:2] if args.quick else LENGTHS
    shapes = sorted([Shape(50, WIDE_BATCH), *(Shape(length, BATCH) for length in lengths)])
    start = RunStart()
    budget = memory_budget("cpu", args.memory_budget_gb)
    print(f"batch {BATCH} (and {WIDE_BATCH} at L 50), {args.threads} threads, transformer memory budget "
          f"{budget / 2**30:.1f} GB", flush=True)
    rows = bench(encoders, shapes, args.threads, budget)
    publish(render(start.header(args.threads), rows, budget, dropout), results, write=not args.quick)


if __name__ == "__main__":
    main()
