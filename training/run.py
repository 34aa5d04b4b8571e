"""One experiment end to end: config -> data -> model -> training -> test -> results/<run>/ -> report.

What a run directory holds (docs/training.md): config.yaml, train.log, metrics.jsonl, tensorboard/,
checkpoints/{best,last}.pt, test_predictions.parquet, summary.json, report.md, report.txt, plots.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from common.atomic import atomic_write_bytes, atomic_write_parquet
from common.errors import MDAFError, exit_status
from common.memory import PeakMemory
from data_prep.dataset import ProcessedDataset
from data_prep.next_item.config import PROTOCOLS
from data_prep.samples import SPLITS
from data_prep.vocab import with_min_count
from models.registry import build_model
from training import distributed
from training.calibration import CALIBRATION_FILE
from training.checkpoint import check_resumable, load_checkpoint
from training.config import ExperimentConfig, load_experiment
from training.data import open_dataset
from training.device import DEVICES, resolve_device
from training.logs import RunRecorder, setup_logging
from training.records import DataSummary, Efficiency, ModelSummary, RunSummary, TrainSummary, as_json
from training.report import write_report
from training.run_lock import locked_run_dir
from training.tasks import build_task, check_model_fits
from training.tasks.base import Task, TestOutcome
from training.trainer import Trainer

log = logging.getLogger(__name__)



def argument_parser(description: str, default_config: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=default_config, help=f"experiment YAML (default {default_config})")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--raw-dir", help="raw Tianchi files: prepared into data/<source>-<hash> first")
    data.add_argument("--data-dir", help="an already prepared dataset (python -m data_prep)")
    data.add_argument("--data", help="next-item: an interactions file (RecBole .inter, MovieLens u.data or ratings.dat, "
                                     "CSV or Parquet of user, item, time, UserBehavior.csv), prepared first")
    parser.add_argument("--source", choices=("taobao_ad", "userbehavior", "generic", "next_item"),
                        help="which raw data set (default: the config's)")
    parser.add_argument("--schema", help="--source generic: the YAML schema of the --raw-dir files "
                                         "(docs/generic_source.md; default configs/data/generic.yaml)")
    parser.add_argument("--protocol", choices=PROTOCOLS,
                        help="next-item split: leave-one-out, global time cut-offs at quantiles of the times, or "
                             "calendar days (data.prep.val_days, test_days; default: the config's)")
    parser.add_argument("--device", choices=DEVICES, help="default: the config's (auto: cuda, then mps, then cpu)")
    parser.add_argument("--epochs", type=int, help="maximum epochs (default: the config's)")
    parser.add_argument("--seed", type=int, help="training seed (default: the config's)")
    parser.add_argument("--run-name", help="results/<run-name>/ (default: <experiment>-seed<seed>)")
    parser.add_argument("--results-dir", default="results", help="where run directories go (default results)")
    parser.add_argument("--resume", action="store_true", help="continue results/<run-name>/ from its last checkpoint")
    return parser


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """The experiment-config keys the command line sets."""
    data = {k: v for k, v in (("raw_dir", args.raw_dir or args.data), ("dir", args.data_dir), ("source", args.source))
            if v is not None}
    if args.protocol is not None:
        data["prep"] = {"protocol": args.protocol}
    if args.schema is not None:  # absolute when found here, so the run's config names it from anywhere
        schema = Path(args.schema).resolve() if Path(args.schema).is_file() else args.schema
        data["prep"] = {**data.get("prep", {}), "schema": str(schema)}
    train = {k: v for k, v in (("device", args.device), ("epochs", args.epochs), ("seed", args.seed))
             if v is not None}
    return {"data": data, "train": train}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolved_config(cfg: ExperimentConfig, run_name: str, dataset: ProcessedDataset) -> dict[str, Any]:
    out = dataclasses.asdict(cfg)
    out["run_name"] = run_name
    out["data"]["prepared_dir"] = str(dataset.root.resolve())  # predict.py finds it from any directory
    return out


def data_summary(dataset: ProcessedDataset, task: Task, seq_len: int) -> DataSummary:
    splits = {name: dataset.split(name) for name in SPLITS}
    ctr = ({k: float(t.label.mean()) if len(t) else float("nan") for k, t in splits.items()}
           if task.name == "ctr" else {})
    return DataSummary(dir=str(dataset.root), source=dataset.meta.get("source"),
                       synthetic=bool(dataset.meta.get("synthetic")), rows={k: len(t) for k, t in splits.items()},
                       ctr=ctr, oracle=task.oracle(), seq_len=seq_len, input=dataset.prepared_from,
                       fingerprint=dataset.meta_sha256, protocol=dataset.meta.get("protocol", ""))


def run_experiment(cfg: ExperimentConfig, run_name: str | None = None, results_dir: str | Path = "results",
                   resume: bool = False) -> Path:
    """Train, test and report `cfg`; returns the run directory. Works under torchrun."""
    ctx = distributed.from_env()
    train = cfg.train
    run_name = run_name or f"{cfg.experiment}-seed{train.seed}"
    run_dir = Path(results_dir) / run_name
    began = time.perf_counter()
    if train.threads:
        torch.set_num_threads(train.threads)
    device = resolve_device(train.device, ctx.local_rank)
    peak = PeakMemory(device.type)
    distributed.init(ctx, device)
    try:
        with owned_run_dir(run_dir, ctx, resume):
            setup_logging(run_dir, ctx.is_main)
            dataset = open_dataset(cfg.data, ctx)
            fingerprint = dataset.fingerprint()  # reads every split: a damaged one fails now, not after training
            config = json.loads(json.dumps(resolved_config(cfg, run_name, dataset)))  # as config.yaml holds it
            last = run_dir / "checkpoints" / "last.pt"
            state = load_checkpoint(last) if resume and last.is_file() else None
            if state is not None:
                check_resumable(state, config, ctx.world_size, fingerprint, last, dataset.root)
            elif resume:
                log.info("--resume: no %s yet, starting from the beginning", last)
            if ctx.is_main:
                atomic_write_bytes(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False).encode())
            check_model_fits(cfg.model, dataset)
            seed_everything(train.seed)
            model = build_model(cfg.model, with_min_count(dataset.meta, cfg.data.min_count))
            params = sum(p.numel() for p in model.parameters())
            log.info("run %s: model %s (%s parameters) on %s, %d process(es), data %s", run_name, cfg.model["name"],
                     f"{params:,}", device, ctx.world_size, dataset.root)
            task = build_task(cfg, dataset, device, ctx)
            trainer = Trainer(model, dataset, task, fingerprint, config, train, run_dir, ctx, device)
            fit = trainer.fit(resume_from=state)
            outcome = task.test(model)
            summary = RunSummary(
                run_name=run_name, label=cfg.label or cfg.model["name"], experiment=cfg.experiment, task=task.name,
                model=ModelSummary(cfg.model["name"], params), data=data_summary(dataset, task, train.seq_len),
                train=TrainSummary(fit.epochs_run, fit.best_epoch, fit.best_step, fit.stop_reason, task.monitor,
                                   fit.best_val, train.seed),
                test=outcome.metrics, calibration=outcome.calibration,
                efficiency=Efficiency(fit.seconds_per_epoch, fit.train_samples_per_s, outcome.samples_per_s,
                                      peak.mb(), params, str(device), ctx.world_size, time.perf_counter() - began),
                diagnostics=outcome.diagnostics)
            if ctx.is_main:
                _finish(run_dir, summary, outcome, task, trainer.recorder, Path(results_dir))
            distributed.barrier()
    finally:
        distributed.shutdown()
    return run_dir


@contextlib.contextmanager
def owned_run_dir(run_dir: Path, ctx: distributed.Dist, resume: bool) -> Iterator[None]:
    """Rank 0 holds `run_dir`'s lock for the block (training/run_lock.py): a second run or a
    `--resume` of a directory in use, or a new run into a finished one, stops on every rank."""
    with contextlib.ExitStack() as held:
        error = None
        if ctx.is_main:
            try:
                held.enter_context(locked_run_dir(run_dir))
                if not resume and ((run_dir / "checkpoints").exists() or (run_dir / "summary.json").exists()):
                    raise MDAFError(f"{run_dir}: holds a run already; pass --resume to continue it, or another "
                                    "--run-name")
            except MDAFError as exc:
                error = str(exc)
            except OSError as exc:
                error = f"{exc.filename or run_dir}: {exc.strerror or exc}"
        error = distributed.broadcast_object(error)
        if error is not None:
            raise MDAFError(error)
        yield


def _finish(run_dir: Path, summary: RunSummary, outcome: TestOutcome, task: Task, recorder: RunRecorder,
            results_dir: Path) -> None:
    """Rank 0: the test record, calibration (CTR), predictions, summary.json and the report."""
    recorder.record("test", as_json(summary.test))
    log.info("test: %s", task.describe(summary.test))
    if outcome.calibration is not None:
        atomic_write_bytes(run_dir / CALIBRATION_FILE, json.dumps(outcome.calibration, indent=2).encode())
    atomic_write_parquet(outcome.predictions, run_dir / "test_predictions.parquet")
    for name, table in outcome.tables.items():
        atomic_write_parquet(table, run_dir / name)
    atomic_write_bytes(run_dir / "summary.json", json.dumps(as_json(summary), indent=2).encode())
    write_report(run_dir, results_dir)
    log.info("wrote %s (report.md, report.txt, plots)", run_dir)


def main(argv: list[str] | None, description: str, default_config: str) -> int:
    """An entry script's body: parse, run, turn a user error into one line and exit status 1."""
    args = argument_parser(description, default_config).parse_args(argv)
    return exit_status(lambda: run_experiment(load_experiment(args.config, overrides_from(args)), args.run_name,
                                              args.results_dir, args.resume))
