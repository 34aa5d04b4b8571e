"""A trained run's scoring forward as a TorchScript program that runs without this repository:

    program = torch.jit.load("results/<run>/export/scoring.pt")
    logits = program(batch)     # batch: the loader's dict of tensors (data_prep/loader.py)
                                # -> (B,) click logits (CTR), (B, V) scores of every item (next-item)

`torch.jit.trace` records the PyTorch operations the model runs on an example batch. The C++
kernels of the CPU back-end are invisible to it, so under tracing the selective scan runs as its
recurrence compiled by TorchScript (models/ssm/selective_scan.py), a loop over any window length;
everything else traces as it is. The program is checked before it is written: on a batch of
another size and window length than the example, its outputs must equal the model's, else the
model's operations do not trace (a Python branch on the data, a non-PyTorch model) and nothing is
written. `mdaf.json`, stored inside the program (`_extra_files`), names the run, the task, the
batch keys the example had and the run's calibration (p = sigma(a z + b)).
"""
from __future__ import annotations

import io
import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from common.atomic import atomic_write_bytes
from common.errors import MDAFError
from data_prep.dataset import ProcessedDataset
from data_prep.loader import BatchLoader
from models.registry import model_task
from training.predict import run_calibration, run_config, trained_model

log = logging.getLogger(__name__)

EXAMPLE_ROWS, CHECK_ROWS = 8, 37  # two batch sizes, so a size the trace fixed would show
TOLERANCE = 1e-4


class ScoringForward(nn.Module):
    """The model's forward as a function of the batch alone: its logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(batch).logit


def export_run(run_dir: str | Path, out: str | Path | None = None, checkpoint: str = "best") -> Path:
    """Trace, check and write the program of `run_dir`'s model (module doc); returns its path
    (default <run>/export/scoring.pt)."""
    run_dir = Path(run_dir)
    cfg = run_config(run_dir)
    dataset = ProcessedDataset(cfg["data"]["prepared_dir"])
    model = trained_model(run_dir, cfg, checkpoint, dataset, torch.device("cpu")).eval()
    seq_len = int(cfg["train"]["seq_len"])
    split = next((s for s in ("test", "val", "train") if len(dataset.split(s)) >= EXAMPLE_ROWS + CHECK_ROWS), None)
    if split is None:
        raise MDAFError(f"{dataset.root}: no split holds {EXAMPLE_ROWS + CHECK_ROWS} samples to trace and check with")
    example = BatchLoader(dataset, split, seq_len, EXAMPLE_ROWS).batch(range(EXAMPLE_ROWS))
    check = BatchLoader(dataset, split, max(1, seq_len // 2), CHECK_ROWS).batch(
        range(EXAMPLE_ROWS, EXAMPLE_ROWS + CHECK_ROWS))
    name = cfg["model"]["name"]
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            program = torch.jit.trace(ScoringForward(model), (example,), strict=False, check_trace=False)
            diff = float((program(check) - model(check).logit).abs().max())
    except Exception as exc:  # tracing fails in many ways on operations it cannot record
        raise MDAFError(f"{run_dir}: model {name!r} cannot be exported: tracing failed "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not diff <= TOLERANCE:
        raise MDAFError(f"{run_dir}: model {name!r} cannot be exported: the traced program differs from the model "
                        f"by {diff:.3g} on a batch of another size and window length (its operations depend on the "
                        "data in ways a trace does not record)")
    task = model_task(name)
    calibration = run_calibration(run_dir, checkpoint).to_dict() if task == "ctr" else None
    spec = {"run": run_dir.name, "model": name, "task": task, "checkpoint": checkpoint, "seq_len": seq_len,
            "output": "(B,) click logits" if task == "ctr" else "(B, V) scores of every item index",
            "calibration": calibration, "parity_max_abs_diff": diff,
            "inputs": {k: {"dtype": str(v.dtype), "shape": ["B", *(["W"] if v.dim() > 1 else [])]}
                       for k, v in example.items()}}
    path = Path(out) if out else run_dir / "export" / "scoring.pt"
    buffer = io.BytesIO()
    torch.jit.save(program, buffer, _extra_files={"mdaf.json": json.dumps(spec, indent=2)})
    atomic_write_bytes(path, buffer.getvalue())
    log.info("wrote %s (%s, largest difference from the model %.2g)", path, name, diff)
    return path
