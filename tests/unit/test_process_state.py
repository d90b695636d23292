"""What a run builds does not depend on what the process built before (the dtype policy: test_experiments)."""

from __future__ import annotations

import keras

from cnnkeras.config import config_from_dict
from cnnkeras.zoo.build import model_from_config


def test_layer_names_do_not_depend_on_what_the_process_built_before():
    model = config_from_dict({"name": "n", "model": {"arch": "resnet18", "small_input": True}}).model

    def names():
        keras.backend.clear_session()  # as every run does first
        built = model_from_config(model, input_shape=(32, 32, 3), num_classes=10)
        return [layer.name for layer in built.layers]

    first = names()
    model_from_config(model, input_shape=(32, 32, 3), num_classes=10)  # something else built in between
    assert names() == first
