"""Training: trainer, losses, learning-rate schedule, early stopping, metrics, checkpoints, device
and distributed set-up, reports."""
