"""Optimizers, learning-rate schedules, weight penalties and ``model.compile``.

Everything here maps a config section onto the Keras object that already does
the work: ``keras.optimizers.*``, ``keras.optimizers.schedules.*``,
``keras.regularizers.L1L2`` and ``keras.callbacks.ReduceLROnPlateau``.
"""

from __future__ import annotations

import math
from typing import Any

import keras

from ..adapters import keras_internals
from ..config.schema import TrainConfig
from ..zoo.heads import head_loss_and_metrics

__all__ = ["apply_weight_penalty", "compile_model", "make_optimizer", "make_schedule"]

# Which variable of a layer each regularizer attribute applies to.
_REGULARIZED = {
    "kernel_regularizer": "kernel",
    "depthwise_regularizer": "depthwise_kernel",
    "pointwise_regularizer": "pointwise_kernel",
}


def make_schedule(train: TrainConfig, steps_per_epoch: int) -> Any:
    """The learning rate (a float or a ``LearningRateSchedule``) for ``train``."""
    lr = train.optimizer.learning_rate
    schedule = train.schedule
    schedules = keras.optimizers.schedules
    if schedule.name == "step":
        drops = [k * schedule.step_epochs * steps_per_epoch for k in range(1, train.epochs // schedule.step_epochs + 1)]
        if not drops:
            return lr
        return schedules.PiecewiseConstantDecay(drops, [lr * schedule.gamma**k for k in range(len(drops) + 1)])
    if schedule.name == "exponential":
        return schedules.ExponentialDecay(lr, decay_steps=steps_per_epoch, decay_rate=schedule.decay_rate)
    if schedule.name == "cosine":
        warmup = schedule.warmup_epochs * steps_per_epoch
        decay = max(1, train.epochs * steps_per_epoch - warmup)
        if warmup:
            return schedules.CosineDecay(0.0, decay, alpha=schedule.alpha, warmup_target=lr, warmup_steps=warmup)
        return schedules.CosineDecay(lr, decay, alpha=schedule.alpha)
    if schedule.name == "one_cycle":  # Keras' CosineDecay with a warm-up is exactly this shape
        total = max(2, train.epochs * steps_per_epoch)
        rise = min(total - 1, max(1, round(schedule.pct_start * total)))
        return schedules.CosineDecay(lr / schedule.div_factor, total - rise,
                                     alpha=1.0 / (schedule.div_factor * schedule.final_div_factor),
                                     warmup_target=lr, warmup_steps=rise)
    return lr  # constant, and reduce_on_plateau (a callback)


def make_optimizer(train: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The Keras optimizer named by ``train.optimizer``, with its schedule."""
    opt = train.optimizer
    common: dict[str, Any] = {"learning_rate": make_schedule(train, steps_per_epoch)}
    if opt.clipnorm is not None:
        common["clipnorm"] = opt.clipnorm
    if opt.name == "sgd":
        return keras.optimizers.SGD(momentum=opt.momentum, nesterov=opt.nesterov, **common)
    if opt.name == "adam":
        return keras.optimizers.Adam(beta_1=opt.beta_1, beta_2=opt.beta_2, epsilon=opt.epsilon, **common)
    if opt.name == "adamw":
        return keras.optimizers.AdamW(weight_decay=opt.weight_decay, beta_1=opt.beta_1, beta_2=opt.beta_2,
                                      epsilon=opt.epsilon, **common)
    if opt.name == "rmsprop":
        return keras.optimizers.RMSprop(rho=opt.rho, momentum=opt.momentum, **common)
    raise ValueError(f"Unknown optimizer. Received: name={opt.name}")


def apply_weight_penalty(model: keras.Model, *, l1: float = 0.0, l2: float = 0.0) -> int:
    """Attach an L1/L2 penalty to every conv and dense kernel of a built model.

    Keras 3 keeps a weight's regularizer on the variable, so setting it after
    building works for every zoo model without threading the penalty through
    each builder; the layer attribute is set too, so saved models keep it.
    Returns the number of kernels penalized.
    """
    if not l1 and not l2:
        return 0
    count = 0
    for layer in keras_internals.flatten_layers(model):
        for attribute, variable_name in _REGULARIZED.items():
            variable = getattr(layer, variable_name, None)
            if hasattr(layer, attribute) and variable is not None:
                regularizer = keras.regularizers.L1L2(l1=l1, l2=l2)
                setattr(layer, attribute, regularizer)
                variable.regularizer = regularizer
                count += 1
    return count


def compile_model(model: keras.Model, train: TrainConfig, *, head: str, steps_per_epoch: int,
                  loss: str | None = None) -> None:
    """Compile ``model`` with the optimizer, loss and metrics that ``train`` and ``head`` call for
    (``loss``: a segmentation head's loss; its classes are the model's output channels)."""
    apply_weight_penalty(model, l1=train.l1, l2=train.l2)
    loss_object, metrics = head_loss_and_metrics(head, label_smoothing=train.label_smoothing,
                                                 data_loss=bool(train.l1 or train.l2),
                                                 num_outputs=model.output_shape[-1], loss=loss)
    model.compile(optimizer=make_optimizer(train, steps_per_epoch), loss=loss_object, metrics=metrics,
                  steps_per_execution=train.steps_per_execution)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return max(1, math.ceil(n_train / batch_size))
