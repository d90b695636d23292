"""Training throughput of every architecture, and each custom layer against the closest built-in.

Part 1: images/s of compiled training steps (Adam, batch 32) for each registered
architecture at 32x32x3 (small-input stems where the model has one; AlexNet and NiN
at their smallest input), after warm-up steps.
Part 2: the forward time of each custom layer against the closest Keras layer on the
same input (batch 64, 32x32x16), side by side in one process; goal: within 1.5x. Also
the time of a training step through each (a shared 1x1 conv, then the layer).
Rows marked "reference" do not count toward the goal: they put a layer beside a
different computation (LRN against an affine map), beside a backend's own fused
kernel for the same job (on TensorFlow, ``tf.nn.max_pool_with_argmax``), show
what Keras' own layers cost for the same structure (zero padding, then a valid conv),
or give a lower bound (the part of argmax pooling that no elementwise form can skip).

    .venv/bin/python benchmarks/zoo.py [--steps 5] [--repeats 60] [--archs unet segnet ...]

Segmentation models train at 32x32 too, at the widths in ``SEGMENTATION_OPTIONS``, on
random masks of 10 classes (cross-entropy).
"""

from __future__ import annotations

import argparse
import json
import time

import keras
import numpy as np
from common import RESULTS, median, save, timed

from cnnkeras import layers as L
from cnnkeras.layers._windows import window_positions
from cnnkeras.zoo import get_model_info, list_models
from cnnkeras.zoo.inspect import model_for
from cnnkeras.zoo.segmentation_loss import SegmentationLoss

#: Segmentation models at widths that train at 32x32 on a CPU (their defaults are ImageNet-sized).
SEGMENTATION_OPTIONS = {"unet": {"depth": 3, "base_width": 16}, "segnet": {"depth": 3, "base_width": 16},
                        "fcn8s": {"width_multiplier": 0.25, "fc_units": 256},
                        "fcn16s": {"width_multiplier": 0.25, "fc_units": 256},
                        "fcn32s": {"width_multiplier": 0.25, "fc_units": 256},
                        "fpn_resnet18": {}, "fpn_resnet50": {}}


