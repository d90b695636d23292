"""Pictures of predictions (cnnkeras.training.predictions): counts by hand, the best epoch, and a run logging them."""

from __future__ import annotations

import keras
import numpy as np
from PIL import Image

import cnnkeras
from cnnkeras.data.dataset import Dataset
from cnnkeras.training.plots import curve_metrics, learning_curves
from cnnkeras.training.predictions import (
    CLASSIFICATION_SAMPLE,
    SEGMENTATION_ROWS,
    BestEpochPredictions,
    PictureSample,
    class_masks,
    confusion_counts,
    picture_sample,
    pictures,
    worst_mistakes,
)

from ..conftest import TINY_MODEL


def test_confusion_counts_by_hand():
    counts = confusion_counts(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_worst_mistakes_are_the_most_confident_wrong_answers_first():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.05, 0.95], [0.7, 0.3]])
    y = np.array([0, 0, 0, 0, 1])  # wrong: 1 (0.8), 2 (0.6), 3 (0.95), 4 (0.7)
    assert worst_mistakes(y, probabilities) == [3, 1, 4, 2]
    assert worst_mistakes(y, probabilities, count=2) == [3, 1]
    assert worst_mistakes(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]])) == []


def test_the_sample_is_seeded_from_validation_else_test_and_capped():
    rng = np.random.default_rng(0)
    def data(n_val, n_test):
        return Dataset(rng.random((5, 8, 8, 1)), np.zeros(5, int), rng.random((n_val, 8, 8, 1)), np.arange(n_val) % 3,
                       rng.random((n_test, 8, 8, 1)), np.arange(n_test) % 3, 3)
    big = data(CLASSIFICATION_SAMPLE + 500, 10)
    first, again = picture_sample(big, segmentation=False, seed=4), picture_sample(big, segmentation=False, seed=4)
    assert len(first.x) == CLASSIFICATION_SAMPLE and np.array_equal(first.x, again.x)
    assert not np.array_equal(first.x, picture_sample(big, segmentation=False, seed=5).x)
    assert first.label == f"2,000 of {CLASSIFICATION_SAMPLE + 500:,} validation images"
    no_val = picture_sample(data(0, 10), segmentation=True, seed=0)
    assert no_val.split == "test" and len(no_val.x) == SEGMENTATION_ROWS
    assert picture_sample(data(0, 0), segmentation=False, seed=0) is None
    assert picture_sample(data(7, 0), segmentation=False, seed=0).label == "all 7 validation images"


def _rgb(image: np.ndarray) -> None:
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.std() > 10  # drawn, not blank


def test_classification_pictures_are_a_confusion_matrix_and_the_mistakes():
    rng = np.random.default_rng(1)
    sample = PictureSample(rng.random((40, 8, 8, 1)).astype("float32"), np.arange(40) % 4, "validation", 40)
    outputs = rng.dirichlet(np.ones(4), size=40).astype("float32")
    drawn = pictures(sample, outputs, head="multiclass", epoch=3, class_names=["a", "b", "c", "d"])
    assert set(drawn) == {"confusion_matrix", "mistakes"}
    for image in drawn.values():
        _rgb(image)
    two = PictureSample(sample.x, np.arange(40) % 2, "validation", 40)
    binary = pictures(two, rng.random((40, 1)).astype("float32"), head="binary", epoch=1)
    assert set(binary) == {"confusion_matrix", "mistakes"}
    assert pictures(sample, rng.random((40, 1)), head="regression", epoch=1) == {}


def test_segmentation_pictures_show_image_true_and_predicted_masks():
    rng = np.random.default_rng(2)
    masks = rng.integers(0, 5, (SEGMENTATION_ROWS, 16, 16))
    sample = PictureSample(rng.random((SEGMENTATION_ROWS, 16, 16, 1)), masks, "validation", 30)
    outputs = np.eye(5)[masks].astype("float32")  # a perfect prediction
    assert np.array_equal(class_masks(outputs), masks)
    assert np.array_equal(class_masks(np.full((1, 2, 2, 1), 0.7)), np.ones((1, 2, 2)))
    [(key, image)] = pictures(sample, outputs, head="segmentation", epoch=2).items()
    assert key == "masks"
    _rgb(image)
    assert image.shape[0] > SEGMENTATION_ROWS * 160  # one row of three 160-pixel panels per image



