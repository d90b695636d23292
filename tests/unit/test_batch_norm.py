"""``model.bn_momentum`` on every zoo family with batch norm, and the warning when its statistics lag."""

from __future__ import annotations

import dataclasses

import keras
import pytest
from mlflow.tracking import MlflowClient

import cnnkeras
from cnnkeras.config import ConfigError, config_from_dict
from cnnkeras.training.callbacks import BATCH_NORM_TAG
from cnnkeras.zoo import registry
from cnnkeras.zoo.build import model_from_config
from cnnkeras.zoo.registry import get_model_info, list_models

from ..conftest import MNIST

SMALL = {"width_multiplier": 0.25, "fc_units": 16, "base_width": 4, "depth": 2, "fpn_channels": 8,
         "head_channels": 4}


def _config(arch: str, **model):
    info = get_model_info(arch)
    options = {k: v for k, v in SMALL.items() if k in info.options}
    if "batch_norm" in info.options:
        options["batch_norm"] = True
    if "small_input" in info.options:
        options["small_input"] = True
    if arch == "shufflenet_v2":
        options["width_multiplier"] = 0.5
    head = "segmentation" if "classification" not in info.tasks else "multiclass"
    return config_from_dict({"name": "bn", "model": {"arch": arch, "head": head, **options, **model},
                             **({"data": {"source": "digit_scenes"}} if head == "segmentation" else {})})


def _batch_norms(model):
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.BatchNormalization)]


BN_FAMILIES = [n for n in list_models() if get_model_info(n).batch_norm and n != "sequential"]


@pytest.mark.slow  # builds every zoo model
@pytest.mark.parametrize("arch", BN_FAMILIES)
def test_every_family_with_batch_norm_takes_bn_momentum(arch):
    keras.backend.clear_session()
    config = _config(arch, bn_momentum=0.7)
    info = get_model_info(arch)
    side = 64 if "segmentation" in info.tasks else max(32, info.min_input if "small_input" not in info.options else 32)
    model = model_from_config(config.model, input_shape=(side, side, 3), num_classes=3)
    layers = _batch_norms(model)
    assert layers and all(layer.momentum == 0.7 for layer in layers)
    assert all(layer.get_config()["momentum"] == 0.7 for layer in layers)  # saved with the model


def test_bn_momentum_on_lenet_and_declarative_layers_and_it_is_saved(tmp_path):
    model = model_from_config(_config("lenet5", bn_momentum=0.5).model, input_shape=(28, 28, 1), num_classes=10)
    assert [layer.momentum for layer in _batch_norms(model)] == [0.5, 0.5]
    declarative = config_from_dict({"name": "bn", "model": {"arch": "sequential", "bn_momentum": 0.8, "layers": [
        {"type": "conv_bn_act", "filters": 4, "batch_norm": True, "bn_momentum": 0.99},
        {"type": "batch_norm"}]}})
    model = model_from_config(declarative.model, input_shape=(8, 8, 1), num_classes=10)
    assert [layer.momentum for layer in _batch_norms(model)] == [0.8, 0.8]
    model.save(tmp_path / "m.keras")
    loaded = cnnkeras.load_model(tmp_path / "m.keras")
    assert [layer.momentum for layer in _batch_norms(loaded)] == [0.8, 0.8]
    # without the option every family keeps its own momentum (ShuffleNet's 0.9, Keras' 0.99)
    plain = model_from_config(_config("shufflenet_v2").model, input_shape=(32, 32, 3), num_classes=3)
    assert {layer.momentum for layer in _batch_norms(plain)} == {0.9}


