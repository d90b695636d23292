"""Training: compile (optimizers, schedules, penalties), fit, callbacks, reproducibility."""
