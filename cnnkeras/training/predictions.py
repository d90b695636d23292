"""Pictures of what a model predicts, at its best epoch: for people, not for metrics.

A run logs, beside its numbers:

- classification: a **confusion matrix** (rows: true class, columns: predicted; each cell
  counts images and is shaded by its share of the row) and a grid of the **most confident
  mistakes** (the misclassified images whose wrong class got the highest probability, each
  captioned ``true -> predicted (probability)``);
- segmentation: for a fixed set of images, **image | true mask | predicted mask** side by
  side (classes in one palette, background black), where checkerboards of transposed
  convolutions or blurred borders can be seen.

They are computed on a fixed, seeded sample of the validation split (the test split when a
run has none, as ``cnnkeras best``): at most :data:`CLASSIFICATION_SAMPLE` images for
classification, :data:`SEGMENTATION_ROWS` for segmentation, the same images for every run of
a seed, so runs compare picture to picture. :class:`BestEpochPredictions` predicts that
sample at the end of each epoch that is the run's best so far (by its monitor, the rule of
:func:`cnnkeras.measures.best_epoch_of`), so the pictures show the best epoch's model, the
one the summary's ``best_*`` values describe, without keeping a copy of its weights; a
prediction of the sample costs milliseconds (benchmarks/predictions.py measures it).
:func:`pictures` draws them as RGB arrays (H, W, 3) uint8 with Pillow; the tracker logs
them as MLflow images. Nothing here knows MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..measures import best_epoch_of, gap_metrics

__all__ = ["CLASSIFICATION_SAMPLE", "SEGMENTATION_ROWS", "BestEpochPredictions", "PictureSample", "confusion_counts",
           "confusion_picture", "mask_picture", "mistakes_picture", "pictures", "picture_sample", "worst_mistakes"]

#: Validation images a classification run's pictures are computed on (a seeded sample when there are more).
CLASSIFICATION_SAMPLE = 2000
#: Images shown with their true and predicted masks (segmentation).
SEGMENTATION_ROWS = 4
#: Misclassified images shown (the most confident mistakes).
MISTAKES = 16
#: Classes up to which a confusion matrix is drawn (beyond, its cells would be unreadable).
MAX_MATRIX_CLASSES = 30

# Background black, then 20 distinct colours (class 1 first): masks of up to 21 classes.
PALETTE = np.array([
    (0, 0, 0), (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120), (152, 223, 138),
    (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (219, 219, 141), (158, 218, 229),
    (127, 127, 127), (255, 255, 255)], dtype=np.uint8)


@dataclass
class PictureSample:
    """The fixed images a run's pictures are computed on."""

    x: np.ndarray
    y: np.ndarray
    split: str  # "validation" or "test"
    of: int  # images in that split

    @property
    def label(self) -> str:
        shown = f"{len(self.x):,} of {self.of:,}" if len(self.x) < self.of else f"all {self.of:,}"
        return f"{shown} {self.split} images"


def picture_sample(data: Any, *, segmentation: bool, seed: int) -> PictureSample | None:
    """The run's fixed sample: seeded, from the validation split (else the test split); None without either."""
    for split, x, y in (("validation", data.x_val, data.y_val), ("test", data.x_test, data.y_test)):
        if len(x):
            size = SEGMENTATION_ROWS if segmentation else CLASSIFICATION_SAMPLE
            chosen = np.sort(np.random.default_rng(seed).choice(len(x), size=min(size, len(x)), replace=False))
            return PictureSample(x[chosen], y[chosen], split, len(x))
    return None


class BestEpochPredictions(keras.callbacks.Callback):
    """Predict the sample at the end of every epoch that is the best so far by ``monitor``.

    :meth:`best_until` gives the best epoch of the first ``n`` epochs with its predictions (a
    pruned cohort member is cut back to the epoch it was pruned at, after training on).
    """

    def __init__(self, sample: PictureSample, monitor: str, *, batch_size: int = 256):
        super().__init__()
        self.sample, self.monitor, self.batch_size = sample, monitor, batch_size
        self.history: dict[str, list[float]] = {}
        self.by_epoch: dict[int, np.ndarray] = {}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        values = {k: float(v) for k, v in (logs or {}).items()}
        values.update(gap_metrics(values))
        for key, value in values.items():
            self.history.setdefault(key, []).append(value)
        if best_epoch_of(self.history, self.monitor) == epoch + 1:
            outputs = self.model.predict(self.sample.x, batch_size=self.batch_size, verbose=0)
            # every improvement is kept: each is the best of its first epochs, which a pruned run may be cut to
            self.by_epoch[epoch + 1] = np.asarray(outputs, dtype="float32")

    def best_until(self, epoch: int) -> tuple[int, np.ndarray] | None:
        """The predictions of the best epoch among the first ``epoch`` ones, if that epoch was predicted."""
        history = {key: values[:epoch] for key, values in self.history.items()}
        if not history:
            return None
        best = best_epoch_of(history, self.monitor)
        return (best, self.by_epoch[best]) if best in self.by_epoch else None


