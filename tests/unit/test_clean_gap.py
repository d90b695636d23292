"""The clean gap: the training sample measured in inference mode, and every gap defined from it.

Pure functions on hand-made numbers first, then real models whose numbers are computed here
by hand (NumPy on the model's own predictions) and compared with what training logged: a
dropout model whose training-mode and inference-mode accuracies differ, an L2-penalized one
whose loss gap must leave the penalty out, a regression head (MAE) and a segmentation head
(mean IoU).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkeras.config import config_from_dict
from cnnkeras.measures import (
    GAP_SAMPLE_BYTES,
    GAP_SAMPLE_CAP,
    batch_norm_lag,
    epochs_to_fit,
    gap_metrics,
    gap_sample_indices,
    gap_sample_size,
    has_clean_gap,
)

# ------------------------------------------------------------------ pure definitions


def test_every_gap_is_train_sample_against_validation_never_the_running_metrics():
    logs = {"accuracy": 0.50, "loss": 2.0, "mae": 9.0, "mean_iou": 0.1,  # running, training mode: never used
            "train_accuracy": 0.96, "val_accuracy": 0.90, "train_loss": 0.30, "val_loss": 0.45,
            "train_mae": 0.20, "val_mae": 0.35, "train_mean_iou": 0.70, "val_mean_iou": 0.55}
    gaps = gap_metrics(logs)
    assert gaps == pytest.approx({"gap_accuracy": 0.06, "gap_loss": 0.15, "gap_mae": 0.15, "gap_mean_iou": 0.15})
    # with L1/L2 the penalty-free data loss is the loss gap's
    penalized = gap_metrics({**logs, "train_data_loss": 0.10, "val_data_loss": 0.40})
    assert penalized["gap_loss"] == pytest.approx(0.30)
    # Keras' running metrics alone give no gap at all
    assert gap_metrics({"accuracy": 0.5, "val_accuracy": 0.9, "loss": 1.0, "val_loss": 0.4}) == {}
    assert has_clean_gap(["loss", "train_accuracy"]) and not has_clean_gap(["loss", "train_time_s", "gap_accuracy"])


@settings(deadline=None)
@given(setting=st.one_of(st.none(), st.integers(0, 50_000)), n_train=st.integers(1, 60_000),
       n_val=st.integers(0, 20_000))
def test_the_sample_size_rule(setting, n_train, n_val):
    size = gap_sample_size(setting, n_train, n_val)
    assert 0 <= size <= n_train
    if setting is None:
        assert size == min(n_val, GAP_SAMPLE_CAP, n_train)
    else:
        assert size == min(setting, n_train)
    # large images: the default sample stays within GAP_SAMPLE_BYTES; an explicit size is the user's
    big = 224 * 224 * 3 * 4
    if setting is None:
        assert gap_sample_size(None, n_train, n_val, big) * big <= GAP_SAMPLE_BYTES
    else:
        assert gap_sample_size(setting, n_train, n_val, big) == min(setting, n_train)


@settings(max_examples=60, deadline=None)
@given(n_train=st.integers(1, 5_000), fraction=st.floats(0, 1.5), seed=st.integers(0, 2**31))
def test_the_sample_is_sorted_distinct_seeded_and_in_range(n_train, fraction, seed):
    size = int(n_train * fraction)
    index = gap_sample_indices(n_train, size, seed)
    assert len(index) == min(size, n_train)
    assert np.all(np.diff(index) > 0) and (len(index) == 0 or (index[0] >= 0 and index[-1] < n_train))
    assert np.array_equal(index, gap_sample_indices(n_train, size, seed))


def test_different_seeds_draw_different_samples():
    assert not np.array_equal(gap_sample_indices(1000, 100, 0), gap_sample_indices(1000, 100, 1))


@pytest.mark.parametrize("record, classes, lag", [
    ({"accuracy": 0.95, "train_accuracy": 0.13, "val_accuracy": 0.11}, 10, True),  # the ResNet-18
    ({"accuracy": 0.95, "train_accuracy": 0.97, "val_accuracy": 0.11}, 10, False),  # memorized: overfitting
    ({"accuracy": 0.50, "train_accuracy": 0.13, "val_accuracy": 0.11}, 10, False),  # nothing learned yet
    ({"accuracy": 0.95, "train_accuracy": 0.60, "val_accuracy": 0.58}, 10, False),  # lagging, not at chance
    ({"accuracy": 0.95, "train_accuracy": 0.55, "val_accuracy": 0.52}, 2, True),  # binary: chance is 0.5
    ({"accuracy": 0.95, "val_accuracy": 0.11}, 10, False),  # no training sample: cannot tell
    ({"accuracy": math.nan, "train_accuracy": 0.1, "val_accuracy": 0.1}, 10, False),
])
def test_batch_norm_lag(record, classes, lag):
    assert batch_norm_lag(record, classes) is lag


def test_epochs_to_fit():
    assert epochs_to_fit([0.5, 0.9, 0.95, 0.99]) == 3
    assert epochs_to_fit([0.5, 0.9, math.nan], threshold=0.9) == 2
    assert epochs_to_fit([0.5, 0.6]) is None


# ------------------------------------------------------------------ real models, numbers by hand


def _fit(raw: dict):
    """Train ``raw`` (no tracking) and return (history, model, data, config)."""
    from cnnkeras.runner import prepare
    from cnnkeras.training.fit import fit_and_evaluate

    config = config_from_dict({"name": "gap", "seed": 3, "tracking": {"enabled": False}, **raw})
    data, model = prepare(config)
    result = fit_and_evaluate(model, data, config, progress=False)
    return result.history, model, data, config


def _sample(data, config):
    index = gap_sample_indices(len(data.x_train), gap_sample_size(config.train.gap_sample, len(data.x_train),
                                                                  len(data.x_val)), config.seed)
    return data.x_train[index], data.y_train[index]


DIGITS_LENET = {"data": {"source": "digits", "resize": [28, 28], "subset": 800},
                "model": {"arch": "lenet5", "activation": "relu", "dropout": 0.5},
                "train": {"epochs": 2, "batch_size": 32, "optimizer": {"name": "adam", "learning_rate": 2e-3},
                          "l2": 1e-3}}


@pytest.fixture(scope="module")
def dropout_run():
    return _fit(DIGITS_LENET)


def test_a_dropout_model_logs_its_inference_mode_training_accuracy_and_the_gap_from_it(dropout_run):
    history, model, data, config = dropout_run
    x, y = _sample(data, config)
    assert len(x) == len(data.x_val)  # the default sample: the validation split's size
    probs = model.predict(x, verbose=0)
    by_hand = float(np.mean(probs.argmax(axis=1) == y))
    val_by_hand = float(np.mean(model.predict(data.x_val, verbose=0).argmax(axis=1) == data.y_val))
    assert history["train_accuracy"][-1] == pytest.approx(by_hand, abs=1e-6)
    assert history["val_accuracy"][-1] == pytest.approx(val_by_hand, abs=1e-6)
    assert history["gap_accuracy"][-1] == pytest.approx(by_hand - val_by_hand, abs=1e-6)
    # dropout 0.5 lowers Keras' training-mode running accuracy well below the model's own
    assert history["train_accuracy"][-1] - history["accuracy"][-1] > 0.02


def test_the_loss_gap_leaves_the_l2_penalty_out(dropout_run):
    history, model, data, config = dropout_run
    x, y = _sample(data, config)
    cross_entropy = float(np.mean(-np.log(np.clip(model.predict(x, verbose=0)[np.arange(len(y)), y], 1e-7, 1))))
    val_probs = model.predict(data.x_val, verbose=0)[np.arange(len(data.y_val)), data.y_val]
    val_cross_entropy = float(np.mean(-np.log(np.clip(val_probs, 1e-7, 1))))
    assert history["train_data_loss"][-1] == pytest.approx(cross_entropy, rel=1e-4)
    assert history["train_loss"][-1] > history["train_data_loss"][-1] + 1e-3  # the penalty is in the loss
    assert history["gap_loss"][-1] == pytest.approx(val_cross_entropy - cross_entropy, rel=1e-3, abs=1e-5)


def test_a_regression_head_logs_train_mae_and_its_gap():
    history, model, data, config = _fit({
        "data": {"source": "digits", "subset": 500},
        "model": {"arch": "sequential", "head": "regression", "layers": [
            {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same", "activation": "relu"},
            {"type": "flatten"}, {"type": "dense", "units": 16, "activation": "relu"}]},
        "train": {"epochs": 2, "batch_size": 32}})
    x, y = _sample(data, config)
    mae = float(np.mean(np.abs(model.predict(x, verbose=0)[:, 0] - y)))
    val_mae = float(np.mean(np.abs(model.predict(data.x_val, verbose=0)[:, 0] - data.y_val)))
    assert history["train_mae"][-1] == pytest.approx(mae, rel=1e-4)
    assert history["gap_mae"][-1] == pytest.approx(val_mae - mae, rel=1e-3, abs=1e-5)
    assert "gap_accuracy" not in history


def _mean_iou(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> float:
    """Mean IoU over the classes present in either (Keras' MeanIoU): TP / (TP + FP + FN)."""
    ious = []
    for c in range(classes):
        t, p = y_true == c, y_pred == c
        union = np.sum(t | p)
        if union:
            ious.append(np.sum(t & p) / union)
    return float(np.mean(ious))


def test_a_segmentation_head_logs_train_mean_iou_and_its_gap():
    history, model, data, config = _fit({
        "data": {"source": "digit_scenes", "scenes": {"count": 120, "size": 32, "digits": [1, 2]}},
        "model": {"arch": "unet", "head": "segmentation", "depth": 2, "base_width": 4},
        "train": {"epochs": 2, "batch_size": 16}})
    x, y = _sample(data, config)
    predicted = model.predict(x, verbose=0).argmax(axis=-1)
    val_predicted = model.predict(data.x_val, verbose=0).argmax(axis=-1)
    train_iou = _mean_iou(y, predicted, data.num_classes)
    val_iou = _mean_iou(data.y_val, val_predicted, data.num_classes)
    assert history["train_mean_iou"][-1] == pytest.approx(train_iou, abs=1e-4)
    assert history["gap_mean_iou"][-1] == pytest.approx(train_iou - val_iou, abs=1e-4)


def test_gap_sample_zero_switches_it_off_and_a_number_sets_the_size():
    from cnnkeras.training.fit import gap_sample, targets_of

    history, _, data, config = _fit({**DIGITS_LENET, "train": {**DIGITS_LENET["train"], "epochs": 1,
                                                                "gap_sample": 0}})
    assert not any(k.startswith(("train_", "gap_")) for k in history)
    assert "accuracy" in history and "val_accuracy" in history  # Keras' own metrics stay
    sized = config.model_copy(update={"train": config.train.model_copy(update={"gap_sample": 57})})
    x, y = gap_sample(data, targets_of(data, sized), sized)
    assert len(x) == len(y) == 57
    everything = config.model_copy(update={"train": config.train.model_copy(update={"gap_sample": 10**6})})
    assert len(gap_sample(data, targets_of(data, everything), everything)[0]) == len(data.x_train)
