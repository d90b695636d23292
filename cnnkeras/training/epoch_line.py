"""One epoch in one line, for people: what :class:`~cnnkeras.training.callbacks.RichProgress` prints.

``lenet epoch 3/10  acc 0.9312 val 0.9100 gap +0.0212  loss 0.2345 val 0.3012 gap +0.0667  1.2s``

Each measure the run recorded shows its training value, its validation value and the gap,
the headline measure first (mean IoU for segmentation, else accuracy, else MAE), then the
loss and the others. The line fits ``width`` columns (80 in a pipe): when it does not, the
least telling parts give way first: the epoch's time, then the other measures, the loss and
finally the headline's training value (``val acc 0.9100 gap +0.0212``), the run's name being
shortened last; the epoch, the headline's validation value and its gap always stay.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["epoch_line"]

SHORT = {"accuracy": "acc", "mean_iou": "iou", "mae": "mae", "loss": "loss"}


def _levels(record: Mapping[str, float], key: str) -> list[str]:
    """A measure's text, from the most detailed to the least ("" at the end: left out)."""
    short = SHORT[key]
    # the training side of the gap: the training sample in inference mode when measured (train_*), else
    # Keras' running training-mode value
    train = record.get(f"train_{key}", record.get(key))
    val, gap = record.get(f"val_{key}"), record.get(f"gap_{key}")
    gap_text = f" gap {gap:+.4f}" if gap is not None else ""
    levels = []
    if train is not None and val is not None:
        levels.append(f"{short} {train:.4f} val {val:.4f}{gap_text}")
    if val is not None:
        levels += [f"val {short} {val:.4f}{gap_text}", f"val {short} {val:.4f}"]
    elif train is not None:
        levels.append(f"{short} {train:.4f}")
    return levels + [""]


def epoch_line(title: str, epoch: int, epochs: int, record: Mapping[str, float], width: int = 80, *,
               with_epoch: bool = True) -> str:
    """The epoch's line, at most ``width`` columns (see the module docstring); without ``epoch e/E``
    when ``with_epoch`` is False (a progress bar shows it already)."""
    measures = [k for k in ("mean_iou", "accuracy", "mae")
                if k in record or f"val_{k}" in record or f"train_{k}" in record]
    order = measures[:1] + ["loss"] + measures[1:] if "loss" in record or "val_loss" in record else measures
    groups = [_levels(record, key) for key in order]
    if "epoch_time_s" in record:
        groups.append([f"{record['epoch_time_s']:.1f}s", ""])
    level = [0] * len(groups)
    # who gives way, in turn: the time, the other measures, the loss, then the headline's training value
    turns = ([len(groups) - 1] if "epoch_time_s" in record else []) + list(range(len(order) - 1, 0, -1))
    head = f"epoch {epoch}/{epochs}" if with_epoch else ""

    def body() -> str:
        return "  ".join(([head] if head else []) + [g[n] for g, n in zip(groups, level) if g[n]])

    while len(title) + 1 + len(body()) > width:
        movable = [i for i in turns if level[i] < len(groups[i]) - 1]
        if movable:
            level[movable[0]] += 1
        elif order and level[0] < len(groups[0]) - 3:  # the headline keeps its validation value and gap
            level[0] += 1
        else:
            break
    text = body()
    room = width - len(text) - 1
    if len(title) > room:
        title = title[: room - 1] + "…" if room > 3 else ""
    if len(title) + 1 + len(text) > width and order and level[0] < len(groups[0]) - 2:
        level[0] += 1  # last resort: the headline's gap too
        text = body()
    return f"{title} {text}".strip()
