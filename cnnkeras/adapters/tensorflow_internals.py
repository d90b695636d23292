"""The TensorFlow internal cnnkeras relies on: the process-global gradient registry.

Why: with the TensorFlow backend every traced train step registers a ``tf.custom_gradient``
(Keras' optimizer all-reduces gradients through one) in TensorFlow's gradient registry, a
module global that nothing clears and that keeps the whole traced graph alive (about 6 MB
per fitted LeNet-sized model; tensorflow/tensorflow#61791, keras-team/keras#20552).
:mod:`cnnkeras.training.graph_release` drops the entries a finished run registered; this
module is the one place that finds the registry. Other backends have none.
"""

from __future__ import annotations

from typing import Any

__all__ = ["REQUIRES", "gradient_registry"]

#: Private names used here, as (module, attribute path): checked by a test where TensorFlow is installed.
REQUIRES = (("tensorflow.python.framework.ops", "_gradient_registry._registry"),)


def gradient_registry() -> dict[str, Any] | None:
    """TensorFlow's gradient registry (a dict of name -> function), or None without TensorFlow."""
    try:  # TensorFlow is optional (JAX and PyTorch machines have none)
        from tensorflow.python.framework import ops
    except ImportError:  # pragma: no cover - a machine without TensorFlow
        return None
    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else None
