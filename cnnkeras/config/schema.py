"""The experiment config: pydantic models that are the one source of truth.

Defaults, validation, the JSON schema (``cnnkeras schema``) and the reference in
``docs/configuration.md`` all come from the classes below. Every model forbids
unknown keys (never warn-and-drop) and is frozen: a loaded config is immutable,
and overrides are applied to the raw mapping before validation.

Optimizers, schedules and data sources are discriminated unions, so a typo in
``name: adamm`` is reported against the list of valid names. Cross-field rules
are small field validators, each with a docstring saying the rule.

This module imports no Keras, MLflow or Optuna.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

__all__ = [
    "Adam",
    "AdamW",
    "Augmentation",
    "Checkpoint",
    "Claim",
    "EpochBudget",
    "ExamplesBudget",
    "ConstantSchedule",
    "CosineSchedule",
    "DataConfig",
    "EarlyStopping",
    "ExperimentConfig",
    "ExponentialSchedule",
    "METRIC_NAMES",
    "ModelConfig",
    "ReportConfig",
    "PlateauSchedule",
    "RMSprop",
    "SGD",
    "StepSchedule",
    "TrackingConfig",
    "TrainConfig",
]

#: Metric names a ``monitor`` key may take: the losses and metrics Keras logs.
METRIC_NAMES = ("loss", "val_loss", "accuracy", "val_accuracy", "mae", "val_mae", "mean_iou", "val_mean_iou")
Monitor = Literal["loss", "val_loss", "accuracy", "val_accuracy", "mae", "val_mae", "mean_iou", "val_mean_iou"]


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, values are frozen.

    What validates must be able to run: no infinite or NaN numbers (``learning_rate: .inf``),
    and no booleans where a number is meant (YAML's ``true`` is not a batch size).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        """``true``/``false`` only where the key takes a boolean.

        The boolean is replaced by text that the number field then refuses, so the error is
        reported at its key, with every other error of the section.
        """
        if isinstance(data, dict):
            flagged = {name: f"{str(value).lower()} (a boolean)" for name, value in data.items()
                       if isinstance(value, bool) and name in cls.model_fields
                       and _wants_number_not_bool(cls.model_fields[name].annotation)}
            if flagged:
                return {**data, **flagged}
        return data


def _wants_number_not_bool(annotation: Any) -> bool:
    """An int/float field (or an optional one) that takes no bool."""
    options = typing.get_args(annotation) if typing.get_origin(annotation) in (Union, types.UnionType) \
        else (annotation,)
    return bool(options) and bool not in options and any(o in (int, float) for o in options)


#: What a name may hold: it becomes a file name (``.cnnkeras/<study>.journal``) and an MLflow experiment.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]*")
NAME_LENGTH = 100


def check_name(name: str | None) -> str | None:
    """A study or experiment name is a name, not a path: letters, digits, ``.``, ``_``, ``-`` and spaces,
    starting with a letter or digit, at most 100 characters, and no ``..``."""
    if name is None:
        return name
    if len(name) > NAME_LENGTH:
        raise ValueError(f"a name has at most {NAME_LENGTH} characters (this one has {len(name)})")
    if not NAME_PATTERN.fullmatch(name) or ".." in name:
        bad = sorted({c for c in name if not re.fullmatch(r"[A-Za-z0-9._ -]", c)})
        why = (f"it holds {' '.join(repr(c) for c in bad)}" if bad else
               "it holds '..'" if ".." in name else "it must start with a letter or a digit")
        raise ValueError(f"{name!r} is not a name ({why}): use letters, digits, '.', '_', '-' and spaces; names "
                         "become file names, so paths are refused")
    return name


# --------------------------------------------------------------------------- data


class Augmentation(StrictModel):
    """Random augmentation applied during training only, by Keras preprocessing layers."""

    flip: Literal["none", "horizontal", "vertical", "horizontal_and_vertical"] = Field(
        "none", description="Random flips (keras.layers.RandomFlip). Digits should not be flipped."
    )
    shift: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="Largest random translation, as a fraction of height and width "
        "(keras.layers.RandomTranslation).",
    )
    rotation: float = Field(
        0.0, ge=0.0, le=1.0,
        description="Largest random rotation as a fraction of a full turn: 0.05 is +-18 degrees "
        "(keras.layers.RandomRotation).",
    )
    zoom: float = Field(
        0.0, ge=0.0, lt=1.0, description="Largest random zoom in or out, as a fraction (keras.layers.RandomZoom)."
    )
    crop: int = Field(
        0, ge=0, le=64,
        description="Random crop: pad this many pixels of zeros on each side, then crop back to the image's size "
        "at a random place (He et al. 2016's CIFAR recipe; cnnkeras' RandomPaddedCrop). 0 = off.",
    )
    brightness: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="Largest random brightness change, as a fraction of the pixel range [0, 1] "
        "(keras.layers.RandomBrightness). Needs data.normalization: scale. Images only, never masks.",
    )
    contrast: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="Largest random contrast change: each image's contrast scaled by a factor in [1 - c, 1 + c] "
        "(keras.layers.RandomContrast). Needs data.normalization: scale. Images only, never masks.",
    )

    @property
    def enabled(self) -> bool:
        return (self.flip != "none" or self.shift > 0 or self.rotation > 0 or self.zoom > 0 or self.crop > 0
                or self.colour)

    @property
    def colour(self) -> bool:
        """Whether a colour change (brightness, contrast) is asked for: images only, pixels in [0, 1]."""
        return self.brightness > 0 or self.contrast > 0


class Scenes(StrictModel):
    """Segmentation scenes of digits: each pixel labelled background (0) or its digit's class + 1.

    Deterministic for the experiment seed: the same config gives the same scenes.
    """

    count: int = Field(2000, gt=0, le=1_000_000, description="Training scenes (validation_split is taken from them); a fifth "
                       "as many test scenes are drawn besides, from the source's test digits when it has them.")
    size: int = Field(64, ge=16, le=4096, description="Scene side in pixels.")
    digits: tuple[Annotated[int, Field(ge=1, le=64)], Annotated[int, Field(ge=1, le=64)]] = Field(
        (1, 4), description="Fewest and most digits per scene [low, high].")
    digit_size: int | None = Field(
        None, gt=0, description="Side a digit is drawn at (default: 28 for MNIST, 16 for scikit-learn's digits).")

    @model_validator(mode="after")
    def _range(self) -> Scenes:
        """digits is [low, high] with low <= high, and a digit fits in the scene."""
        if self.digits[0] > self.digits[1]:
            raise ValueError(f"digits must be [low, high] with low <= high, got {list(self.digits)}")
        if self.digit_size is not None and self.digit_size > self.size:
            raise ValueError(f"digit_size {self.digit_size} is larger than the scene size {self.size}")
        return self


class DataConfig(StrictModel):
    """Where the images come from and how they are split, scaled and augmented."""

    source: Literal["digits", "npz", "mnist", "fashion_mnist", "cifar10", "image_folder", "digit_scenes"] = Field(
        "digits",
        description="digits: scikit-learn's embedded 8x8 digits (offline). npz: a file in the "
        "keras layout (x_train, y_train, x_test, y_test). mnist, fashion_mnist, cifar10: "
        "keras.datasets (downloads). image_folder: one subfolder per class, or images/ and masks/ "
        "(PNG class indices, matching names) for segmentation. digit_scenes: seeded segmentation "
        "scenes of digits placed at random (see data.scenes), from an MNIST npz at path or, without "
        "one, scikit-learn's digits (offline).",
    )
    path: str | None = Field(
        None,
        description="File (npz) or folder (image_folder). Relative paths are relative to the "
        "config file that sets them. Not used by the other sources.",
    )
    subset: int | None = Field(
        None, gt=0, description="Keep a stratified, seeded subset of this many training images."
    )
    test_subset: int | None = Field(
        None, gt=0, description="Keep a stratified, seeded subset of this many test images."
    )
    validation_split: float = Field(
        0.2, ge=0.0, lt=1.0,
        description="Fraction of the training images held out for validation (stratified); 0 trains on "
        "all of them (no validation metrics, no gap).",
    )
    test_split: float = Field(
        0.2, gt=0.0, lt=1.0,
        description="Fraction held out for testing, for sources that ship no test split (digits, image_folder).",
    )
    classes: list[int] | None = Field(
        None, min_length=2,
        description="Keep only these labels, renumbered 0..k-1 in this order (for example [3, 8] "
        "for a binary task).",
    )
    resize: tuple[Annotated[int, Field(gt=0, le=8192)], Annotated[int, Field(gt=0, le=8192)]] | None = Field(
        None, description="Resize images to [height, width] once, at load time: bilinear (image_folder: "
        "Pillow's, antialiased when shrinking, to 8-bit pixels; masks by nearest neighbour)."
    )
    color_mode: Literal["grayscale", "rgb"] = Field(
        "grayscale", description="image_folder only: how images are read."
    )
    normalization: Literal["scale", "standardize", "none"] = Field(
        "scale",
        description="scale: divide by the largest possible pixel value (255, or 16 for digits). "
        "standardize: per-channel mean and std of the training split. none: raw values.",
    )
    augmentation: Augmentation = Field(default_factory=Augmentation, description="Training-time augmentation.")
    label_noise: float = Field(
        0.0, ge=0.0, le=1.0,
        description="Fraction of the training labels replaced by a class drawn uniformly at random (seeded; the "
        "draw can give back the true class, as in Zhang et al. 2017): 1.0 gives random labels. Validation and "
        "test labels are never touched. Classification only.",
    )
    per_class: int | None = Field(
        None, gt=0,
        description="Keep at most this many training images of each class (seeded), chosen after the validation "
        "split, so that the validation set stays the same whatever the training set's size. Classification only.",
    )
    scenes: Scenes = Field(default_factory=lambda: Scenes(), description="digit_scenes only: the generated scenes.")
    storage: Literal["auto", "memory", "stream"] = Field(
        "auto",
        description="image_folder and npz: memory reads every split into float32 arrays before training; "
        "stream reads each batch when it is needed (data larger than memory); auto keeps in memory what "
        "memory_limit_gb allows, estimated from the shapes. The other sources are always in memory. "
        "The run's parameter data.storage_used says which was used (docs/data.md).",
    )
    memory_limit_gb: float = Field(
        2.0, gt=0.0,
        description="storage auto: the largest float32 size (all splits, after resize) kept in memory; "
        "larger data streams. A rule of the config alone, so a config stores the same way on any machine.",
    )
    cache: bool = Field(
        True,
        description="image_folder (and compressed npz, streamed): decode the files once into 8-bit arrays "
        "on disk, read in place by every run, trial and worker process; its key follows the files' "
        "names, sizes and modification times. false: decode into memory, or per batch when streamed.",
    )
    cache_dir: str | None = Field(
        None,
        description="Folder of the decoded cache (default: $CNNKERAS_CACHE_DIR, else ~/.cache/cnnkeras/data). "
        "Relative paths are relative to the config file. `cnnkeras cache list` shows it, "
        "`cnnkeras cache clear` empties it.",
    )
    workers: int | None = Field(
        None, ge=1,
        description="Threads that decode into the cache and read streamed batches ahead of training "
        "(default: the machine's cores, at most 4). Does not change the batches.",
    )

    @field_validator("path")
    @classmethod
    def _path_matches_source(cls, path: str | None, info: ValidationInfo) -> str | None:
        """npz and image_folder need a path; the other sources take none (digit_scenes: optional)."""
        source = info.data.get("source")
        if source in ("npz", "image_folder") and not path:
            raise ValueError(f"source '{source}' needs a path")
        if source in ("digits", "mnist", "fashion_mnist", "cifar10") and path:
            raise ValueError(
                f"source '{source}' takes no path; to read a local copy of a keras dataset use "
                "source: npz with this path"
            )
        return path

    @field_validator("augmentation")
    @classmethod
    def _colour_needs_unit_pixels(cls, augmentation: Augmentation, info: ValidationInfo) -> Augmentation:
        """Brightness and contrast clip to pixels in [0, 1]: they need normalization: scale (validated first)."""
        normalization = info.data.get("normalization")
        if augmentation.colour and normalization not in (None, "scale"):
            raise ValueError(f"brightness and contrast work on pixels in [0, 1]: they need normalization: scale "
                             f"(normalization is {normalization!r})")
        return augmentation

    @field_validator("storage")
    @classmethod
    def _storage_matches_source(cls, storage: str, info: ValidationInfo) -> str:
        """Only image_folder and npz sources can stream; the others load whole."""
        source = info.data.get("source")
        if storage == "stream" and source not in (None, "image_folder", "npz"):
            raise ValueError(f"source '{source}' loads whole into memory; storage: stream needs source "
                             "image_folder or npz")
        return storage

    @field_validator("classes")
    @classmethod
    def _classes_unique(cls, classes: list[int] | None) -> list[int] | None:
        """Selected classes must be distinct."""
        if classes is not None and len(set(classes)) != len(classes):
            raise ValueError(f"classes must be distinct, got {classes}")
        return classes


# -------------------------------------------------------------------------- model


class ModelConfig(StrictModel):
    """Which architecture to build, with the options it takes.

    Architectures come from the zoo registry (``cnnkeras zoo`` lists them);
    ``arch: sequential`` builds the ``layers`` list declaratively. Options left
    unset keep the architecture's own default; setting one the architecture does
    not take is an error.
    """

    arch: str = Field("lenet5", description="A registered architecture name (see `cnnkeras zoo`).")
    head: Literal["multiclass", "binary", "regression", "segmentation"] = Field(
        "multiclass",
        description="Output head: softmax over the classes, one sigmoid unit, or linear outputs; "
        "segmentation: a class per pixel (softmax over C, or a sigmoid for masks of 0 and 1), "
        "with pixel accuracy, mean IoU and each class's IoU. The loss and metrics follow.",
    )
    loss: Literal["cross_entropy", "dice", "cross_entropy+dice"] | None = Field(
        None, description="head segmentation only: per-pixel cross-entropy (the default), soft Dice, or their sum."
    )
    dropout: float | None = Field(
        None, ge=0.0, lt=1.0, description="Dropout rate before the classifier's dense layers."
    )
    batch_norm: bool | None = Field(None, description="Batch normalization after each convolution.")
    bn_momentum: float | None = Field(
        None, ge=0.0, lt=1.0,
        description="Momentum of every batch-norm layer's moving statistics (default: the architecture's own, "
        "Keras' 0.99 for most). In short runs 0.99 lags behind the weights: validation and the inference-mode "
        "training accuracy sit near chance while the training-mode accuracy is high; 0.9 keeps up. Models "
        "with batch norm only.",
    )
    width_multiplier: float | None = Field(
        None, gt=0.0, le=16.0,
        description="Scales the number of feature maps of every layer (fewer feature maps: < 1; at most 16)."
    )
    small_input: bool | None = Field(
        None,
        description="Use a small-input stem (3x3, stride 1, no early pooling) for 28x28 and 32x32 "
        "images where the original stem would shrink them to nothing.",
    )
    activation: str | None = Field(
        None, description="Hidden activation: a Keras name (relu, tanh, elu, ...) or prelu (He et al. 2015's "
        "parametric ReLU, a learned slope per channel; also as a declarative layer's activation).")
    depth: int | None = Field(None, ge=1, le=6, description="U-Net levels, SegNet encoder stages.")
    base_width: int | None = Field(None, ge=1, le=4096, description="U-Net, SegNet: feature maps of the first level.")
    upsampling: Literal["transpose", "nearest", "bilinear", "bicubic"] | None = Field(
        None, description="U-Net's way up: a transposed 2x2 conv, or interpolation then a 1x1 conv.")
    fc_units: int | None = Field(None, ge=1, le=65536, description="VGG, FCN: units (feature maps) of fc6 and fc7.")
    fpn_channels: int | None = Field(None, ge=1, le=4096, description="FPN: feature maps of every pyramid level.")
    head_channels: int | None = Field(None, ge=1, le=4096, description="FPN: feature maps of the semantic head.")
    input_shape: tuple[int, int, int] | None = Field(
        None, description="Input [height, width, channels]; by default the data's."
    )
    layers: list[dict[str, Any]] | None = Field(
        None,
        description="arch: sequential only. A list of {type: NAME, ...layer arguments} or "
        "{repeat: N, layers: [...]}; names are registered layers (see `cnnkeras zoo --layers`).",
    )


# ---------------------------------------------------------------------- optimizers


class _Optimizer(StrictModel):
    clipnorm: float | None = Field(None, gt=0.0, description="Clip each gradient to this norm.")


class SGD(_Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum."""

    name: Literal["sgd"] = "sgd"
    learning_rate: float = Field(0.01, gt=0.0, description="Step size.")
    momentum: float = Field(0.0, ge=0.0, lt=1.0, description="Momentum; 0 is plain SGD.")
    nesterov: bool = Field(False, description="Nesterov momentum.")


