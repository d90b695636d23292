"""SegmentationLoss: cross-entropy, soft Dice or their sum, on integer masks (a Keras loss).

Imported lazily by :mod:`cnnkeras.zoo.segmentation_head` (it imports Keras at the top).
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["LOSSES", "SegmentationLoss"]

LOSSES = ("cross_entropy", "dice", "cross_entropy+dice")


@keras.saving.register_keras_serializable(package="cnnkeras")
class SegmentationLoss(keras.losses.Loss):
    """Per-image loss on integer masks: cross-entropy, soft Dice, or their sum.

    Cross-entropy is the mean over pixels of ``-log p(true class)``. Soft Dice per image
    is ``1 - mean_c (2 sum(p_c t_c) + 1) / (sum(p_c) + sum(t_c) + 1)`` over its pixels,
    t the one-hot mask and p the predicted probabilities; the +1 makes a class absent
    from both the image and the prediction a perfect match rather than 0/0. Dice weighs
    every class equally however few pixels it has, which cross-entropy does not.

    Args:
        kind: One of cross_entropy, dice, cross_entropy+dice.
        num_classes: C; 1 for one foreground class predicted by a sigmoid.

    Input shape:
        ``y_true`` ``(batch, h, w)`` or ``(batch, h, w, 1)`` class indices;
        ``y_pred`` ``(batch, h, w, C)`` probabilities (``(batch, h, w, 1)`` for C = 1).

    Output shape:
        ``(batch,)`` before Keras' reduction.

    Example:

    >>> mask = keras.ops.zeros((1, 4, 4), "int32")
    >>> scores = keras.ops.one_hot(mask, 3) * 0.98 + 0.01
    >>> round(float(SegmentationLoss("dice", 3)(mask, scores)), 2)
    0.0
    """

    def __init__(self, kind="cross_entropy", num_classes=2, name="segmentation_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if kind not in LOSSES:
            raise ValueError(f"Argument `kind` must be one of {LOSSES}. Received: kind={kind}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"Argument `num_classes` must be a positive integer. Received: num_classes={num_classes}")
        self.kind, self.num_classes = kind, num_classes

    def call(self, y_true, y_pred):
        y_pred = ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1 - 1e-7)
        labels = ops.cast(ops.reshape(y_true, ops.shape(y_pred)[:3]), "int32")
        if self.num_classes == 1:
            truth = ops.cast(labels, "float32")[..., None]
            pixel = -(truth * ops.log(y_pred) + (1 - truth) * ops.log(1 - y_pred))[..., 0]
            probs, onehot = ops.concatenate([1 - y_pred, y_pred], -1), ops.concatenate([1 - truth, truth], -1)
        else:
            onehot = ops.one_hot(labels, self.num_classes)
            pixel = -ops.sum(onehot * ops.log(y_pred), axis=-1)
            probs = y_pred
        loss = 0.0
        if "cross_entropy" in self.kind:
            loss = loss + ops.mean(pixel, axis=(1, 2))
        if "dice" in self.kind:
            overlap = ops.sum(probs * onehot, axis=(1, 2))
            total = ops.sum(probs, axis=(1, 2)) + ops.sum(onehot, axis=(1, 2))
            loss = loss + 1.0 - ops.mean((2.0 * overlap + 1.0) / (total + 1.0), axis=-1)
        return loss

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "num_classes": self.num_classes}
