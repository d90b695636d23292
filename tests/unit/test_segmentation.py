"""Segmentation: metrics and losses by hand, digit scenes, mask folders and their errors, a run end to end."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from PIL import Image

import cnnkeras
from cnnkeras.config.schema import DataConfig
from cnnkeras.data.dataset import load_dataset
from cnnkeras.errors import DataError
from cnnkeras.tracking import internal_metrics
from cnnkeras.zoo.segmentation_head import segmentation_loss_and_metrics
from cnnkeras.zoo.segmentation_loss import SegmentationLoss


def np_(x):
    return keras.ops.convert_to_numpy(x)


def one_hot_scores(labels, classes):
    return np.eye(classes, dtype="float32")[labels]


# Truth and prediction on 2 images of 2x3 pixels, 4 classes; class 3 occurs in neither.
TRUTH = np.array([[[0, 0, 1], [1, 2, 2]], [[0, 1, 1], [2, 2, 0]]])
PRED = np.array([[[0, 1, 1], [1, 2, 0]], [[0, 1, 1], [2, 1, 0]]])


def test_mean_iou_and_per_class_iou_equal_the_hand_computed_values():
    # 9 of 12 pixels right. class 0: truth at 4 pixels, predicted at 4, both at 3 -> 3 / (4 + 4 - 3);
    # class 1: truth 4, predicted 6, both 4 -> 4 / 6; class 2: truth 4, predicted 2, both 2 -> 2 / 4;
    # class 3 occurs in neither: left out of the mean.
    _, metrics = segmentation_loss_and_metrics(4)
    scores = one_hot_scores(PRED, 4)
    results = {}
    for metric in metrics:
        metric.update_state(TRUTH, scores)
        results[metric.name] = float(np_(metric.result()))
    assert results["accuracy"] == pytest.approx(9 / 12)
    assert results["iou_0"] == pytest.approx(3 / 5)
    assert results["iou_1"] == pytest.approx(4 / 6)
    assert results["iou_2"] == pytest.approx(2 / 4)
    assert results["mean_iou"] == pytest.approx((3 / 5 + 4 / 6 + 2 / 4) / 3)  # not / 4


def test_dice_and_cross_entropy_equal_the_hand_computed_values():
    scores = one_hot_scores(PRED, 4) * 0.9 + 0.025  # rows sum to 1
    dice = SegmentationLoss("dice", 4, reduction=None)
    ce = SegmentationLoss("cross_entropy", 4, reduction=None)
    both = SegmentationLoss("cross_entropy+dice", 4, reduction=None)
    expected_dice, expected_ce = [], []
    for truth, p in zip(TRUTH, scores):
        t = np.eye(4)[truth]
        per_class = (2 * (p * t).sum((0, 1)) + 1) / (p.sum((0, 1)) + t.sum((0, 1)) + 1)
        expected_dice.append(1 - per_class.mean())
        expected_ce.append(-np.log((p * t).sum(-1)).mean())
    np.testing.assert_allclose(np_(dice(TRUTH, scores)), expected_dice, rtol=1e-5)
    np.testing.assert_allclose(np_(ce(TRUTH, scores)), expected_ce, rtol=1e-5)
    np.testing.assert_allclose(np_(both(TRUTH, scores)), np.add(expected_dice, expected_ce), rtol=1e-5)
    # A perfect prediction has no Dice loss, even for the class that occurs nowhere.
    assert float(np_(SegmentationLoss("dice", 4)(TRUTH, one_hot_scores(TRUTH, 4)))) == pytest.approx(0, abs=1e-5)


def test_one_foreground_class_uses_a_sigmoid_and_binary_iou():
    truth = (TRUTH > 0).astype("int32")
    pred = (PRED > 0).astype("float32")[..., None]
    loss, metrics = segmentation_loss_and_metrics(1)
    for metric in metrics:
        metric.update_state(truth, pred)
    values = {m.name: float(np_(m.result())) for m in metrics}
    # background: truth 4 pixels, predicted 4, both 3 -> 3/5; foreground: truth 8, pred 8, both 7 -> 7/9
    assert values["iou_0"] == pytest.approx(3 / 5) and values["iou_1"] == pytest.approx(7 / 9)
    assert values["mean_iou"] == pytest.approx((3 / 5 + 7 / 9) / 2)
    assert np.isfinite(float(np_(loss(truth, pred * 0.8 + 0.1))))


def scenes(**options):
    config = DataConfig(source="digit_scenes", scenes={"count": 50, "size": 32, **options}, validation_split=0.2)
    return load_dataset(config, seed=3)


def test_digit_scenes_are_identical_for_a_seed_and_differ_across_seeds():
    first, again = scenes(), scenes()
    for a, b in zip((first.x_train, first.y_train, first.x_test, first.y_test),
                    (again.x_train, again.y_train, again.x_test, again.y_test)):
        np.testing.assert_array_equal(a, b)
    other = load_dataset(DataConfig(source="digit_scenes", scenes={"count": 50, "size": 32}), seed=4)
    assert not np.array_equal(first.x_train[:5], other.x_train[:5])
    assert first.num_classes == 11 and first.class_names[0] == "background"
    assert first.x_train.shape[1:] == (32, 32, 1) and first.y_train.shape[1:] == (32, 32)
    assert len(first.x_train) + len(first.x_val) == 50 and len(first.x_test) == 10


def test_a_digits_mask_covers_exactly_its_ink():
    data = scenes(digits=(1, 1))  # one digit per scene: the image is that digit on black
    for image, mask in zip(data.x_train[..., 0], data.y_train):
        assert np.array_equal(mask > 0, image > 0.5)
        assert len(np.unique(mask[mask > 0])) == 1  # every labelled pixel has the digit's class


def test_scenes_from_the_shared_mnist_file(tmp_path):
    from ..conftest import REPO

    mnist = REPO.parent / "shared" / "data" / "mnist.npz"
    if not mnist.exists():
        pytest.skip(f"no {mnist}")
    config = DataConfig(source="digit_scenes", path=str(mnist), scenes={"count": 20, "size": 64},
                        validation_split=0.0)
    data = load_dataset(config, seed=0)
    assert data.x_train.shape == (20, 64, 64, 1) and data.y_train.max() <= 10


def write_pair(root, name, image, mask):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.astype("uint8")).save(root / "images" / f"{name}.png")
    Image.fromarray(mask.astype("uint8")).save(root / "masks" / f"{name}.png")


def folder(tmp_path, n=10, size=(12, 10), classes=3):
    rng = np.random.default_rng(0)
    for i in range(n):
        write_pair(tmp_path, f"im{i:02d}", rng.integers(0, 255, size), rng.integers(0, classes, size))
    return tmp_path


def test_an_image_and_mask_folder_loads_and_resizes_masks_by_nearest(tmp_path):
    root = folder(tmp_path)
    data = load_dataset(DataConfig(source="image_folder", path=str(root), resize=(24, 20)), seed=0)
    assert data.task == "segmentation" and data.num_classes == 3
    assert data.x_train.shape[1:] == (24, 20, 1) and data.y_train.shape[1:] == (24, 20)
    assert set(np.unique(data.y_train)) <= {0, 1, 2}  # nearest: no blended class indices
    mask = np.asarray(Image.open(root / "masks" / "im00.png"))
    assert data.y_train.dtype == np.int32 and mask.shape == (12, 10)


@pytest.mark.parametrize("damage,message", [
    (lambda root: (root / "masks" / "im03.png").unlink(), r"1 image\(s\) in .*images have no mask in .*: im03"),
    (lambda root: Image.fromarray(np.zeros((5, 5), "uint8")).save(root / "masks" / "im04.png"),
     r"mask im04.png is 5x5 but image im04.png is 10x12; a mask has its image's size"),
    (lambda root: (root / "masks" / "extra.png").write_bytes((root / "masks" / "im01.png").read_bytes()),
     r"mask\(s\) in .*masks without an image: extra"),
])
def test_mask_folder_mistakes_are_clear_errors(tmp_path, damage, message):
    root = folder(tmp_path)
    damage(root)
    with pytest.raises(DataError, match=message):
        load_dataset(DataConfig(source="image_folder", path=str(root)), seed=0)


def test_a_test_mask_class_outside_the_heads_range_is_refused(tmp_path):
    x = np.zeros((20, 8, 8), "uint8")
    masks = np.zeros((20, 8, 8), "uint8")
    masks[:, :4] = 1
    test_masks = masks[:5].copy()
    test_masks[0, 0, 0] = 7
    np.savez(tmp_path / "seg.npz", x_train=x, y_train=masks, x_test=x[:5], y_test=test_masks)
    with pytest.raises(DataError, match=r"test masks hold class 7, outside the head's range 0..1"):
        load_dataset(DataConfig(source="npz", path=str(tmp_path / "seg.npz")), seed=0)


@pytest.mark.parametrize("text,message", [
    ("model: {arch: lenet5, head: segmentation}",
     r"model.head: arch 'lenet5' does classification, not segmentation.*segmentation models: fcn16s"),
    ("model: {arch: unet}", r"digit_scenes gives masks: set model.head: segmentation"),
    ("model: {arch: unet, head: multiclass, loss: dice}", r"loss is for head segmentation"),
])
def test_segmentation_config_mistakes(write_config, text, message):
    path = write_config("name: s\ndata: {source: digit_scenes}\n" + text)
    with pytest.raises(cnnkeras.ConfigError, match=message):
        cnnkeras.load_config(path)


def test_a_segmentation_run_logs_iou_and_its_gap_and_its_model_loads_safely(write_config, tracking_uri):
    path = write_config("""
        name: seg
        seed: 2
        data: {source: digit_scenes, scenes: {count: 120, size: 32}}
        model: {arch: unet, head: segmentation, depth: 2, base_width: 8, loss: cross_entropy+dice}
        train: {epochs: 2, batch_size: 16, monitor: val_mean_iou}
        tracking: {log_plots: false}
        """)
    result = cnnkeras.run(cnnkeras.load_config(path), progress=False)
    history = result.history
    for key in ("mean_iou", "train_mean_iou", "val_mean_iou", "gap_mean_iou", "accuracy", "val_accuracy", "iou_0",
                "val_iou_10", "train_iou_10"):
        assert len(history[key]) == 2, key
    # the gap's training side is the inference-mode training sample, not Keras' running mean IoU
    assert history["gap_mean_iou"][-1] == pytest.approx(history["train_mean_iou"][-1] - history["val_mean_iou"][-1])
    assert {"best_val_mean_iou", "final_gap_mean_iou", "test_mean_iou"} <= set(result.summary)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    logged = internal_metrics(client.get_run(result.run_id).data.metrics)
    assert "val_mean_iou" in logged and "gap_mean_iou" in logged
    model_path = client.download_artifacts(result.run_id, "model/model.keras")
    loaded = cnnkeras.load_model(model_path)
    x = np.random.default_rng(0).random((2, 32, 32, 1)).astype("float32")
    assert loaded(x).shape == (2, 32, 32, 11)
    assert client.get_run(result.run_id).data.params["data.num_classes"] == "11"


@pytest.mark.slow  # a 4-trial sweep in cohorts and its report
def test_a_segmentation_sweep_in_cohorts_reports_in_mean_iou(write_config, tracking_uri, tmp_path):
    path = write_config("""
        name: segsweep
        seed: 3
        data: {source: digit_scenes, scenes: {count: 80, size: 32}}
        model: {arch: unet, head: segmentation, depth: 2, base_width: 8}
        train: {epochs: 2, batch_size: 16, monitor: val_mean_iou}
        tracking: {log_plots: false, log_model: false}
        search:
          n_trials: 4
          cohort: 4
          cohort_probe: false
          objectives: [{metric: best_val_mean_iou, direction: maximize}]
          pruner: {name: none}
          parameters:
            train.optimizer.learning_rate: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
            model.dropout: {type: float, low: 0.0, high: 0.5}
        report:
          claims:
            - {claim: "Dropout shrinks the gap", parameter: model.dropout, measure: final_gap_mean_iou,
               expect: decreasing}
        """)
    result = cnnkeras.sweep(path)
    assert result.counts() == {"COMPLETE": 4}
    assert all(0 <= t["values"][0] <= 1 for t in result.trials)  # best_val_mean_iou
    page = cnnkeras.report(path, out=tmp_path / "r.html").path.read_text()
    for text in ("Parameter importances: validation mean IoU and gap", "Generalization gap and validation mean IoU",
                 "final gap (train \\u2212 val mean IoU)", "Dropout shrinks the gap"):
        assert text in page, text


def test_augmented_batches_move_each_mask_with_its_image_and_repeat_for_a_seed():
    from cnnkeras.config.schema import Augmentation
    from cnnkeras.data.augment import AugmentedBatches

    data = scenes(digits=(1, 1))  # the mask is exactly where the image's ink is above 0.5
    config = Augmentation(flip="horizontal", shift=0.1, rotation=0.1, zoom=0.1)
    first = AugmentedBatches(data.x_train, data.y_train, config, batch_size=8, seed=5)
    again = AugmentedBatches(data.x_train, data.y_train, config, batch_size=8, seed=5)
    moved = 0
    for index in range(len(first)):
        x, y = first[index]
        x2, y2 = again[index]
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
        assert x.shape == (len(y), 32, 32, 1) and y.dtype == data.y_train.dtype
        np.testing.assert_array_equal(y > 0, x[..., 0] > 0.5)  # one transform, nearest sampling, for both
        rows = first.order[index * 8:(index + 1) * 8]
        moved += int(not np.array_equal(y, data.y_train[rows]))
    assert moved == len(first)  # every batch was transformed
    first.on_epoch_end()
    assert not np.array_equal(first.order, again.order)  # a new permutation each epoch


def test_inspect_follows_receptive_fields_through_unpooling_upsampling_and_transposed_convs():
    from cnnkeras.zoo import get_model_info

    segnet = get_model_info("segnet").builder(input_shape=(8, 8, 1), num_classes=3, depth=1, base_width=4)
    rows = cnnkeras.inspect(segnet).set_index("layer")
    # 3x3, 3x3 (RF 5), 2x2 pooling (RF 6, stride 2); unpooling halves the stride, keeps the RF;
    # then two 3x3 convs at stride 1 add 2 each.
    assert [rows.loc[n, "receptive_field"] for n in ("enc1_conv1", "enc1_conv2", "enc1_pool", "dec1_unpool",
                                                     "dec1_conv1", "dec1_conv2")] == ["3", "5", "6", "6", "8", "10"]
    assert [rows.loc[n, "stride"] for n in ("enc1_pool", "dec1_unpool")] == ["2", "1"]
    unet = get_model_info("unet").builder(input_shape=(16, 16, 1), num_classes=3, depth=1, base_width=4,
                                          upsampling="bilinear")
    rows = cnnkeras.inspect(unet).set_index("layer")
    assert rows.loc["up1_upsample", "stride"] == "1" and rows.loc["down1_pool", "stride"] == "2"
    fcn = get_model_info("fcn32s").builder(input_shape=(32, 32, 3), num_classes=3, width_multiplier=0.0625,
                                           fc_units=8)
    rows = cnnkeras.inspect(fcn).set_index("layer")
    assert rows.loc["score_fr", "stride"] == "32" and rows.loc["upscore32", "stride"] == "1"
    assert int(rows.loc["upscore32", "macs"].replace(",", "")) > 0 if isinstance(rows.loc["upscore32", "macs"], str) \
        else rows.loc["upscore32", "macs"] > 0