def test_best_epoch_predictions_follow_the_monitor_and_a_pruned_cut():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    sample = PictureSample(np.ones((3, 2), "float32"), np.array([0, 1, 0]), "validation", 3)
    callback = BestEpochPredictions(sample, "val_accuracy")
    callback.set_model(model)
    for epoch, accuracy in enumerate([0.5, 0.7, 0.6, 0.9, 0.8]):
        model.layers[-1].bias.assign([float(epoch), 0.0])  # each epoch predicts differently
        callback.on_epoch_end(epoch, {"val_accuracy": accuracy, "loss": 1.0})
    assert sorted(callback.by_epoch) == [1, 2, 4]  # only improvements were predicted
    best, outputs = callback.best_until(5)
    model.layers[-1].bias.assign([3.0, 0.0])  # the model as it was at epoch 4
    assert best == 4 and np.allclose(outputs, model.predict(sample.x, verbose=0))
    assert callback.best_until(3)[0] == 2  # a run pruned at epoch 3: its best epoch, and its predictions
    gap = BestEpochPredictions(sample, "gap_accuracy")  # a monitor computed from the logs, lower is better
    gap.set_model(model)
    for epoch, (train, val) in enumerate([(0.9, 0.5), (0.9, 0.8), (0.9, 0.7)]):
        gap.on_epoch_end(epoch, {"train_accuracy": train, "val_accuracy": val})  # the gap's two sides
    assert gap.best_until(3)[0] == 2


def test_learning_curves_show_every_measure_the_run_recorded_and_its_monitor():
    segmentation = {k: [0.5, 0.6] for k in ("loss", "val_loss", "accuracy", "val_accuracy", "mean_iou",
                                             "val_mean_iou", "gap_mean_iou")}
    assert curve_metrics(segmentation, "val_mean_iou") == ["loss", "accuracy", "mean_iou"]
    fig = learning_curves(segmentation, best_epoch=2, monitor="val_mean_iou")
    assert [a.text for a in fig.layout.annotations][:3] == ["loss", "accuracy", "mean iou"]
    assert curve_metrics({"loss": [1], "val_loss": [1], "mae": [1], "val_mae": [1]}) == ["loss", "mae"]
    assert curve_metrics({"loss": [1], "auc": [1], "val_auc": [1]}, "val_auc") == ["loss", "auc"]


def test_a_run_logs_its_pictures_as_mlflow_images(write_config, tracking_uri):
    from mlflow.tracking import MlflowClient

    path = write_config("""
        name: pictured
        seed: 3
        data: {source: digits, subset: 500}
        train: {epochs: 2, batch_size: 64}
        tracking: {log_plots: false, log_model: false}
        """, TINY_MODEL)
    result = cnnkeras.run(path, progress=False)
    client = MlflowClient(tracking_uri)
    files = {a.path for a in client.list_artifacts(result.run_id, "predictions")}
    assert files == {"predictions/confusion_matrix.png", "predictions/mistakes.png"}
    images = [a.path for a in client.list_artifacts(result.run_id, "images")]  # what the run page's section shows
    assert any(p.startswith(f"images/predictions~confusion_matrix+step+{result.best_epoch}+") for p in images)
    assert client.get_run(result.run_id).data.tags["mlflow.loggedImages"] == "True"
    local = client.download_artifacts(result.run_id, "predictions/confusion_matrix.png")
    picture = np.asarray(Image.open(local).convert("RGB"))
    _rgb(picture)
    off = cnnkeras.run(path, ["tracking.log_predictions=false"], progress=False)
    assert not client.list_artifacts(off.run_id, "predictions")
