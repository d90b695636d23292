"""Every architecture: reference parameter counts, a training step, and a safe .keras round trip."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import cnnkeras
from cnnkeras.zoo import get_model_info, list_models
from cnnkeras.zoo.inspect import model_for
from cnnkeras.zoo.segmentation_loss import SegmentationLoss


def trainable(model) -> int:
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


@pytest.mark.slow  # 224x224x3 reference builds
@pytest.mark.parametrize("name", [n for n in list_models() if get_model_info(n).reference_params])
def test_reference_parameter_count(name):
    info = get_model_info(name)
    keras.backend.clear_session()
    model = info.builder(input_shape=info.input_shape, num_classes=info.num_classes, **info.reference_kwargs)
    count = model.count_params() if info.count == "total" else trainable(model)
    if info.tolerance:  # a paper's rounded figure
        assert abs(count - info.reference_params) <= info.tolerance * info.reference_params, info.reference_source
    else:
        assert count == info.reference_params, info.reference_source


APPLICATIONS = {
    "vgg16": keras.applications.VGG16,
    "vgg19": keras.applications.VGG19,
    "resnet50": keras.applications.ResNet50,
    "resnet101": keras.applications.ResNet101,
    "densenet121": keras.applications.DenseNet121,
    "mobilenet": keras.applications.MobileNet,
    "mobilenet_v2": keras.applications.MobileNetV2,
    "efficientnet_b0": keras.applications.EfficientNetB0,  # 5,288,548 of its 5,330,571 trainable
    "xception": keras.applications.Xception,
}


@pytest.mark.slow  # 224x224x3 reference builds
@pytest.mark.parametrize("name", sorted(APPLICATIONS))
def test_same_count_as_keras_applications(name):
    keras.backend.clear_session()
    reference = APPLICATIONS[name](weights=None, include_top=True, input_shape=(224, 224, 3), classes=1000)
    info = get_model_info(name)
    ours = info.builder(input_shape=(224, 224, 3), num_classes=1000, **info.reference_kwargs)
    assert ours.count_params() == reference.count_params()
    assert trainable(ours) == trainable(reference)


SMALL = {"width_multiplier": 0.25, "fc_units": 64, "base_width": 8, "depth": 2, "fpn_channels": 16,
         "head_channels": 8}


def _small(name):
    info = get_model_info(name)
    side = max(32, info.min_input) if "small_input" not in info.options else 32
    shape = (side, side, 3) if name not in ("lenet5",) else (28, 28, 1)
    options = {key: value for key, value in SMALL.items() if key in info.options}
    if name == "shufflenet_v2":
        options["width_multiplier"] = 0.5
    return model_for(name, input_shape=shape, num_classes=5, **options), shape


@pytest.mark.slow  # zoo-wide training
@pytest.mark.parametrize("name", list_models())
def test_builds_trains_a_step_and_round_trips_safely(name, tmp_path):
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model, shape = _small(name)
    segmentation = "segmentation" in get_model_info(name).tasks and model.output_shape[1:3] == shape[:2]
    loss = SegmentationLoss("cross_entropy", 5) if segmentation else "sparse_categorical_crossentropy"
    # One eager step: the same update as a compiled one, without minutes of graph tracing for deep nets.
    model.compile(optimizer="adam", loss=loss, run_eagerly=True)
    x = np.random.default_rng(0).random((4, *shape)).astype("float32")
    y = np.random.default_rng(1).integers(0, 5, (4, *shape[:2])) if segmentation else np.arange(4) % 5
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    predictions = keras.ops.convert_to_numpy(model(x, training=False))
    assert predictions.shape == ((4, *shape[:2], 5) if segmentation else (4, 5)) and np.isfinite(predictions).all()
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = cnnkeras.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x, training=False)), predictions,
                               rtol=1e-4, atol=1e-6)


def test_every_model_cites_a_paper_and_has_a_docstring():
    for name in list_models():
        info = get_model_info(name)
        assert info.paper and info.summary, name


def test_declarative_blocks(tmp_path):
    config = cnnkeras.config_from_dict({"name": "blocks", "model": {"arch": "sequential", "layers": [
        {"type": "conv_bn_act", "filters": 8, "batch_norm": True},
        {"type": "residual_basic", "filters": 16, "stride": 2},
        {"type": "inception", "c1": 4, "c3_reduce": 4, "c3": 8, "c5_reduce": 2, "c5": 4, "pool_proj": 4},
        {"type": "dense_block", "num_layers": 2, "growth_rate": 4},
        {"type": "transition"},
        {"type": "mlpconv", "filters": 8},
        {"type": "padding", "padding": 1, "mode": "reflect"},
        {"type": "mixed_pool", "pool_size": 2},
        {"type": "global_avg_pool"},
    ]}})
    from cnnkeras.zoo import model_from_config

    model = model_from_config(config.model, input_shape=(16, 16, 1), num_classes=3)
    assert model.output_shape == (None, 3)
    model.save(tmp_path / "b.keras")
    cnnkeras.load_model(tmp_path / "b.keras")


def test_declarative_block_missing_argument_is_a_config_error():
    with pytest.raises(cnnkeras.ConfigError, match=r"model.layers\[0\]: block residual_basic needs filters"):
        cnnkeras.config_from_dict({"name": "x", "model": {"arch": "sequential", "layers": [
            {"type": "residual_basic"}]}})


SEGMENTATION_SMALL = {"unet": {"depth": 3, "base_width": 4}, "segnet": {"depth": 3, "base_width": 4},
                      "fcn8s": {"width_multiplier": 0.0625, "fc_units": 16},
                      "fcn16s": {"width_multiplier": 0.0625, "fc_units": 16},
                      "fcn32s": {"width_multiplier": 0.0625, "fc_units": 16},
                      "fpn_resnet18": {"width_multiplier": 0.125, "fpn_channels": 8, "head_channels": 8},
                      "fpn_resnet50": {"width_multiplier": 0.125, "fpn_channels": 8, "head_channels": 8}}


@pytest.mark.parametrize("name", sorted(SEGMENTATION_SMALL))
def test_segmentation_models_predict_a_class_per_input_pixel_at_any_size(name):
    assert {n for n in list_models() if "segmentation" in get_model_info(n).tasks} == set(SEGMENTATION_SMALL)
    for shape in [(32, 32, 3), (64, 48, 1), (50, 37, 3)]:
        keras.backend.clear_session()
        for classes in (11, 1):  # softmax over 11 classes; one sigmoid channel
            model = get_model_info(name).builder(input_shape=shape, num_classes=classes, **SEGMENTATION_SMALL[name])
            assert model.output_shape == (None, *shape[:2], classes), (shape, classes)
    if "classification" in get_model_info(name).tasks:  # FPN's pooled levels feed a classifier too
        model = get_model_info(name).builder(input_shape=(32, 32, 3), num_classes=7, head="multiclass",
                                             **SEGMENTATION_SMALL[name])
        assert model.output_shape == (None, 7)
