"""Overfitting measures on hand-made curves with known answers."""

from __future__ import annotations

import pytest

from cnnkeras.measures import best_epoch, final_gaps, measures, overfitting_onset

# val loss falls to its minimum at epoch 4, then rises for four epochs: onset at 4 (k=3)
VAL_LOSS = [1.0, 0.7, 0.5, 0.4, 0.45, 0.5, 0.6, 0.7]
LOSS = [1.1, 0.6, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05]
ACC = [0.6, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.99]
VAL_ACC = [0.62, 0.78, 0.83, 0.86, 0.86, 0.85, 0.84, 0.84]


def test_onset_is_the_epoch_after_which_val_loss_keeps_rising():
    assert overfitting_onset(VAL_LOSS, k=3) == 4
    assert overfitting_onset(VAL_LOSS, k=4) == 4
    assert overfitting_onset(VAL_LOSS, k=5) is None  # only 4 rising epochs follow
    assert overfitting_onset([1, 0.9, 1.0, 0.8, 0.9, 1.0, 1.1], k=2) == 4  # a single bump is not an onset
    assert overfitting_onset([1.0, 0.9, 0.8], k=1) is None
    with pytest.raises(ValueError, match="Received: k=0"):
        overfitting_onset(VAL_LOSS, k=0)


def test_best_epoch_lowest_loss_highest_accuracy_first_on_ties():
    assert best_epoch(VAL_LOSS) == 4
    assert best_epoch(VAL_ACC, lower_is_better=False) == 4  # 0.86 at epochs 4 and 5: the first
    assert best_epoch([float("nan"), 0.5, float("inf")]) == 2
    assert best_epoch([float("nan")]) is None


def test_final_gaps():
    # the gap's training side is the inference-mode training sample (train_*), never Keras' running metrics
    gaps = final_gaps({"train_accuracy": ACC, "val_accuracy": VAL_ACC, "train_loss": LOSS, "val_loss": VAL_LOSS,
                       "accuracy": [0.5] * 8, "loss": [3.0] * 8})
    assert gaps["final_gap_accuracy"] == pytest.approx(0.99 - 0.84)
    assert gaps["final_gap_loss"] == pytest.approx(0.7 - 0.05)
    # with a weight penalty the penalty-free data_loss is used
    penalized = final_gaps({"train_loss": [9.0], "val_loss": [9.5], "train_data_loss": [0.2], "val_data_loss": [0.5]})
    assert penalized["final_gap_loss"] == pytest.approx(0.3)
    # running metrics alone (a run logged before the training sample, or gap_sample: 0) have no gap
    assert final_gaps({"accuracy": ACC, "val_accuracy": VAL_ACC, "loss": LOSS, "val_loss": VAL_LOSS}) == {}


def test_all_measures_of_one_run():
    history = {"train_accuracy": ACC, "val_accuracy": VAL_ACC, "loss": LOSS, "val_loss": VAL_LOSS}
    out = measures(history, test={"test_accuracy": 0.85, "test_loss": 0.42})
    assert out["epochs"] == 8 and out["best_epoch"] == 4 and out["epochs_after_best"] == 4
    assert out["onset_epoch"] == 4 and out["best_val_accuracy"] == 0.86
    assert out["test_minus_val_accuracy"] == pytest.approx(0.85 - 0.86)
    assert out["test_minus_val_loss"] == pytest.approx(0.42 - 0.4)
