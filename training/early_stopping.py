"""Early stopping on a metric to maximise (validation AUC).

An epoch improves when value > best + min_delta; after `patience` epochs in a row without
improvement, training stops. The best epoch's weights are restored by the trainer.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class EarlyStopping:
    patience: int
    min_delta: float
    best: float = float("-inf")
    best_epoch: int = 0
    bad_epochs: int = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record `value` for `epoch`; True when it is a new best."""
        if value > self.best + self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def status(self) -> str:
        """'best', or 'no gain k/patience'."""
        return "best" if self.bad_epochs == 0 else f"no gain {self.bad_epochs}/{self.patience}"

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)
