"""Gradient-boosted trees (LightGBM; Ke et al., NeurIPS 2017) on the summary features MDAF reads:
its static fields, as LightGBM categoricals, and the match statistics of its timeline window
(models/layers/match.py), never the raw sequence.

  logit = sum_k f_k(x),  f_k a regression tree fitted to the gradient of the logloss

Fitted once (models/fitted.py) with early stopping on the validation logloss; the bagging and
feature-fraction seeds come from torch's generator, so the run's seed sets them. A field's indices
beyond its table (a min count cut it: data_prep.vocab.with_min_count) read as out of vocabulary,
as they do in the embedding layer. The fitted booster travels in the state dict as its text.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightgbm
import numpy as np
import torch

from models.fitted import Batches, FittedModel
from models.layers.embedding import field_spaces, known_index
from models.layers.match import MatchFeatures
from models.output import ModelOutput


@dataclass
class GBDTConfig:
    """fields: static fields (None = all); timeline: the window whose match statistics are read
    (None = static fields only); rounds: at most this many trees; early_stopping: rounds without a
    validation gain before stopping; params: LightGBM's own parameters (its documentation). cat_smooth
    100 was chosen on the validation days of the synthetic default and the real UserBehavior sample
    (10 lets the id fields' categorical splits overfit: 0.72 and 0.69 validation AUC, against 0.74
    and 0.735)."""

    fields: list[str] | None = None
    timeline: str | None = "behavior"
    rounds: int = 2000
    early_stopping: int = 50
    params: dict[str, Any] = field(default_factory=lambda: {
        "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 50, "feature_fraction": 0.9,
        "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0, "cat_smooth": 100.0, "cat_l2": 10.0})


class GBDT(FittedModel):
    def __init__(self, cfg: GBDTConfig, meta: dict):
        super().__init__()
        self.cfg = cfg
        fields = field_spaces(meta, cfg.fields)
        self.sizes = {f: int(meta["vocab_sizes"][s]) for f, s in fields.items()}
        self.matches = MatchFeatures(meta, cfg.timeline) if cfg.timeline is not None else None
        self.seed = int(torch.randint(2**31 - 1, ()))
        self.booster: lightgbm.Booster | None = None

    def features(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """(B, fields + statistics) float64: the field indices, then the match statistics."""
        cols = [known_index(batch[f], size).double() for f, size in self.sizes.items()]
        if self.matches is not None:
            cols += list(self.matches.statistics(batch).double().unbind(-1))
        return torch.stack(cols, dim=-1).cpu().numpy()

    def fit(self, train: Batches, val: Batches) -> str:
        with torch.no_grad():
            (x, y), (x_val, y_val) = self._arrays(train), self._arrays(val)
        return self.fit_arrays(x, y, x_val, y_val)

    def _arrays(self, batches: Batches) -> tuple[np.ndarray, np.ndarray]:
        x, y = zip(*((self.features(b), b["label"].numpy()) for b in batches))
        return np.concatenate(x), np.concatenate(y)

    def fit_arrays(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray) -> str:
        """Fit on feature matrices whose first columns are `features`' field indices (any columns
        after them enter as numbers); returns what was fitted, in one line."""
        fields = list(self.sizes)
        names = [*fields, *(f"x{i}" for i in range(x.shape[1] - len(fields)))]
        train_set = lightgbm.Dataset(x, y, feature_name=names, categorical_feature=fields, free_raw_data=True)
        val_set = lightgbm.Dataset(x_val, y_val, reference=train_set)
        params = {**self.cfg.params, "objective": "binary", "metric": "binary_logloss", "verbosity": -1,
                  "seed": self.seed, "num_threads": torch.get_num_threads(), "deterministic": True,
                  "force_col_wise": True}
        booster = lightgbm.train(params, train_set, self.cfg.rounds, valid_sets=[val_set],
                                 callbacks=[lightgbm.early_stopping(self.cfg.early_stopping, verbose=False)])
        self.booster = lightgbm.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
        return (f"{booster.best_iteration} trees (early stopping on validation logloss "
                f"{booster.best_score['valid_0']['binary_logloss']:.4f}), seed {self.seed}")

    def forward(self, batch: dict[str, torch.Tensor]) -> ModelOutput:
        """The trees' logit; 0 (p = 0.5) for every sample before `fit`."""
        some = batch[next(iter(self.sizes))]
        if self.booster is None:
            return ModelOutput(logit=torch.zeros(len(some), device=some.device))
        z = self.booster.predict(self.features(batch), raw_score=True)
        return ModelOutput(logit=torch.as_tensor(z, dtype=torch.float32, device=some.device))

    def get_extra_state(self) -> dict[str, Any]:
        return {"booster": self.booster.model_to_string() if self.booster is not None else None, "seed": self.seed}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.seed = state["seed"]
        self.booster = lightgbm.Booster(model_str=state["booster"]) if state["booster"] is not None else None
