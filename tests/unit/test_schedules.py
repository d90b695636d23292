"""Learning-rate schedules follow their documented shape, step by step."""

from __future__ import annotations

import numpy as np
import pytest

import cnnkeras
from cnnkeras.training.compile import make_schedule


def _train(schedule: dict, epochs: int = 4, lr: float = 0.01):
    return cnnkeras.config_from_dict({"name": "s", "train": {
        "epochs": epochs, "optimizer": {"name": "adam", "learning_rate": lr}, "schedule": schedule}}).train


def test_one_cycle_rises_to_the_peak_then_anneals_to_lr_over_div_times_final_div():
    train = _train({"name": "one_cycle", "pct_start": 0.25, "div_factor": 10, "final_div_factor": 100})
    schedule = make_schedule(train, steps_per_epoch=100)  # 400 steps, 100 rising
    lr = lambda step: float(schedule(step))  # noqa: E731
    assert lr(0) == pytest.approx(0.001)                 # lr / div_factor
    assert lr(50) == pytest.approx(0.0055, rel=1e-5)     # linear rise
    assert lr(100) == pytest.approx(0.01)                # the peak: the optimizer's learning rate
    assert lr(250) == pytest.approx(0.01 * (0.5 * (1 + np.cos(np.pi * 0.5)) * (1 - 1e-3) + 1e-3), rel=1e-5)
    assert lr(400) == pytest.approx(0.01 / 1000)         # lr / (div_factor * final_div_factor)
    rates = [lr(s) for s in range(0, 401, 10)]
    peak = int(np.argmax(rates))
    assert all(a <= b for a, b in zip(rates[:peak], rates[1:peak + 1]))
    assert all(a >= b for a, b in zip(rates[peak:], rates[peak + 1:]))


def test_one_cycle_values_are_checked(write_config):
    path = write_config("name: a\ntrain: {schedule: {name: one_cycle, pct_start: 1.5}}\n")
    with pytest.raises(cnnkeras.ConfigError, match="train.schedule.pct_start"):
        cnnkeras.load_config(path)


def test_steps_per_execution_reaches_keras_compile():
    import keras

    from cnnkeras.training.compile import compile_model

    train = cnnkeras.config_from_dict({"name": "s", "train": {"steps_per_execution": 8}}).train
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    compile_model(model, train, head="multiclass", steps_per_epoch=10)
    assert model.steps_per_execution == 8