def throughput(name: str, steps: int, batch: int = 32) -> dict:
    keras.backend.clear_session()
    info = get_model_info(name)
    side = 32 if "small_input" in info.options or info.min_input <= 32 else info.min_input
    shape = (28, 28, 1) if name == "lenet5" else (side, side, 3)
    options = SEGMENTATION_OPTIONS.get(name, {})
    if "small_input" in info.options and name.startswith("fpn"):
        options = {"small_input": True}
    model = model_for(name, input_shape=shape, num_classes=10, **options)
    segmentation = len(model.output_shape) == 4
    model.compile(optimizer="adam", loss=SegmentationLoss("cross_entropy", 10) if segmentation
                  else "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((batch, *shape)).astype("float32")
    y = np.random.default_rng(1).integers(0, 10, (batch, *shape[:2])) if segmentation else np.arange(batch) % 10
    for _ in range(2):
        model.train_on_batch(x, y)
    times = [timed(lambda: model.train_on_batch(x, y))[0] for _ in range(steps)]
    return {"input": shape, "params": model.count_params(), "images_per_s": batch / median(times),
            "task": "segmentation" if segmentation else "classification", "options": options}


PAIRS = {
    "Padding2D(reflect) vs ZeroPadding2D": (lambda: L.Padding2D(1, mode="reflect"), lambda: keras.layers.ZeroPadding2D(1)),
    "PaddedConv2D(reflect) vs Conv2D(same)": (lambda: L.PaddedConv2D(16, 3, padding_mode="reflect"),
                                              lambda: keras.layers.Conv2D(16, 3, padding="same")),
    # What explicit padding then a valid conv costs with Keras' own layers (XLA on CPU trains
    # this 2x slower than a "same" conv, whatever fills the border):
    "ZeroPadding2D + Conv2D(valid) vs Conv2D(same) (reference)": (
        lambda: keras.Sequential([keras.layers.ZeroPadding2D(1), keras.layers.Conv2D(16, 3)]),
        lambda: keras.layers.Conv2D(16, 3, padding="same")),
    "SpatiallySeparableConv2D(3) vs Conv2D(3x3)": (lambda: L.SpatiallySeparableConv2D(16, 3, padding="same"),
                                                   lambda: keras.layers.Conv2D(16, 3, padding="same")),
    "MixedPooling2D vs MaxPooling2D": (lambda: L.MixedPooling2D(2), lambda: keras.layers.MaxPooling2D(2)),
    "MaxPoolingWithArgmax2D vs MaxPooling2D": (lambda: L.MaxPoolingWithArgmax2D(2), lambda: keras.layers.MaxPooling2D(2)),
    "SpatialPyramidPooling2D(1,2,4) vs AdaptiveMaxPooling2D(4)": (
        lambda: L.SpatialPyramidPooling2D((1, 2, 4)), lambda: keras.layers.AdaptiveMaxPooling2D((4, 4))),
    "Upsample2D(bilinear) vs UpSampling2D(bilinear)": (lambda: L.Upsample2D(2, "bilinear"),
                                                       lambda: keras.layers.UpSampling2D(2, interpolation="bilinear")),
    "Upsample2D(nearest) vs UpSampling2D(nearest)": (lambda: L.Upsample2D(2, "nearest"),
                                                     lambda: keras.layers.UpSampling2D(2)),
    # LayerNormalization is the closest built-in: like LRN it normalizes each position across
    # channels (Keras has no LRN). Against inference-mode BatchNormalization, an affine map, see below.
    "LocalResponseNormalization vs LayerNormalization": (lambda: L.LocalResponseNormalization(),
                                                         lambda: keras.layers.LayerNormalization()),
    "LocalResponseNormalization vs BatchNormalization (affine only, reference)": (
        lambda: L.LocalResponseNormalization(), lambda: keras.layers.BatchNormalization()),
}


class _TFMaxPoolWithArgmax(keras.layers.Layer):
    """TensorFlow's fused C++ max pool with argmax (reference row only)."""

    def call(self, inputs):
        import tensorflow as tf

        return tf.nn.max_pool_with_argmax(inputs, 2, 2, "VALID")


class _ArgmaxFloor(L.MaxPoolingWithArgmax2D):
    """A lower bound for argmax pooling run op by op, as TensorFlow runs it (reference row only).

    The window split, the tournament's maxima, and one comparison returned as the
    int32 second output: what ``MaxPoolingWithArgmax2D`` cannot do without when
    every op is its own kernel. Its index is not the argmax (that needs two more
    comparisons and their assembly). Under XLA the ops fuse, so it bounds nothing there.
    Only ``call`` differs from ``MaxPoolingWithArgmax2D(2)`` (shapes and dtypes are its).
    """

    def call(self, inputs):
        a, b, c, d = window_positions(inputs, 2)
        top, bottom = keras.ops.maximum(a, b), keras.ops.maximum(c, d)
        return keras.ops.maximum(top, bottom), keras.ops.cast(keras.ops.greater(bottom, top), "int32")


if keras.backend.backend() == "tensorflow":
    PAIRS["Argmax floor: split, maxima, one comparison vs MaxPooling2D (reference)"] = (
        _ArgmaxFloor, lambda: keras.layers.MaxPooling2D(2))
    PAIRS["MaxPoolingWithArgmax2D vs tf.nn.max_pool_with_argmax (reference)"] = (
        lambda: L.MaxPoolingWithArgmax2D(2), _TFMaxPoolWithArgmax)


def _first(outputs):
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


def layer_times(make_custom, make_builtin, x, repeats: int) -> dict[str, tuple[float, float]]:
    """Median times of each layer, custom then built-in, called alternately so drift hits both alike.

    ``forward``: ``predict_on_batch`` of a model that is just the layer (every output).
    ``train``: ``train_on_batch`` (SGD, MSE on the first output) of a 1x1 conv followed
    by the layer, so that the gradient flows through the layer into the conv's weights;
    the conv is the same on both sides.
    """
    forward, train, targets = [], [], []
    for make in (make_custom, make_builtin):
        inputs = keras.Input(x.shape[1:])
        forward.append(keras.Model(inputs, make()(inputs)))
        trained = keras.Model(inputs, _first(make()(keras.layers.Conv2D(x.shape[-1], 1)(inputs))))
        trained.compile(optimizer="sgd", loss="mse")
        targets.append(np.zeros((x.shape[0], *trained.output_shape[1:]), "float32"))
        train.append(trained)
        for _ in range(3):
            forward[-1].predict_on_batch(x)
            trained.train_on_batch(x, targets[-1])
    times: dict[str, list[list[float]]] = {"forward": [[], []], "train": [[], []]}
    for _ in range(repeats):
        for i in range(2):
            times["forward"][i].append(timed(lambda i=i: forward[i].predict_on_batch(x))[0])
            times["train"][i].append(timed(lambda i=i: train[i].train_on_batch(x, targets[i]))[0])
    return {kind: (median(t[0]), median(t[1])) for kind, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--layers-only", action="store_true", help="Skip the architecture throughput part.")
    parser.add_argument("--archs", nargs="+", default=None,
                        help="Measure only these architectures (no layer part) and merge them into the saved zoo.json.")
    parser.add_argument("--save-as", default=None,
                        help="Result name; default zoo on TensorFlow, zoo_layers_<backend>_cpu on another backend.")
    args = parser.parse_args()
    archs = {}
    for name in [] if args.layers_only else (args.archs or list_models()):
        archs[name] = throughput(name, args.steps)
        print(f"{name:12s} {archs[name]['input']}  {archs[name]['params']:>11,} params  "
              f"{archs[name]['images_per_s']:8.1f} images/s")
    if args.archs:
        saved = json.loads((RESULTS / "zoo.json").read_text())
        saved["architectures"].update(archs)
        saved.setdefault("merged", []).append({"archs": args.archs, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        save("zoo", {k: v for k, v in saved.items() if k not in ("benchmark", "machine", "time")})
        return
    x = np.random.default_rng(0).random((64, 32, 32, 16)).astype("float32")
    layers = {}
    for label, (custom, builtin) in PAIRS.items():
        keras.backend.clear_session()
        measured = layer_times(custom, builtin, x, args.repeats)
        (mine, theirs), (mine_train, theirs_train) = measured["forward"], measured["train"]
        layers[label] = {"custom_ms": mine * 1e3, "builtin_ms": theirs * 1e3, "ratio": mine / theirs,
                         "train_custom_ms": mine_train * 1e3, "train_builtin_ms": theirs_train * 1e3,
                         "train_ratio": mine_train / theirs_train}
        print(f"{label:58s} forward {mine * 1e3:6.2f} vs {theirs * 1e3:6.2f} ms = {mine / theirs:4.2f}x   "
              f"train step {mine_train * 1e3:6.2f} vs {theirs_train * 1e3:6.2f} ms = {mine_train / theirs_train:4.2f}x")
    goal = {k: v for k, v in layers.items() if "reference" not in k}
    within = [k for k, v in goal.items() if v["ratio"] <= 1.5]
    within_train = [k for k, v in goal.items() if v["train_ratio"] <= 1.5]
    print(f"within 1.5x of the closest built-in: {len(within)}/{len(goal)} forward, "
          f"{len(within_train)}/{len(goal)} training step")
    name = args.save_as or ("zoo" if keras.backend.backend() == "tensorflow"
                            else f"zoo_layers_{keras.backend.backend()}_cpu")
    if args.layers_only and name == "zoo" and (RESULTS / "zoo.json").exists():
        archs = json.loads((RESULTS / "zoo.json").read_text()).get("architectures", {})
    save(name, {"args": vars(args), "architectures": archs, "layers": layers, "goal_ratio": 1.5,
                 "within_goal": f"{len(within)}/{len(goal)}",
                 "within_goal_train": f"{len(within_train)}/{len(goal)}"})


if __name__ == "__main__":
    main()
