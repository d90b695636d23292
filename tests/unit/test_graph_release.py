"""In-process runs do not keep their traced graphs alive (the leak of tensorflow/tensorflow#61791).

Keras' TensorFlow optimizer all-reduces gradients through a ``tf.custom_gradient``; each
trace registers a gradient function in TensorFlow's global registry that holds the whole
train-step graph. ``release_traced_graphs`` drops those entries when the last run ends.
The checks count registry entries and live ``FuncGraph`` objects, not RSS: the RSS
effect is measured in ``benchmarks/sweep.py``.
"""

from __future__ import annotations

import gc
import threading

import keras
import numpy as np
import pytest

import cnnkeras
from cnnkeras.training.graph_release import custom_gradient_entries, release_traced_graphs

on_tensorflow = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                   reason="the registry is TensorFlow's; other backends pass through")

X = np.random.default_rng(0).random((64, 8, 8, 1), dtype=np.float32)
Y = np.arange(64) % 10


def _model() -> keras.Model:
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _fit_once() -> None:
    model = _model()
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0)
    del model


def _live_graphs() -> int:
    from tensorflow.python.framework.func_graph import FuncGraph

    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, FuncGraph))


@on_tensorflow
def test_a_fit_leaves_no_registry_entry_and_no_live_graph():
    keras.backend.clear_session()
    entries, graphs = custom_gradient_entries(), _live_graphs()
    for _ in range(3):
        with release_traced_graphs():
            _fit_once()
            assert custom_gradient_entries() > entries  # the trace registered its all-reduce gradient
        keras.backend.clear_session()
        assert custom_gradient_entries() == entries
        assert _live_graphs() <= graphs


@on_tensorflow
def test_without_the_release_the_traced_graph_stays_alive():
    """The leak this module exists for: if TensorFlow fixes it, this test says so."""
    keras.backend.clear_session()
    graphs = _live_graphs()
    with release_traced_graphs():
        _fit_once()
        keras.backend.clear_session()
        assert _live_graphs() > graphs, "TensorFlow no longer keeps traced graphs: graph_release can go"
    assert _live_graphs() <= graphs


@on_tensorflow
def test_nested_and_concurrent_runs_release_only_when_the_last_one_ends():
    entries = custom_gradient_entries()
    entered, go, fitted, leave = (threading.Event() for _ in range(4))

    def other_run() -> None:
        with release_traced_graphs():
            entered.set()
            go.wait(60)
            _fit_once()  # traces while the first run's window has already closed
            fitted.set()
            leave.wait(60)

    thread = threading.Thread(target=other_run)
    thread.start()
    assert entered.wait(60)
    with release_traced_graphs():
        _fit_once()
    mine = custom_gradient_entries()
    assert mine > entries  # the other run is still active: nothing dropped under it
    go.set()
    assert fitted.wait(60)
    assert custom_gradient_entries() > mine
    leave.set()
    thread.join(60)
    assert custom_gradient_entries() == entries  # the last run out drops them all


@on_tensorflow
def test_a_model_kept_after_the_window_still_trains_retraces_and_predicts():
    with release_traced_graphs():
        model = _model()
        model.fit(X, Y, batch_size=16, epochs=1, verbose=0)
    before = model.predict(X[:4], verbose=0)
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0)  # the traced step runs again
    model.fit(X[:60], Y[:60], batch_size=7, epochs=1, verbose=0)  # a new shape retraces
    after = model.predict(X[:4], verbose=0)
    assert np.all(np.isfinite(after)) and not np.allclose(before, after)


def test_off_tensorflow_or_not_the_window_is_a_no_op_that_propagates_errors():
    with pytest.raises(ValueError, match="boom"):
        with release_traced_graphs():
            raise ValueError("boom")
    if keras.backend.backend() != "tensorflow":
        assert custom_gradient_entries() == 0


@on_tensorflow
def test_cnnkeras_run_returns_the_registry_to_where_it_was(tiny_config):
    cnnkeras.run(tiny_config, ["tracking.enabled=false", "train.epochs=1"], progress=False)
    entries = custom_gradient_entries()
    for seed in (1, 2):
        result = cnnkeras.run(tiny_config, ["tracking.enabled=false", "train.epochs=1", f"seed={seed}"],
                              progress=False)
        assert result.epochs_run == 1
        assert custom_gradient_entries() == entries
