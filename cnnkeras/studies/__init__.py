"""Optuna studies: sweeps over any config key, tracked in MLflow (the only package that imports optuna)."""
