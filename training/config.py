"""The training recipe (`TrainConfig`) and the experiment that wraps it (`ExperimentConfig`).

An experiment YAML (configs/experiments/*.yaml) names its data, its model, its recipe and its
success criteria. `model` and `train` may each be a path to a YAML file, or a mapping with an
optional `base: <path>` whose keys the rest of the mapping overrides (nested mappings merge), so
one recipe file serves every experiment. Relative paths are relative to the repository root, so
the scripts run from any directory:

    train: {base: configs/train/v2.yaml, epochs: 5}
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.config import from_dict, load_yaml
from common.errors import MDAFError
from models.losses import AUX_LOSSES
from training.device import DEVICES

AUX_LOSS_CHOICES = ("auto", *AUX_LOSSES)


@dataclass
class TrainConfig:
    """The recipe; configs/train/v2.yaml holds the user's "v2" values.

    batch_size is global (split evenly over DDP ranks). The learning rate is `lr` times the
    factor of training/schedule.py: warm-up from `warmup_start` over `warmup_epochs`, then cosine
    decay to `final_lr_ratio` at the last step of epoch `epochs`. aux_loss 'auto' means Tri-BCE
    for models with sub-network heads, plain BCE otherwise. checkpoint_every: also write last.pt
    every that many steps inside an epoch (0: at epoch ends only). eval_every: also validate (and
    count early stopping's patience, and keep the best weights) every that many steps, or, below 1,
    every that fraction of an epoch (0.25: four times an epoch, on data of any size; 0: at epoch
    ends only). embedding_l2: the weight of training/regularization.py's penalty on the embedding
    rows a batch reads. embedding_lr_scale: the embedding tables' learning rate as a multiple of lr.
    """

    epochs: int = 20
    batch_size: int = 2048
    eval_batch_size: int = 8192
    seq_len: int = 50
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 5e-5
    warmup_epochs: float = 2.0
    warmup_start: float = 0.5
    final_lr_ratio: float = 0.1
    label_smoothing: float = 0.05
    aux_loss: str = "auto"
    grad_clip: float = 1.0
    patience: int = 5
    min_delta: float = 0.0005
    seed: int = 0
    device: str = "auto"
    bf16: bool = False
    threads: int = 0
    log_every: int = 10
    checkpoint_every: int = 0
    eval_every: float = 0.0
    embedding_l2: float = 0.0
    embedding_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        """Every key in its range; the message names the key, the range and the value."""
        ranges = {
            "epochs": (self.epochs >= 1, ">= 1"), "batch_size": (self.batch_size >= 1, ">= 1"),
            "eval_batch_size": (self.eval_batch_size >= 1, ">= 1"), "seq_len": (self.seq_len >= 1, ">= 1"),
            "lr": (self.lr > 0, "> 0"), "weight_decay": (self.weight_decay >= 0, ">= 0"),
            "betas": (len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "two values in [0, 1)"),
            "warmup_epochs": (self.warmup_epochs >= 0, ">= 0"),
            "warmup_start": (0 < self.warmup_start <= 1, "in (0, 1]"),
            "final_lr_ratio": (0 <= self.final_lr_ratio <= 1, "in [0, 1]"),
            "label_smoothing": (0 <= self.label_smoothing < 1, "in [0, 1)"),
            "aux_loss": (self.aux_loss in AUX_LOSS_CHOICES, f"one of {list(AUX_LOSS_CHOICES)}"),
            "grad_clip": (self.grad_clip > 0, "> 0"), "patience": (self.patience >= 1, ">= 1"),
            "min_delta": (self.min_delta >= 0, ">= 0"), "device": (self.device in DEVICES, f"one of {list(DEVICES)}"),
            "seed": (0 <= self.seed <= 2**32 - 1, "in [0, 2**32 - 1] (NumPy's seed range)"),
            "threads": (self.threads >= 0, ">= 0 (0: torch's default)"), "log_every": (self.log_every >= 1, ">= 1"),
            "checkpoint_every": (self.checkpoint_every >= 0, ">= 0 (0: at epoch ends only)"),
            "eval_every": (self.eval_every >= 0 and (self.eval_every < 1 or float(self.eval_every).is_integer()),
                           "0 (epoch ends only), a fraction of an epoch below 1, or a whole number of steps"),
            "embedding_l2": (self.embedding_l2 >= 0, ">= 0"), "embedding_lr_scale": (self.embedding_lr_scale > 0, "> 0"),
        }
        for key, (ok, expected) in ranges.items():
            if not ok:
                raise MDAFError(f"training config: key {key!r} must be {expected}, got {getattr(self, key)!r}")


# recipe keys a resumed run may change: where and how fast it runs, not what it computes
RESUME_FREE_KEYS = ("device", "threads", "log_every", "checkpoint_every", "eval_batch_size")


@dataclass
class DataConfig:
    """Where the samples come from, first match wins: `dir` (a prepared dataset), `raw_dir` (raw
    files, prepared into data/<source>-<hash> first; for source next_item, an interactions file,
    prepared into data/next_item-<name>-<hash>), or a synthetic set from the default generator
    updated by `synthetic` (e.g. {n_users: 4000}). prep_config: preparation YAML (default
    configs/data/<source>.yaml); prep: keys of it this experiment changes (e.g. {protocol:
    temporal}). min_count: per vocabulary space, ids seen fewer times in train are read as out
    of vocabulary (e.g. {item: 3}; data_prep.vocab.with_min_count)."""

    source: str = "taobao_ad"
    dir: str | None = None
    raw_dir: str | None = None
    prep_config: str | None = None
    prep: dict[str, Any] = field(default_factory=dict)
    synthetic: dict[str, Any] = field(default_factory=dict)
    min_count: dict[str, int] = field(default_factory=dict)


@dataclass
class RankingConfig:
    """The next-item task (training/tasks/next_item.py). train_on: last (every prefix's last
    position is a sample, Mamba4Rec's published protocol) | all (every position of each user's
    last training window at once, SASRec's original). mask_history: take the window's items out
    of the ranking at evaluation (the target excepted; RecBole's default does not)."""

    train_on: str = "last"
    mask_history: bool = False

    def __post_init__(self) -> None:
        if self.train_on not in ("last", "all"):
            raise MDAFError(f"ranking config: key 'train_on' is {self.train_on!r}; expected 'last' or 'all'")


@dataclass
class CriteriaConfig:
    """Thresholds for the report's success criteria (defaults from the project's own report)."""

    train_auc_range: list[float] = field(default_factory=lambda: [0.60, 0.70])
    min_val_auc: float = 0.60
    max_gap: float = 0.08
    min_pred_std: float = 0.001

    def __post_init__(self) -> None:
        bounds = self.train_auc_range
        if len(bounds) != 2 or not bounds[0] <= bounds[1]:
            raise MDAFError(f"criteria.train_auc_range: expected [low, high] with low <= high, "
                            f"got {bounds}")


@dataclass
class ExperimentConfig:
    """synthetic_train: `train` keys that apply only when the run uses the synthetic set (no data
    given), so the default run stays small; real data gets `train` as written."""

    experiment: str
    model: dict[str, Any]
    label: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    criteria: CriteriaConfig = field(default_factory=CriteriaConfig)
    ranking: RankingConfig = field(default_factory=RankingConfig)
    synthetic_train: dict[str, Any] = field(default_factory=dict)


REPO_ROOT = Path(__file__).resolve().parents[1]


def repo_path(path: str | Path) -> Path:
    """`path`, taken relative to the repository root unless absolute."""
    return REPO_ROOT / path


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`base` with `update`'s keys written over it, recursing into mappings present in both."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def resolve_section(value: Any, where: str) -> dict[str, Any]:
    """A section given as a YAML path, or as a mapping with an optional `base` path (module doc);
    a YAML file may itself name a `base` (configs/model/mdaf_static.yaml: MDAF with one change)."""
    if isinstance(value, str):
        return resolve_section(load_yaml(repo_path(value)), value)
    if not isinstance(value, dict):
        raise MDAFError(f"{where}: expected a YAML path or a mapping, got {value!r}")
    value = dict(value)
    base = value.pop("base", None)
    return merge(resolve_section(base, f"{where}.base"), value) if base is not None else value


def load_experiment(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """The experiment at `path`, its sections resolved, then `overrides` (same shape) merged in."""
    raw = load_yaml(repo_path(path) if not Path(path).is_file() else path)
    for key in ("model", "train"):  # a path becomes a base, so overrides merge into its contents
        if isinstance(raw.get(key), str):
            raw[key] = {"base": raw[key]}
    overrides = overrides or {}
    data = merge(raw.get("data") or {}, overrides.get("data") or {})
    if not data.get("dir") and not data.get("raw_dir"):  # synthetic set: its train keys, then overrides
        raw["train"] = merge(raw.get("train") or {}, raw.get("synthetic_train") or {})
    raw = merge(raw, overrides)
    if "model" not in raw:
        raise MDAFError(f"{path}: missing key 'model' (a model YAML path or mapping)")
    raw["model"] = resolve_section(raw["model"], f"{path}: key 'model'")
    if "train" in raw:
        raw["train"] = resolve_section(raw["train"], f"{path}: key 'train'")
    raw.setdefault("experiment", Path(path).stem)
    return from_dict(ExperimentConfig, raw, str(path))
