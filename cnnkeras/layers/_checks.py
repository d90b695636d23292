"""Argument checks shared by the custom layers; errors end with 'Received: name=value'."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def pair(value: Any, name: str) -> tuple[int, int]:
    """An int or a pair of ints, as a positive (height, width) pair."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value) or min(value) < 1):
        raise ValueError(f"Argument `{name}` must be a positive int or a pair of them. Received: {name}={value}")
    return int(value[0]), int(value[1])


def padding_pairs(value: Any, name: str = "padding") -> tuple[tuple[int, int], tuple[int, int]]:
    """int | (h, w) | ((top, bottom), (left, right)) -> ((top, bottom), (left, right)), all >= 0."""
    received = value
    if isinstance(value, int) and not isinstance(value, bool):
        value = ((value, value), (value, value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        value = ((value[0], value[0]), (value[1], value[1]))
    ok = (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(p, (tuple, list)) and len(p) == 2 and all(isinstance(v, int) and v >= 0 for v in p)
                  for p in value))
    if not ok:
        raise ValueError(f"Argument `{name}` must be an int >= 0, (h, w) or ((top, bottom), (left, right)). "
                         f"Received: {name}={received}")
    return (int(value[0][0]), int(value[0][1])), (int(value[1][0]), int(value[1][1]))


def one_of(value: Any, choices: Iterable[Any], name: str) -> Any:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"Argument `{name}` must be one of {choices}. Received: {name}={value}")
    return value


def number_in(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"Argument `{name}` must be a number in [{low}, {high}]. Received: {name}={value}")
    return float(value)


def positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Argument `{name}` must be a positive integer. Received: {name}={value}")
    return value