class Adam(_Optimizer):
    """Adam (Kingma and Ba, 2015)."""

    name: Literal["adam"] = "adam"
    learning_rate: float = Field(1e-3, gt=0.0, description="Step size.")
    beta_1: float = Field(0.9, ge=0.0, lt=1.0, description="Decay of the first-moment estimate.")
    beta_2: float = Field(0.999, ge=0.0, lt=1.0, description="Decay of the second-moment estimate.")
    epsilon: float = Field(1e-7, gt=0.0, description="Numerical stability constant.")


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019)."""

    name: Literal["adamw"] = "adamw"  # type: ignore[assignment]
    weight_decay: float = Field(0.004, ge=0.0, description="Decoupled weight decay.")


class RMSprop(_Optimizer):
    """RMSprop (Hinton's lecture notes)."""

    name: Literal["rmsprop"] = "rmsprop"
    learning_rate: float = Field(1e-3, gt=0.0, description="Step size.")
    rho: float = Field(0.9, ge=0.0, lt=1.0, description="Decay of the squared-gradient average.")
    momentum: float = Field(0.0, ge=0.0, lt=1.0, description="Momentum.")


def _name_or(default: str):
    """A discriminator that reads ``name`` and falls back to ``default`` when it is absent."""

    def get(value: Any) -> str:
        if isinstance(value, dict):
            return value.get("name", default)
        return getattr(value, "name", default)

    get.default_tag = default  # type: ignore[attr-defined]  # read by config.errors
    return get


Optimizer = Annotated[
    Union[
        Annotated[SGD, Tag("sgd")],
        Annotated[Adam, Tag("adam")],
        Annotated[AdamW, Tag("adamw")],
        Annotated[RMSprop, Tag("rmsprop")],
    ],
    Discriminator(_name_or("adam")),
]


# ----------------------------------------------------------------------- schedules


class ConstantSchedule(StrictModel):
    """Keep the optimizer's learning rate."""

    name: Literal["constant"] = "constant"


class StepSchedule(StrictModel):
    """Multiply the learning rate by ``gamma`` every ``step_epochs`` epochs."""

    name: Literal["step"] = "step"
    step_epochs: int = Field(10, gt=0, description="Epochs between two drops.")
    gamma: float = Field(0.1, gt=0.0, le=1.0, description="Factor applied at each drop.")


class ExponentialSchedule(StrictModel):
    """Multiply the learning rate by ``decay_rate`` every epoch (smoothly, per step)."""

    name: Literal["exponential"] = "exponential"
    decay_rate: float = Field(0.96, gt=0.0, le=1.0, description="Factor per epoch.")


class CosineSchedule(StrictModel):
    """Cosine decay over the whole run, after an optional linear warm-up."""

    name: Literal["cosine"] = "cosine"
    warmup_epochs: int = Field(0, ge=0, description="Epochs of linear warm-up from 0.")
    alpha: float = Field(0.0, ge=0.0, le=1.0, description="Final learning rate as a fraction of the initial one.")


class OneCycleSchedule(StrictModel):
    """One-cycle policy (Smith and Topin, "Super-convergence", 2019; PyTorch's ``OneCycleLR``): the learning
    rate rises linearly from ``lr / div_factor`` to the optimizer's ``learning_rate`` over the first
    ``pct_start`` of all steps, then falls along a cosine to ``lr / (div_factor * final_div_factor)``.
    A high peak for a few epochs: the short, fixed-length recipes (``experiments/mnist-99.yaml``)."""

    name: Literal["one_cycle"] = "one_cycle"
    pct_start: float = Field(0.25, gt=0.0, lt=1.0, description="Fraction of all steps spent rising.")
    div_factor: float = Field(25.0, ge=1.0, le=1e6, description="Peak / starting learning rate.")
    final_div_factor: float = Field(1e4, ge=1.0, le=1e9, description="Starting / final learning rate.")


class PlateauSchedule(StrictModel):
    """Divide the learning rate when a monitored metric stops improving."""

    name: Literal["reduce_on_plateau"] = "reduce_on_plateau"
    monitor: Monitor = Field("val_loss", description="Metric watched.")
    factor: float = Field(0.1, gt=0.0, lt=1.0, description="Factor applied on a plateau.")
    patience: int = Field(3, ge=0, description="Epochs without improvement before a reduction.")
    min_lr: float = Field(0.0, ge=0.0, description="Lower bound on the learning rate.")


Schedule = Annotated[
    Union[
        Annotated[ConstantSchedule, Tag("constant")],
        Annotated[StepSchedule, Tag("step")],
        Annotated[ExponentialSchedule, Tag("exponential")],
        Annotated[CosineSchedule, Tag("cosine")],
        Annotated[OneCycleSchedule, Tag("one_cycle")],
        Annotated[PlateauSchedule, Tag("reduce_on_plateau")],
    ],
    Discriminator(_name_or("constant")),
]


# ------------------------------------------------------------------------ training


class EarlyStopping(StrictModel):
    """Stop when the monitored metric has not improved for ``patience`` epochs."""

    monitor: Monitor = Field("val_loss", description="Metric watched.")
    patience: int = Field(3, ge=0, description="Epochs without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0.0, description="Smallest change that counts as improvement.")
    restore_best_weights: bool = Field(True, description="Roll back to the best epoch's weights.")


class Checkpoint(StrictModel):
    """Save the best model seen so far during training (logged as an artifact)."""

    monitor: Monitor = Field("val_loss", description="Metric that decides 'best'.")


class TrainConfig(StrictModel):
    """How the model is fitted: optimizer, schedule, regularization, stopping."""

    epochs: int = Field(10, gt=0, le=100_000, description="Most epochs to train.")
    batch_size: int = Field(32, gt=0, description="Images per gradient step.")
    optimizer: Optimizer = Field(default_factory=Adam, description="Optimizer (by name).")
    schedule: Schedule = Field(
        default_factory=ConstantSchedule, description="Learning-rate schedule (by name)."
    )
    l1: float = Field(0.0, ge=0.0, description="L1 penalty on every conv and dense kernel.")
    l2: float = Field(0.0, ge=0.0, description="L2 penalty on every conv and dense kernel.")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="Label smoothing (multiclass head only).")
    early_stopping: EarlyStopping | None = Field(None, description="Early stopping; off when unset.")
    checkpoint: Checkpoint | None = Field(None, description="Keep the best model during training; off when unset.")
    monitor: Monitor = Field("val_loss", description="Metric that defines the best epoch in reports.")
    gap_sample: int | None = Field(
        None, ge=0,
        description="Training images evaluated in inference mode at every epoch end, a fixed seeded sample: "
        "logged as train_loss, train_accuracy, ... and the only training side of every gap (Keras' loss and "
        "accuracy are running training-mode averages, logged for what they are). Default: as many as the "
        "validation split, at most 10,000. 0 switches it off (no train_* metrics, no gaps).",
    )
    shuffle: bool = Field(True, description="Shuffle the training set every epoch.")
    steps_per_execution: int = Field(
        1, ge=1, le=10_000,
        description="Training steps per compiled call (Keras' steps_per_execution): fewer round trips "
        "from Python for small models; per-batch callbacks and the progress bar then update once per call.",
    )
    mixed_precision: bool = Field(
        False, description="Compute in float16 with float32 weights (keras mixed_float16); for GPUs."
    )


# ------------------------------------------------------------------------ tracking


class TrackingConfig(StrictModel):
    """Where runs are recorded in MLflow."""

    enabled: bool = Field(True, description="Track the run in MLflow.")
    uri: str | None = Field(
        None,
        description="MLflow tracking URI. Default: sqlite:///mlflow.db in the working directory "
        "(or $MLFLOW_TRACKING_URI when set).",
    )
    experiment: str | None = Field(None, description="MLflow experiment name; default: the config's name.")

    @field_validator("experiment")
    @classmethod
    def _experiment_is_a_name(cls, experiment: str | None) -> str | None:
        """The MLflow experiment's name is a name (see :func:`check_name`)."""
        return check_name(experiment)
    run_name: str | None = Field(None, description="MLflow run name; default: MLflow's own.")
    tags: dict[str, str] = Field(default_factory=dict, description="Extra tags on the run.")
    log_model: bool = Field(True, description="Log the trained model as a .keras artifact.")
    log_plots: bool = Field(True, description="Log the learning-curve plot (self-contained HTML, about 4 MB).")
    log_predictions: bool = Field(
        True,
        description="Log pictures of what the model predicts at its best epoch, as MLflow images: a confusion matrix "
        "and the most confident mistakes (classification), or images with their true and predicted masks "
        "(segmentation), on a fixed seeded sample of the validation split (a few small PNGs).",
    )
    wait_s: float = Field(
        300.0, gt=0, le=86400,
        description="Longest wait for the tracking store to take a run's queued writes (a server restarting is "
        "waited out); then the run stops with one line that says so.",
    )


# -------------------------------------------------------------------------- search

#: Summary metrics a sweep can optimize (see runner.summarize), and the per-epoch
#: metric each one is pruned on.
OBJECTIVE_METRICS = {
    "best_val_accuracy": "val_accuracy", "final_val_accuracy": "val_accuracy",
    "best_val_mean_iou": "val_mean_iou", "final_val_mean_iou": "val_mean_iou",
    "final_gap_mean_iou": "gap_mean_iou", "test_mean_iou": "val_mean_iou",
    "best_val_loss": "val_loss", "final_val_loss": "val_loss",
    "final_gap_accuracy": "gap_accuracy", "best_gap_accuracy": "gap_accuracy",
    "final_gap_loss": "gap_loss", "best_gap_loss": "gap_loss",
    "best_val_mae": "val_mae", "final_val_mae": "val_mae",
    "test_accuracy": "val_accuracy", "test_loss": "val_loss",
}
ObjectiveMetric = Literal[
    "best_val_accuracy", "final_val_accuracy", "best_val_loss", "final_val_loss", "final_gap_accuracy",
    "best_gap_accuracy", "final_gap_loss", "best_gap_loss", "best_val_mae", "final_val_mae", "test_accuracy",
    "test_loss", "best_val_mean_iou", "final_val_mean_iou", "final_gap_mean_iou", "test_mean_iou",
]


class FloatParam(StrictModel):
    """A float between ``low`` and ``high`` (log-uniform with ``log: true``)."""

    type: Literal["float"] = "float"
    low: float = Field(..., description="Smallest value.")
    high: float = Field(..., description="Largest value.")
    log: bool = Field(False, description="Sample on a log scale (both bounds must be > 0).")
    step: float | None = Field(None, gt=0.0, description="Discretization step (not with log).")

    @field_validator("high")
    @classmethod
    def _range_not_empty(cls, high: float, info: ValidationInfo) -> float:
        """high must be above low."""
        low = info.data.get("low")
        if low is not None and high <= low:
            raise ValueError(f"empty range: high ({high}) must be greater than low ({low})")
        return high

    @field_validator("log")
    @classmethod
    def _log_needs_positive(cls, log: bool, info: ValidationInfo) -> bool:
        """A log range cannot touch zero or go below it."""
        low = info.data.get("low")
        if log and low is not None and low <= 0:
            raise ValueError(f"a log range needs low > 0 (low is {low})")
        return log

    @field_validator("step")
    @classmethod
    def _step_not_with_log(cls, step: float | None, info: ValidationInfo) -> float | None:
        """Optuna samples a float either on a log scale or on a grid of steps, not both."""
        if step is not None and info.data.get("log"):
            raise ValueError("a step cannot be combined with log: true (Optuna refuses it); drop one")
        return step


class IntParam(StrictModel):
    """An integer between ``low`` and ``high`` inclusive, every ``step``."""

    type: Literal["int"] = "int"
    low: int = Field(..., description="Smallest value.")
    high: int = Field(..., description="Largest value (inclusive).")
    step: int = Field(1, gt=0, description="Step between values.")
    log: bool = Field(False, description="Sample on a log scale (low must be >= 1).")

    @field_validator("high")
    @classmethod
    def _range_not_empty(cls, high: int, info: ValidationInfo) -> int:
        """high must be above low."""
        low = info.data.get("low")
        if low is not None and high <= low:
            raise ValueError(f"empty range: high ({high}) must be greater than low ({low})")
        return high

    @field_validator("log")
    @classmethod
    def _log_needs_positive(cls, log: bool, info: ValidationInfo) -> bool:
        """A log range cannot touch zero."""
        low = info.data.get("low")
        if log and low is not None and low < 1:
            raise ValueError(f"a log range needs low >= 1 (low is {low})")
        return log


class CategoricalParam(StrictModel):
    """One of a list of values (numbers, strings, booleans)."""

    type: Literal["categorical"] = "categorical"
    choices: list[Union[bool, int, float, str, None]] = Field(..., min_length=1, description="The values to try.")


SearchParam = Annotated[Union[FloatParam, IntParam, CategoricalParam], Field(discriminator="type")]


class Objective(StrictModel):
    """A summary metric to optimize, and in which direction."""

    metric: ObjectiveMetric = Field("best_val_accuracy", description="A run summary metric.")
    direction: Literal["maximize", "minimize"] = Field("maximize", description="Which way is better.")


class SamplerConfig(StrictModel):
    """Optuna's sampler; seeded by the experiment seed unless ``seed`` is set."""

    name: Literal["tpe", "random", "grid", "cmaes", "nsga2"] = Field("tpe", description="Sampler.")
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="Sampler seed (default: the experiment seed).")