@pytest.mark.parametrize("model, message", [
    ({"arch": "lenet5", "bn_momentum": 0.9},
     "model.bn_momentum: arch 'lenet5' builds no batch norm with batch_norm off (its default)"),
    ({"arch": "vgg11", "batch_norm": False, "bn_momentum": 0.9},
     "model.bn_momentum: arch 'vgg11' builds no batch norm with batch_norm false"),
    ({"arch": "sequential", "bn_momentum": 0.9, "layers": [{"type": "conv2d", "filters": 4}]},
     "model.bn_momentum: the layers hold no batch norm"),
    ({"arch": "lenet5", "batch_norm": True, "bn_momentum": 1.0},
     "model.bn_momentum: input should be less than 1"),
])
def test_bn_momentum_where_nothing_would_use_it_is_a_config_error(model, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"name": "bn", "model": model})
    assert any(message in str(issue) for issue in info.value.issues), info.value.issues


def test_a_family_without_batch_norm_refuses_the_option_like_any_other(monkeypatch):
    info = get_model_info("lenet5")
    monkeypatch.setitem(registry._REGISTRY, "lenet5", dataclasses.replace(info, batch_norm=False))
    assert "bn_momentum" not in get_model_info("lenet5").options
    with pytest.raises(ConfigError, match="model.bn_momentum: arch 'lenet5' takes no option 'bn_momentum'"):
        config_from_dict({"name": "bn", "model": {"arch": "lenet5", "bn_momentum": 0.9}})


LAGGING = {"name": "bn-lag", "seed": 0,
           "data": {"source": "npz", "path": str(MNIST), "subset": 1000, "test_subset": 500},
           "model": {"arch": "resnet18", "small_input": True, "width_multiplier": 0.25},
           "train": {"epochs": 2, "batch_size": 32}}


@pytest.mark.slow  # two ResNet-18 runs on 1,000 MNIST images, about 12 s each
@pytest.mark.skipif(not MNIST.exists(), reason="needs ../shared/data/mnist.npz")
def test_lagging_batch_norm_statistics_are_named_once_and_tagged_and_bn_momentum_cures_them(tmp_path, capfd):
    from cnnkeras.runner import run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    lagging = run(config_from_dict({**LAGGING, "tracking": {"uri": uri, "log_model": False, "log_plots": False}}),
                  progress=False)
    err = capfd.readouterr().err
    assert err.count("batch-norm statistics, not overfitting; try model.bn_momentum") == 1, err
    last = {key: values[-1] for key, values in lagging.history.items()}
    assert last["accuracy"] > 0.8 and last["train_accuracy"] < 0.3 and last["val_accuracy"] < 0.3
    tags = MlflowClient(uri).get_run(lagging.run_id).data.tags
    assert "batch-norm statistics, not overfitting" in tags[BATCH_NORM_TAG]

    settled = run(config_from_dict({**LAGGING, "model": {**LAGGING["model"], "bn_momentum": 0.5},
                                    "tracking": {"uri": uri, "log_model": False, "log_plots": False}}),
                  progress=False)
    assert "batch-norm statistics" not in capfd.readouterr().err
    assert settled.history["train_accuracy"][-1] > 0.8 and settled.history["val_accuracy"][-1] > 0.7
    assert BATCH_NORM_TAG not in MlflowClient(uri).get_run(settled.run_id).data.tags


def test_no_batch_norm_warning_for_a_model_without_batch_norm():
    """A model that collapses within an epoch (running accuracy high, the end-of-epoch model at chance) is not
    batch norm: the warning is only for models that have it."""
    from rich.console import Console

    from cnnkeras.training.callbacks import BatchNormWarning
    from cnnkeras.training.fit import training_callbacks

    config = config_from_dict({"name": "bn"})
    record = {"accuracy": 0.75, "train_accuracy": 0.12, "val_accuracy": 0.11}
    for batch_norm, expected in ((False, 0), (True, 1)):
        made = training_callbacks(config, num_classes=10, batch_norm=batch_norm)
        warnings = [lst for lst in made.recorder.listeners if isinstance(lst, BatchNormWarning)]
        assert len(warnings) == expected
        for warning in warnings:
            warning.console = Console(file=open("/dev/null", "w"))
            warning.on_epoch(9, record)
            assert warning.message.startswith("epoch 9: training-mode accuracy 0.750")
