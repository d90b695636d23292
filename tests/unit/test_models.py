"""LeNet-5 as the notes describe it, heads, penalties, and models that cannot take an input."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkeras.config.schema import ModelConfig, TrainConfig
from cnnkeras.errors import ModelError
from cnnkeras.training.compile import apply_weight_penalty, compile_model
from cnnkeras.zoo import build_model, model_from_config


def test_lenet5_matches_the_paper():
    model = build_model("lenet5")
    assert model.count_params() == 61_706
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    assert shapes["c1"] == (28, 28, 6) and shapes["s2"] == (14, 14, 6)
    assert shapes["c3"] == (10, 10, 16) and shapes["s4"] == (5, 5, 16)
    assert shapes["f5"] == (120,) and shapes["f6"] == (84,) and shapes["predictions"] == (10,)


def test_input_too_small_is_a_clear_error():
    with pytest.raises(ModelError, match=r"model 'lenet5' cannot take input shape \(8, 8, 1\).*data.resize"):
        model_from_config(ModelConfig(arch="lenet5"), input_shape=(8, 8, 1), num_classes=10)


@pytest.mark.parametrize("head,units,activation", [("multiclass", 10, "softmax"), ("binary", 1, "sigmoid"),
                                                   ("regression", 1, "linear")])
def test_heads(head, units, activation):
    model = model_from_config(ModelConfig(arch="lenet5", head=head), input_shape=(28, 28, 1), num_classes=10)
    out = model.get_layer("predictions")
    assert out.units == units and out.activation.__name__ == activation


def test_weight_penalty_reaches_every_kernel_and_adds_a_loss():
    model = build_model("lenet5")
    assert apply_weight_penalty(model, l2=1e-3) == 5  # c1, c3, f5, f6, predictions
    assert len(model.losses) == 5
    compile_model(model, TrainConfig(l2=1e-3), head="multiclass", steps_per_epoch=1)
    x, y = np.random.default_rng(0).random((8, 28, 28, 1), dtype="float32"), np.arange(8) % 10
    logs = model.fit(x, y, epochs=1, verbose=0).history
    # the reported loss includes the penalty; data_loss (used for the gap) does not
    assert logs["loss"][0] > logs["data_loss"][0] > 0


def test_declarative_repeat_expands():
    layers = [{"repeat": 3, "layers": [{"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"}]}]
    model = model_from_config(ModelConfig(arch="sequential", layers=layers), input_shape=(8, 8, 1), num_classes=3)
    assert [layer.name for layer in model.layers if layer.name.startswith("conv2d")] == [
        "conv2d_1", "conv2d_2", "conv2d_3"]
    assert model.predict(np.zeros((2, 8, 8, 1)), verbose=0).shape == (2, 3)