# ------------------------------------------------------------------ drawing


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def _to_rgb(image: np.ndarray) -> np.ndarray:
    """An image of any range as uint8 RGB (min-max scaled; one channel repeated)."""
    image = np.asarray(image, dtype="float32")
    if image.ndim == 2:
        image = image[..., None]
    low, high = float(image.min()), float(image.max())
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    rgb = np.repeat(scaled, 3, axis=-1) if scaled.shape[-1] == 1 else scaled[..., :3]
    return (rgb * 255).round().astype(np.uint8)


def _enlarged(rgb: np.ndarray, side: int) -> Image.Image:
    """Scaled by a whole factor (nearest: pixels stay pixels) to about ``side`` pixels."""
    factor = max(1, side // max(rgb.shape[:2]))
    return Image.fromarray(rgb).resize((rgb.shape[1] * factor, rgb.shape[0] * factor), Image.Resampling.NEAREST)


def _titled(body: Image.Image, title: str, detail: str = "") -> Image.Image:
    """``body`` under a title line and a smaller detail line (what, when, on which images)."""
    font, small = _font(14), _font(12)
    lines = [(title, font, (20, 20, 20))] + ([(detail, small, (97, 110, 124))] if detail else [])
    width = max([body.width] + [int(f.getlength(text)) + 16 for text, f, _ in lines])
    top = 8 + 20 * len(lines)
    canvas = Image.new("RGB", (width, body.height + top), "white")
    draw = ImageDraw.Draw(canvas)
    for n, (text, f, colour) in enumerate(lines):
        draw.text((8, 6 + 20 * n), text, fill=colour, font=f)
    canvas.paste(body, (0, top))
    return canvas


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> np.ndarray:
    """counts[i, j]: images of true class i predicted as j."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return counts


def confusion_picture(counts: np.ndarray, names: Sequence[str], title: str, detail: str = "") -> np.ndarray:
    """The confusion matrix: counts in cells, shaded by their share of the true class (the row)."""
    k = len(counts)
    cell = 44 if k <= 12 else 30
    label = max(28, 8 * max(len(n) for n in names) + 10)
    font = _font(12 if k <= 12 else 10)
    width, height = label + k * cell + 10, label + k * cell + 24
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    totals = counts.sum(axis=1, keepdims=True).clip(min=1)
    share = counts / totals
    for i in range(k):
        for j in range(k):
            x0, y0 = label + j * cell, label + i * cell
            strength = float(share[i, j])
            if i == j:  # right answers in blue, mistakes in red
                colour = tuple(int(255 - strength * (255 - c)) for c in (31, 119, 180))
            else:
                colour = tuple(int(255 - min(1.0, 3 * strength) * (255 - c)) for c in (214, 39, 40))
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=colour, outline=(225, 225, 225))
            if counts[i, j]:
                text = str(int(counts[i, j]))
                dark = strength > 0.55 if i == j else strength > 0.2
                draw.text((x0 + cell / 2, y0 + cell / 2), text, anchor="mm", font=font,
                          fill="white" if dark else (30, 30, 30))
        draw.text((label - 6, label + i * cell + cell / 2), names[i], anchor="rm", font=font, fill=(30, 30, 30))
        draw.text((label + i * cell + cell / 2, label - 6), names[i], anchor="mb", font=font, fill=(30, 30, 30))
    return np.asarray(_titled(image, title, detail))


def worst_mistakes(y_true: np.ndarray, probabilities: np.ndarray, count: int = MISTAKES) -> list[int]:
    """Indices of the misclassified images, most confident mistake first (ties: lower index first)."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y_true)
    confidence = probabilities[wrong, predicted[wrong]]
    order = np.lexsort((wrong, -confidence))
    return [int(i) for i in wrong[order][:count]]


def mistakes_picture(images: np.ndarray, y_true: np.ndarray, probabilities: np.ndarray, names: Sequence[str],
                     title: str, detail: str = "") -> np.ndarray:
    """A grid of the most confident mistakes, each captioned ``true -> predicted (probability)``."""
    chosen = worst_mistakes(y_true, probabilities)
    columns = 4
    tile, caption = 96, 18
    rows = max(1, math.ceil(len(chosen) / columns))
    grid = Image.new("RGB", (columns * (tile + 8) + 8, rows * (tile + caption + 8) + 8), "white")
    draw = ImageDraw.Draw(grid)
    font = _font(12)
    if not chosen:
        draw.text((10, 10), "no mistakes on these images", font=font, fill=(30, 30, 30))
    predicted = probabilities.argmax(axis=1)
    for n, index in enumerate(chosen):
        x0, y0 = 8 + (n % columns) * (tile + 8), 8 + (n // columns) * (tile + caption + 8)
        picture = _enlarged(_to_rgb(images[index]), tile)
        picture.thumbnail((tile, tile), Image.Resampling.NEAREST)
        grid.paste(picture, (x0 + (tile - picture.width) // 2, y0 + (tile - picture.height) // 2))
        text = f"{names[int(y_true[index])]} -> {names[int(predicted[index])]} " \
               f"({probabilities[index, predicted[index]]:.2f})"
        draw.text((x0 + tile / 2, y0 + tile + 3), text, anchor="mt", font=font, fill=(201, 42, 42))
    return np.asarray(_titled(grid, title, detail))


def _coloured(mask: np.ndarray) -> np.ndarray:
    return PALETTE[np.asarray(mask, dtype=int) % len(PALETTE)]


def class_masks(outputs: np.ndarray) -> np.ndarray:
    """Predicted class per pixel from a segmentation output (N, H, W, C) softmax or (N, H, W, 1) sigmoid."""
    if outputs.shape[-1] == 1:
        return (outputs[..., 0] >= 0.5).astype(np.int64)
    return outputs.argmax(axis=-1)


def mask_picture(images: np.ndarray, true_masks: np.ndarray, predicted_masks: np.ndarray, title: str,
                 detail: str = "") -> np.ndarray:
    """One row per image: the image, its true mask and the predicted mask."""
    side = 160
    rows = []
    for image, truth, predicted in zip(images, true_masks, predicted_masks):
        row = [_enlarged(_to_rgb(image), side), _enlarged(_coloured(truth), side), _enlarged(_coloured(predicted), side)]
        rows.append(row)
    width = max(sum(p.width for p in row) + 8 * 4 for row in rows)
    height = sum(max(p.height for p in row) + 8 for row in rows) + 8 + 20
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(12)
    x = 8
    for name, picture in zip(("image", "true mask", "predicted mask"), rows[0]):
        draw.text((x + picture.width / 2, 4), name, anchor="mt", font=font, fill=(30, 30, 30))
        x += picture.width + 8
    y = 24
    for row in rows:
        x = 8
        for picture in row:
            canvas.paste(picture, (x, y))
            x += picture.width + 8
        y += max(p.height for p in row) + 8
    return np.asarray(_titled(canvas, title, detail))


def pictures(sample: PictureSample, outputs: np.ndarray, *, head: str, epoch: int,
             class_names: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """The run's pictures, by key: ``confusion_matrix`` and ``mistakes`` (classification) or ``masks``
    (segmentation); none for regression."""
    where = f"epoch {epoch} (the best), {sample.label}"
    if head == "segmentation":
        return {"masks": mask_picture(sample.x, sample.y, class_masks(outputs), "Image, true and predicted masks",
                                      where)}
    if head == "regression":
        return {}
    probabilities = outputs
    if head == "binary" or probabilities.shape[-1] == 1:
        positive = probabilities.reshape(-1)
        probabilities = np.stack([1 - positive, positive], axis=1)
    classes = probabilities.shape[1]
    names = [str(n) for n in class_names] if len(class_names) == classes else [str(i) for i in range(classes)]
    y_true = np.asarray(sample.y, dtype=int).reshape(-1)
    out = {}
    if classes <= MAX_MATRIX_CLASSES:
        counts = confusion_counts(y_true, probabilities.argmax(axis=1), classes)
        accuracy = np.trace(counts) / max(1, counts.sum())
        out["confusion_matrix"] = confusion_picture(counts, names, f"Confusion matrix, accuracy {accuracy:.3f}",
                                                    f"{where}; rows: true class, columns: predicted")
    out["mistakes"] = mistakes_picture(sample.x, y_true, probabilities, names, "Most confident mistakes",
                                       f"{where}; true -> predicted (probability)")
    return out
