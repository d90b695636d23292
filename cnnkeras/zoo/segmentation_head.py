"""The segmentation head: per-pixel class scores, its loss (cross-entropy, Dice or both) and metrics.

A segmentation model ends in :func:`segmentation_output`: a 1x1 convolution to C
channels with a per-pixel softmax, or, for one foreground class, one channel with a
sigmoid. Masks are integer class indices ``(N, H, W)``. The metrics are Keras' own:
pixel accuracy (``accuracy``, so the accuracy gap and every accuracy-based measure
apply to pixels), mean IoU over the classes (``mean_iou``; a class absent from both
the prediction and the truth of the whole epoch is left out of the mean, as
``keras.metrics.MeanIoU`` does) and the IoU of each class (``iou_0`` ...).
"""

from __future__ import annotations

from typing import Any

from ..lazy import lazy_import

keras = lazy_import("keras")
segmentation_loss = lazy_import("cnnkeras.zoo.segmentation_loss")

__all__ = ["segmentation_loss_and_metrics", "segmentation_output"]

PER_CLASS_LIMIT = 32  # per-class IoU curves beyond this many classes would drown the run's metrics


def segmentation_output(x: Any, *, num_classes: int, project: bool = True, name: str = "segmentation") -> Any:
    """(N, H, W, F) -> (N, H, W, C) softmax scores; (N, H, W, 1) sigmoid when ``num_classes`` is 1.

    ``project=False``: ``x`` already holds the C class scores (FCN): only the activation.
    """
    if not project:
        return keras.layers.Activation("sigmoid" if num_classes == 1 else "softmax", name=name, dtype="float32")(x)
    if num_classes == 1:
        return keras.layers.Conv2D(1, 1, activation="sigmoid", name=name, dtype="float32")(x)
    return keras.layers.Conv2D(num_classes, 1, activation="softmax", name=name, dtype="float32")(x)


def segmentation_loss_and_metrics(num_classes: int, *, loss: str = "cross_entropy",
                                  data_loss: bool = False) -> tuple[Any, list[Any]]:
    """The loss and metrics of a segmentation head with ``num_classes`` outputs (1: sigmoid)."""
    loss_object = segmentation_loss.SegmentationLoss(kind=loss, num_classes=num_classes)
    if num_classes == 1:
        metrics: list[Any] = [keras.metrics.BinaryAccuracy(name="accuracy"),
                              keras.metrics.BinaryIoU(target_class_ids=(0, 1), name="mean_iou"),
                              keras.metrics.BinaryIoU(target_class_ids=(0,), name="iou_0"),
                              keras.metrics.BinaryIoU(target_class_ids=(1,), name="iou_1")]
    else:
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                   keras.metrics.MeanIoU(num_classes, sparse_y_pred=False, name="mean_iou")]
        if num_classes <= PER_CLASS_LIMIT:
            metrics += [keras.metrics.IoU(num_classes, [c], sparse_y_pred=False, name=f"iou_{c}")
                        for c in range(num_classes)]
    if data_loss:
        metrics.append(keras.metrics.MeanMetricWrapper(loss_object, name="data_loss"))
    return loss_object, metrics