class PrunerConfig(StrictModel):
    """Optuna's pruner, judging each trial on a validation metric every epoch."""

    name: Literal["median", "successive_halving", "hyperband", "none"] = Field("median", description="Pruner.")
    warmup_epochs: int = Field(1, ge=0, description="Epochs a trial always runs before it can be pruned.")
    startup_trials: int = Field(3, ge=0, description="Trials that are never pruned (median pruner).")


class SearchConfig(StrictModel):
    """A hyperparameter sweep: parameters by key path, objectives, sampler, pruner, budget, storage."""

    parameters: dict[str, SearchParam] = Field(
        ..., min_length=1,
        description="Key path -> distribution, e.g. train.optimizer.learning_rate: {type: float, low: 1e-4, "
        "high: 1e-1, log: true}.",
    )
    objectives: list[Objective] = Field(
        default_factory=lambda: [Objective()], min_length=1,
        description="One objective, or several (e.g. best_val_accuracy up and final_gap_accuracy down) for "
        "a Pareto front.",
    )
    sampler: SamplerConfig = Field(default_factory=SamplerConfig, description="Sampler.")
    pruner: PrunerConfig = Field(default_factory=PrunerConfig, description="Pruner (single objective only).")
    n_trials: int | None = Field(20, gt=0, description="Total trials of the study, over every sweep process (resuming counts earlier ones; "
                                   "a dead process's trial is replaced by its retry, not added to).")
    timeout_s: float | None = Field(None, gt=0, description="Stop starting trials after this many seconds.")
    storage: str | None = Field(
        None,
        description="Optuna storage URL (sqlite:///..., postgresql+psycopg://user:password@host/db) or a .journal "
        "file path. Default: $CNNKERAS_STORAGE when set, else a journal file in .cnnkeras/ beside the experiment "
        "file. A password in the URL is masked everywhere it is shown or logged.",
    )
    storage_wait_s: float = Field(
        300.0, gt=0, le=86400,
        description="How long a sweep waits for an unreachable database storage (a restart, an outage) before it "
        "stops with one line; the running trial's result is kept meanwhile.",
    )
    heartbeat_s: int = Field(
        10, gt=0, le=3600,
        description="Database storages: seconds between a running trial's heartbeats.",
    )
    stale_after_s: int = Field(
        60, gt=0, le=86400,
        description="Database storages: a RUNNING trial without a heartbeat for this long is taken as dead (its "
        "process was killed): it is failed with the reason, its MLflow run closed FAILED, its parameters queued "
        "again.",
    )
    study_name: str | None = Field(
        None, description="Study name; default: the experiment's name. A name, not a path: letters, digits, "
        "'.', '_', '-' and spaces, at most 100 characters.")
    join: Literal["same", "any"] = Field(
        "same",
        description="same: a sweep joins an existing study only when it runs the same experiment (data, model, "
        "training, search space, objectives, sampler, pruner; see docs/served-stack.md), else it is refused in one "
        "line naming the keys that differ. any: join anyway (`--join-anyway`), saying so; the differences are "
        "recorded on this process's trials.",
    )
    isolation: Literal["none", "process"] = Field(
        "none", description="process: each trial in its own worker process (a crash or OOM cannot stop the sweep)."
    )
    jobs: int = Field(1, gt=0, description="Trials at once (each in its own process); --jobs overrides.")
    log_models: bool = Field(False, description="Log each trial's model and plot (the best is retrained by `best`).")
    cohort: int = Field(
        1, ge=1, le=256,
        description="Trials trained together as one compiled program (a cohort): Optuna is asked for this many "
        "at a time, and those that share data, batch size, epochs and seed train side by side, each still its own "
        "trial and MLflow run. 1: one trial at a time.",
    )
    cohort_probe: bool = Field(
        True,
        description="Choose the cohort size by timing whole trials as they run (training, evaluation, tracking "
        "and saving): sizes 1, 2, 4, ... up to `cohort` while the time per trial falls by more than 10%, then the "
        "fastest (1 when cohorts do not pay on this machine; the choice and its figures in one line). false: "
        "always `cohort`.",
    )
    max_retries: int = Field(
        2, ge=0, le=100,
        description="How often a trial whose process died (killed, out of memory, a lost machine) is queued again "
        "with its parameters; after that it stays FAIL, saying so. A stop signal (Ctrl-C, SIGTERM) uses no retry.",
    )
    max_consecutive_failures: int | None = Field(
        3, ge=1,
        description="Stop the sweep, in one line with the last reason, after this many trials in a row failed (a "
        "broken config or data fails every trial); pruned and complete trials reset the count. null: never stop.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_default_pruner_for_several_objectives(cls, data: Any) -> Any:
        """Several objectives and no pruner asked for: no pruning (Optuna cannot prune them)."""
        if isinstance(data, dict) and isinstance(data.get("objectives"), list) and len(data["objectives"]) > 1:
            data = {"pruner": {"name": "none"}, **data}
        return data

    @field_validator("study_name")
    @classmethod
    def _study_name_is_a_name(cls, study_name: str | None) -> str | None:
        """The study's name becomes its journal's file name: a name, not a path (see :func:`check_name`)."""
        return check_name(study_name)

    @field_validator("stale_after_s")
    @classmethod
    def _stale_after_two_heartbeats(cls, stale_after_s: int, info: ValidationInfo) -> int:
        """A live trial must be able to miss a heartbeat without being taken as dead."""
        heartbeat = info.data.get("heartbeat_s")
        if heartbeat is not None and stale_after_s < 2 * heartbeat:
            raise ValueError(f"must be at least twice heartbeat_s ({heartbeat}), or live trials are taken as dead")
        return stale_after_s

    @field_validator("pruner")
    @classmethod
    def _pruning_needs_one_objective(cls, pruner: PrunerConfig, info: ValidationInfo) -> PrunerConfig:
        """Optuna prunes single-objective studies only."""
        objectives = info.data.get("objectives") or []
        if len(objectives) > 1 and pruner.name != "none":
            raise ValueError("pruning needs a single objective; set name: none for a multi-objective sweep")
        return pruner


# ------------------------------------------------------------------------ report

#: Columns of the runs frame a claim can be about (see cnnkeras.analysis.frames).
ClaimMeasure = Literal[
    "final_gap_accuracy", "final_gap_loss", "final_accuracy", "final_val_accuracy", "best_val_accuracy",
    "final_loss", "final_val_loss", "final_data_loss", "final_val_data_loss", "test_accuracy", "test_loss",
    "epochs_after_best", "best_epoch", "test_minus_val_accuracy", "final_gap_mean_iou", "final_mean_iou",
    "final_val_mean_iou", "best_val_mean_iou", "test_mean_iou", "final_train_accuracy", "final_train_loss",
    "final_train_data_loss", "final_train_mean_iou", "final_gap_mae", "final_train_mae", "final_val_mae",
    "epochs_to_fit", "test_minus_val_loss",
]

#: What a claim expects: a trend as the parameter grows, or a level at one value of it.
TRENDS = ("increasing", "decreasing")
LEVELS = ("above", "below", "near")


class Claim(StrictModel):
    """A claim the report checks against the runs: how a measure moves as a parameter grows, or where it lies.

    Three kinds:

    - a **trend**: ``{claim: "Small learning rates overfit more", parameter: train.optimizer.learning_rate,
      measure: final_gap_accuracy, expect: decreasing}``;
    - a **level** at one value of the parameter: ``{claim: "Random labels leave the test set at chance",
      parameter: data.label_noise, at: 1.0, measure: test_accuracy, expect: near, value: 0.1, tolerance: 0.05}``
      (``above`` and ``below`` take a ``value`` too);
    - the trend of an **optimum**: ``{claim: "The best learning rate grows with the batch", parameter:
      train.batch_size, optimum_of: train.optimizer.learning_rate, measure: best_val_accuracy, expect:
      increasing}``: for each value of ``parameter`` (and each seed), the value of ``optimum_of`` where the
      measure is best; then its trend (log2 against log2 on log scales: the slope is the exponent).
    """

    claim: str = Field(..., min_length=1, description="The claim, in words.")
    parameter: str = Field(..., description="A swept key path (one of search.parameters).")
    measure: ClaimMeasure = Field("final_gap_accuracy", description="The runs-frame column the claim is about.")
    expect: Literal["increasing", "decreasing", "above", "below", "near"] = Field(
        ..., description="increasing or decreasing: how the measure (or the optimum) should move as the parameter "
        "grows (or goes through `levels`). above, below or near: where the measure should lie at the parameter "
        "value `at`, relative to `value`."
    )
    levels: list[Union[bool, int, float, str]] | None = Field(
        None, min_length=2,
        description="For a categorical parameter: its values in the claim's order (e.g. [false, true]).",
    )
    range: tuple[float, float] | None = Field(
        None, description="Only runs whose parameter lies in [low, high] (e.g. the learning rates that train)."
    )
    at: Union[bool, int, float, str, None] = Field(
        None, description="Level claims: the parameter value whose runs are judged.")
    value: float | None = Field(None, description="Level claims: the level the measure should be above, below or "
                                "near.")
    tolerance: float | None = Field(
        None, gt=0, description="near: how far from `value` still counts as near (the whole confidence interval "
        "must lie within value ± tolerance).")
    optimum_of: str | None = Field(
        None, description="Optimum claims: a second swept key path; its best value (by the measure) per value of "
        "`parameter` is what trends.")

    @field_validator("range")
    @classmethod
    def _range_not_empty(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        """low must be below high."""
        if value is not None and value[0] >= value[1]:
            raise ValueError(f"empty range: low ({value[0]}) must be below high ({value[1]})")
        return value

    @model_validator(mode="after")
    def _kind_is_whole(self) -> Claim:
        """A level claim has `at` and `value` (and near a tolerance); a trend has neither; an optimum is a trend."""
        if self.expect in LEVELS:
            missing = [k for k in ("at", "value") if getattr(self, k) is None]
            if self.expect == "near" and self.tolerance is None:
                missing.append("tolerance")
            if missing:
                raise ValueError(f"expect: {self.expect} needs {' and '.join(missing)}")
            if self.optimum_of is not None:
                raise ValueError("optimum_of is for trends (expect: increasing or decreasing)")
        else:
            extra = [k for k in ("at", "value", "tolerance") if getattr(self, k) is not None]
            if extra:
                raise ValueError(f"{', '.join(extra)} are for level claims (expect: above, below or near), not "
                                 f"expect: {self.expect}")
        if self.optimum_of is not None and self.optimum_of == self.parameter:
            raise ValueError("optimum_of must be another swept parameter than `parameter`")
        return self

    @property
    def kind(self) -> str:
        """"trend", "level" or "optimum"."""
        if self.expect in LEVELS:
            return "level"
        return "optimum" if self.optimum_of is not None else "trend"


class EpochBudget(StrictModel):
    """Compare every run at this epoch."""

    epoch: int = Field(..., gt=0, description="The epoch (1-based) at which every run is compared.")


class ExamplesBudget(StrictModel):
    """Compare every run after it has seen this many training examples."""

    examples: int = Field(..., gt=0, description="Training examples seen (epochs x training images): each run is "
                          "compared at the first epoch that reaches it.")


class ReportConfig(StrictModel):
    """What `cnnkeras report` shows first, and the claims it puts to the test."""

    color_by: str | None = Field(None, description="Swept key path that colours the learning curves first.")
    claims: list[Claim] = Field(default_factory=list, description="Claims to test on the runs.")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Confidence of intervals and verdicts.")
    replicate_key: str = Field("seed", description="The key path whose values are repeats, not a treatment.")
    budget: Union[Literal["auto", "final"], EpochBudget, ExamplesBudget] = Field(
        "auto",
        description="When runs are compared (claims, plots, tables): final (each run's last epoch; pruned runs "
        "left out), {epoch: N} (every run that reached epoch N, pruned and early-stopped ones included), "
        "{examples: N} (at the first epoch with N training examples seen), or auto: the last epoch when every "
        "run trained the same number of epochs, else the shortest finished run's last epoch. Test measures "
        "are of each run's final model: only runs whose last epoch is the budget's count for them.",
    )


# ------------------------------------------------------------------------ the whole


class ExperimentConfig(StrictModel):
    """One experiment: data, model, training and tracking (and, for sweeps, a search space)."""

    name: str = Field(..., min_length=1, description="Experiment name; also the default MLflow experiment and "
                      "study. A name, not a path: letters, digits, '.', '_', '-' and spaces, at most 100 characters.")
    description: str = Field("", description="Free text, logged as the run's description.")
    seed: int = Field(42, ge=0, le=2**32 - 1,
                      description="Seed for Python, NumPy and Keras, and for the data splits (0 to 2**32 - 1, "
                      "NumPy's range).")
    deterministic: bool = Field(
        False, description="Also ask the backend for deterministic ops (slower; needed for tf.data randomness)."
    )
    backend: Literal["tensorflow", "jax", "torch"] | None = Field(
        None, description="Keras backend, chosen before Keras is imported (`--backend` on the command line). "
        "Default: $KERAS_BACKEND, else tensorflow.",
    )
    data: DataConfig = Field(default_factory=DataConfig, description="Data source and preprocessing.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Architecture.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Training.")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="MLflow tracking.")
    search: SearchConfig | None = Field(None, description="A hyperparameter sweep (`cnnkeras sweep`).")
    report: ReportConfig = Field(default_factory=ReportConfig, description="The sweep's report (`cnnkeras report`).")

    # Where each key came from (config.loader.ConfigSource); not a field, so it is
    # neither validated, dumped nor compared.
    _source: Any = PrivateAttr(default=None)

    def locate(self, path: tuple[Any, ...]) -> Any:
        """The file:line that set ``path`` (or its closest parent), when known."""
        return self._source.locate(path) if self._source is not None else None

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain JSON-able data (every default filled in)."""
        return self.model_dump(mode="json")

    @model_validator(mode="before")
    @classmethod
    def _no_default_pruner_for_claims(cls, data: Any) -> Any:
        """A sweep with claims and no pruner asked for prunes nothing: a pruned trial stops before the budget
        its claims compare at, and a verdict needs every run (docs/measures.md, "Comparisons at an equal
        budget"). An explicit ``search.pruner`` is kept; the report then compares at a common epoch."""
        if not isinstance(data, dict):
            return data
        report, search = data.get("report"), data.get("search")
        if (isinstance(report, dict) and report.get("claims") and isinstance(search, dict)
                and "pruner" not in search):
            data = {**data, "search": {**search, "pruner": {"name": "none"}}}
        return data

    @field_validator("name")
    @classmethod
    def _name_is_a_name(cls, name: str) -> str:
        """The experiment's name becomes a study's journal file name and an MLflow experiment: a name, not a path."""
        return check_name(name)  # type: ignore[return-value]

    @field_validator("train")
    @classmethod
    def _validation_monitors_need_validation_data(cls, train: TrainConfig, info: ValidationInfo) -> TrainConfig:
        """Early stopping, a plateau schedule or a checkpoint on a ``val_`` metric needs validation data
        (with ``validation_split: 0`` Keras would silently never stop, never reduce, never save)."""
        data = info.data.get("data")
        if data is None or data.validation_split > 0:
            return train
        watched = {"early_stopping": train.early_stopping, "checkpoint": train.checkpoint,
                   "schedule": train.schedule if train.schedule.name == "reduce_on_plateau" else None}
        for key, section in watched.items():
            if section is not None and section.monitor.startswith("val_"):
                raise ValueError(f"{key}.monitor {section.monitor} needs validation data, and data.validation_split "
                                 f"is 0: monitor {section.monitor[4:]}, or hold out validation data")
        return train

    @field_validator("model")
    @classmethod
    def _segmentation_needs_masks(cls, model: ModelConfig, info: ValidationInfo) -> ModelConfig:
        """A segmentation head needs a segmentation source, and a loss only goes with it."""
        data = info.data.get("data")
        if model.loss is not None and model.head != "segmentation":
            raise ValueError(f"loss is for head segmentation (head is {model.head!r})")
        if data is None:
            return model
        if data.source == "digit_scenes" and model.head != "segmentation":
            raise ValueError(f"data.source digit_scenes gives masks: set model.head: segmentation (head is {model.head!r})")
        if model.head == "segmentation" and data.source not in ("digit_scenes", "image_folder", "npz"):
            raise ValueError(f"head segmentation needs masks: data.source digit_scenes, image_folder (images/ and "
                             f"masks/) or an npz whose y arrays are masks (source is {data.source!r})")
        return model

    @field_validator("model")
    @classmethod
    def _label_probes_need_classes(cls, model: ModelConfig, info: ValidationInfo) -> ModelConfig:
        """Label noise and a per-class subset need one class per image (multiclass or binary heads)."""
        data = info.data.get("data")
        if data is not None and model.head in ("segmentation", "regression"):
            for key, on in (("label_noise", data.label_noise > 0), ("per_class", data.per_class is not None)):
                if on:
                    raise ValueError(f"data.{key} needs a class per image: head multiclass or binary (head is "
                                     f"{model.head!r})")
        return model

    @field_validator("train")
    @classmethod
    def _label_smoothing_needs_multiclass(cls, train: TrainConfig, info: ValidationInfo) -> TrainConfig:
        """Label smoothing only makes sense with the softmax (multiclass) head."""
        model = info.data.get("model")
        if model is not None and model.head != "multiclass" and train.label_smoothing > 0:
            raise ValueError(f"label_smoothing needs model.head multiclass (head is {model.head!r})")
        return train
