"""MixedPooling2D: a weighted mix of max and average pooling, fixed or learned."""

from __future__ import annotations

import math

import keras
from keras import ops

from ._checks import number_in, one_of, pair
from .registry import register_layer


@keras.saving.register_keras_serializable(package="cnnkeras")
@register_layer("mixed_pool")
class MixedPooling2D(keras.layers.Layer):
    """``alpha * maxpool(x) + (1 - alpha) * avgpool(x)``.

    Mixed pooling (Yu et al. 2014; Lee, Gallagher and Tu 2016) sits between max
    pooling (keeps the strongest response) and average pooling (keeps the mean).
    With ``learnable=True``, alpha is a trained weight, kept in (0, 1) by a sigmoid.

    Args:
        pool_size: Window size, int or pair.
        strides: Step, int or pair; defaults to ``pool_size``.
        padding: ``"valid"`` or ``"same"``.
        alpha: The weight of max pooling (its initial value when learnable).
        learnable: Learn alpha.

    Input shape:
        ``(batch, height, width, channels)``.

    Output shape:
        ``(batch, pooled_height, pooled_width, channels)``, as MaxPooling2D.

    Example:

    >>> MixedPooling2D(2, alpha=0.5)(keras.ops.ones((1, 4, 4, 3))).shape
    (1, 2, 2, 3)
    """

    def __init__(self, pool_size=2, strides=None, padding="valid", alpha=0.5, learnable=False, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pair(pool_size, "pool_size")
        self.strides = pair(strides, "strides") if strides is not None else self.pool_size
        self.padding = one_of(padding, ("valid", "same"), "padding")
        self.alpha = number_in(alpha, "alpha", 0.0, 1.0)
        self.learnable = bool(learnable)
        if self.learnable and self.alpha in (0.0, 1.0):
            raise ValueError(f"A learnable alpha must start strictly between 0 and 1. Received: alpha={alpha}")
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        self.alpha_logit = None
        if self.learnable:
            logit = math.log(self.alpha / (1.0 - self.alpha))
            self.alpha_logit = self.add_weight(shape=(), name="alpha_logit",
                                               initializer=keras.initializers.Constant(logit))

    def call(self, inputs):
        kwargs = {"pool_size": self.pool_size, "strides": self.strides, "padding": self.padding}
        maxed = ops.max_pool(inputs, **kwargs)
        averaged = ops.average_pool(inputs, **kwargs)
        alpha = ops.sigmoid(self.alpha_logit) if self.alpha_logit is not None else self.alpha
        return alpha * maxed + (1.0 - alpha) * averaged

    def compute_output_shape(self, input_shape):
        return keras.layers.MaxPooling2D(self.pool_size, self.strides, self.padding).compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding, "alpha": self.alpha, "learnable": self.learnable}
