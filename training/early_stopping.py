"""Early stopping on a metric to maximise (validation AUC).

An evaluation (at the end of an epoch, or every `eval_every` steps) improves when
value > best + min_delta; after `patience` evaluations in a row without improvement, training
stops. The best evaluation's weights are restored by the trainer.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class EarlyStopping:
    patience: int
    min_delta: float
    best: float = float("-inf")
    best_epoch: int = 0
    best_step: int = 0
    bad_evaluations: int = 0

    def update(self, value: float, epoch: int, step: int) -> bool:
        """Record `value` of the evaluation at (`epoch`, `step`); True when it is a new best."""
        if value > self.best + self.min_delta:
            self.best, self.best_epoch, self.best_step, self.bad_evaluations = value, epoch, step, 0
            return True
        self.bad_evaluations += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_evaluations >= self.patience

    def status(self) -> str:
        """'best', or 'no gain k/patience'."""
        return "best" if self.bad_evaluations == 0 else f"no gain {self.bad_evaluations}/{self.patience}"

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)
