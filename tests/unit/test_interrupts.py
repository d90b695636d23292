"""Ctrl-C is deferred to a safe point: an epoch boundary, never the middle of an MLflow write.

The signal is real (``os.kill(os.getpid(), SIGINT)``), sent only inside the window.
"""

from __future__ import annotations

import os
import signal

import keras
import mlflow
import numpy as np
import pytest

import cnnkeras
from cnnkeras import interrupts
from cnnkeras.tracking import to_mlflow
from cnnkeras.training.callbacks import StopOnInterrupt


def _ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_first_ctrl_c_is_deferred_to_the_end_of_the_window_and_the_handler_restored():
    before = signal.getsignal(signal.SIGINT)
    reached = False
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred_interrupts():
            _ctrl_c()
            assert interrupts.requested()
            reached = True  # the body went on after the signal
    assert reached
    assert signal.getsignal(signal.SIGINT) is before
    assert not interrupts.requested()


def test_second_ctrl_c_raises_at_once():
    after_second = False
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred_interrupts():
            _ctrl_c()
            _ctrl_c()
            after_second = True
    assert not after_second


def test_nested_windows_share_one_handler_and_only_the_outermost_raises():
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred_interrupts():
            with interrupts.deferred_interrupts():
                _ctrl_c()
            assert interrupts.requested()  # the inner window closed without raising


def test_a_window_with_no_ctrl_c_is_invisible():
    with interrupts.deferred_interrupts():
        pass
    with pytest.raises(ValueError):
        with interrupts.deferred_interrupts():
            raise ValueError("an error in the body passes through unchanged")


class _CtrlCAtBatch(keras.callbacks.Callback):
    def __init__(self, epoch: int, batch: int):
        super().__init__()
        self.when, self.epoch, self.batches = (epoch, batch), 0, 0
        self.epochs_ended = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if (self.epoch, batch) == self.when:
            _ctrl_c()

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_ended += 1


def test_a_fit_stops_after_the_batch_and_raises_before_the_partial_epoch_is_seen():
    x = np.random.default_rng(0).random((256, 8, 8, 1), dtype=np.float32)
    y = np.arange(256) % 10
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    probe = _CtrlCAtBatch(epoch=1, batch=2)
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred_interrupts(), interrupts.watch(model):
            model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[StopOnInterrupt(), probe])
    assert probe.epochs_ended == 1  # epoch 2 was cut short and never reached the probe's epoch end
    assert probe.batches == 16 + 3  # one whole epoch, then batches 0..2 of the second


class _CtrlCAfterEpoch:
    """An epoch listener that presses Ctrl-C once the given epoch is logged."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch(self, epoch: int, record: dict) -> None:
        if epoch == self.epoch:
            _ctrl_c()


def test_ctrl_c_during_a_tracked_run_marks_it_killed_with_the_finished_epochs_only(tiny_config, tracking_uri):
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        cnnkeras.run(tiny_config, ["train.epochs=3"], progress=False, listeners=[_CtrlCAfterEpoch(1)])
    client = mlflow.MlflowClient(tracking_uri)
    [experiment] = [e for e in client.search_experiments() if e.name == "tiny"]
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "KILLED"
    assert len(client.get_metric_history(run.info.run_id, to_mlflow("val_accuracy"))) == 1
    assert signal.getsignal(signal.SIGINT) is before


def test_a_second_signal_does_not_abort_the_closing_of_the_runs(capfd):
    """A second SIGTERM that lands while a run is being closed (after the first stopped training) is said in one
    line and does not raise into the closing, which would leave the run RUNNING."""
    import os
    import signal

    import pytest

    from cnnkeras import interrupts

    with pytest.raises(interrupts.Interrupted):
        with interrupts.deferred_interrupts():
            os.kill(os.getpid(), signal.SIGTERM)  # the first: recorded
            with interrupts.closing():
                os.kill(os.getpid(), signal.SIGTERM)  # the second, while closing: said, not raised
                closed = True
            assert closed and "closing the runs first" in capfd.readouterr().err
        # the window still ends with the stop (a third signal would exit the process at once, untested here)
