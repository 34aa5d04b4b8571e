"""The scoring service of a trained run (experiments/serve.py): HTTP routes, the run's scorer,
per-user windows and streaming states, a write-ahead log with snapshots, and micro-batching."""
