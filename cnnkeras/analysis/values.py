"""Parameter values in one canonical form, ordered by value, and labelled for people.

MLflow keeps every parameter as text, so one swept value can come back as ``"0"`` from
one run and ``"0.0"`` from another, and ``levels: [0.0, 0.001]`` in a claim is YAML's
float. Everything the reports group, order or draw goes through here:

- :func:`canonical_column`: a parameter column with numbers as numbers, and a numeric
  column of mixed ints and floats all floats, so ``0`` and ``0.0`` are one level;
- :func:`ordered_values`: distinct values, numbers by value (never as text: ``16 < 128``);
- :func:`value_label`: the text shown for a value: whole numbers whole (``1024``), others
  to three significant digits (``0.000761``), booleans as YAML writes them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

__all__ = ["canonical", "canonical_column", "is_number", "ordered_values", "value_label"]


def is_number(value: Any) -> bool:
    """An int or float that is not a bool (and not NaN)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not (
        isinstance(value, float) and math.isnan(value))


def canonical(value: Any) -> Any:
    """One form per value: numeric text as a number (``"32"`` -> 32, ``"0.0"`` -> 0.0), ``"True"`` -> True."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # NumPy scalars
        value = value.item()
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        for cast in (int, float):
            try:
                return cast(text)
            except ValueError:
                continue
    return value


def canonical_column(values: pd.Series) -> pd.Series:
    """A parameter column in canonical form: ints and floats mixed become floats (0 and 0.0: one level)."""
    out = values.map(lambda v: v if v is None or (isinstance(v, float) and math.isnan(v)) else canonical(v))
    present = [v for v in out if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if present and all(is_number(v) for v in present) and any(isinstance(v, float) for v in present):
        return out.map(lambda v: float(v) if is_number(v) else v).astype(object)
    return out.astype(object)


def _sort_key(value: Any) -> tuple:
    if isinstance(value, bool):
        return (0, int(value), "")
    if is_number(value):
        return (1, float(value), "")
    return (2, 0.0, str(value))


def ordered_values(values: Iterable[Any]) -> list[Any]:
    """Distinct values (canonical), booleans first, then numbers by value, then text."""
    seen: dict[str, Any] = {}
    for value in values:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        value = canonical(value)
        seen.setdefault(value_label(value), value)
    return sorted(seen.values(), key=_sort_key)


def value_label(value: Any) -> str:
    """The text for a value: ``1024``, ``0.001``, ``0.000761``, ``0`` (for 0 and 0.0), ``true``."""
    value = canonical(value)
    if isinstance(value, bool):
        return str(value).lower()
    if is_number(value):
        number = float(value)
        if number.is_integer() and abs(number) < 1e6:
            return str(int(number))
        return f"{number:.3g}"
    return str(value)
