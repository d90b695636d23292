"""Bad search spaces fail before any trial, with file:line:key-path errors."""

from __future__ import annotations

import pytest

import cnnkeras
from cnnkeras.config import ConfigError


def errors_of(path):
    with pytest.raises(ConfigError) as info:
        cnnkeras.load_config(path)
    return [str(issue) for issue in info.value.issues]


def test_path_that_does_not_exist(write_config):
    path = write_config("""
        name: s
        search:
          parameters:
            train.batch_sise: {type: int, low: 8, high: 64}
            model.dropuot: {type: float, low: 0.0, high: 0.5}
        """)
    assert errors_of(path) == [
        f"{path}:4: search.parameters.train.batch_sise: no key 'batch_sise' in train; did you mean 'train.batch_size'?",
        f"{path}:5: search.parameters.model.dropuot: no key 'dropuot' in model; did you mean 'model.dropout'?",
    ]


def test_empty_range_and_log_range_touching_zero(write_config):
    path = write_config("""
        name: s
        search:
          parameters:
            model.dropout: {type: float, low: 0.5, high: 0.2}
            train.l2: {type: float, low: 0.0, high: 0.01, log: true}
        """)
    assert errors_of(path) == [
        f"{path}:4: search.parameters.model.dropout.high: empty range: high (0.2) must be greater than low (0.5)",
        f"{path}:5: search.parameters.train.l2.log: a log range needs low > 0 (low is 0.0)",
    ]


def test_categorical_value_of_the_wrong_type(write_config):
    path = write_config("""
        name: s
        search:
          parameters:
            train.batch_size:
              type: categorical
              choices: [32, big]
        """)
    assert errors_of(path) == [
        f"{path}:6: search.parameters.train.batch_size.choices: choices[1] = 'big' is not a valid "
        "train.batch_size: input should be a valid integer, unable to parse string as an integer"
    ]


def test_bound_outside_what_the_key_accepts(write_config):
    path = write_config("""
        name: s
        search:
          parameters:
            model.dropout: {type: float, low: 0.1, high: 1.5}
        """)
    (message,) = errors_of(path)
    assert message.startswith(f"{path}:4: search.parameters.model.dropout.high: high = 1.5 is not a valid model.dropout")


def test_unknown_distribution_and_pruning_with_two_objectives(write_config):
    path = write_config("""
        name: s
        search:
          parameters:
            train.l2: {type: loguniform, low: 1.0e-5, high: 1.0e-2}
          objectives: [{metric: best_val_accuracy}, {metric: final_gap_accuracy, direction: minimize}]
          pruner: {name: median}
        """)
    assert errors_of(path) == [
        f"{path}:4: search.parameters.train.l2.type: unknown type 'loguniform'; choose from: categorical, float, int",
        f"{path}:6: search.pruner: pruning needs a single objective; set name: none for a multi-objective sweep",
    ]


def test_several_objectives_default_to_no_pruner(write_config):
    path = write_config("""
        name: s
        search:
          parameters:
            train.l2: {type: float, low: 1.0e-5, high: 1.0e-2, log: true}
          objectives: [{metric: best_val_accuracy}, {metric: final_gap_accuracy, direction: minimize}]
        """)
    assert cnnkeras.load_config(path).search.pruner.name == "none"
