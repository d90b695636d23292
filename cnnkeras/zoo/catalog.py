"""The zoo's catalogue, from the registry and stored measurements: no model is built to list it.

``cnnkeras zoo`` used to build every architecture (73 s on this CPU) to count its parameters
and MACs. What a build tells is fixed for a model's reference input and classes, so it is
measured once and stored in ``metadata.json`` beside this module (:func:`write_metadata`,
run as ``python -m cnnkeras.zoo.catalog`` after a model changes; tests/unit/test_zoo_catalog.py
checks every stored figure against a real build):

- ``params`` and ``macs``: :func:`cnnkeras.zoo.inspect.inspect`'s totals at the reference
  input and classes;
- ``smallest_input``: the smallest square input (pixels a side) the model builds for, with the
  small-input stem switched on where it has one (as ``cnnkeras inspect`` and configs do), found
  by bisection; below it a stride or a pooling window runs out of pixels;
- ``why_smallest``: what a build one pixel smaller says.

:func:`zoo_catalog` joins them with the registry (name, family, tasks, paper): it imports no Keras
and takes a fraction of a second. :func:`short_citation` turns a registry's paper string into
"Lin et al. 2017".
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from ..lazy import lazy_import
from .registry import get_model_info, list_models

inspect_module = lazy_import("cnnkeras.zoo.inspect")
keras = lazy_import("keras")

__all__ = ["METADATA", "zoo_catalog", "measure", "short_citation", "stored", "write_metadata"]

METADATA = Path(__file__).with_name("metadata.json")
#: Models with nothing fixed to measure (their layers come from the config).
UNMEASURED = ("sequential",)


def short_citation(paper: str | None) -> str:
    """'Lin et al., Feature pyramid networks, CVPR 2017 (arXiv:1612.03144); ...' -> 'Lin et al. 2017'.

    The first work cited, its first author's surname, "et al." for three authors or more
    ("and" for two), and its year (a venue's, never an arXiv number's).
    """
    if not paper or paper.startswith("("):
        return "-"
    first = re.sub(r"\(?arXiv:\s*[\d.]+(v\d+)?\)?", "", paper.split(";")[0])
    years = re.findall(r"\b(?:19|20)\d\d\b", first)
    segments = [part.strip() for part in first.split(",")]
    lead = segments[0]
    surname = lead.split(" et al")[0].split(" and ")[0].split()[-1]
    if " et al" in lead:
        name = f"{surname} et al."
    elif " and " in lead:
        name = f"{surname} and {lead.split(' and ')[1].split()[-1]}"
    elif len(segments) > 1 and re.fullmatch(r"[A-Z][\w'-]+ and [A-Z][\w'-]+", segments[1]):
        name = f"{surname} et al."  # "Lin, Chen and Yan": three authors
    else:
        name = surname
    return f"{name} {years[0]}" if years else name


def stored() -> dict[str, dict[str, Any]]:
    """The stored measurements, by model name."""
    return json.loads(METADATA.read_text(encoding="utf-8"))["models"]


def zoo_catalog() -> pd.DataFrame:
    """Every registered architecture with its stored parameters, MACs and smallest input (no build)."""
    figures = stored()
    rows = []
    for name in list_models():
        info = get_model_info(name)
        found = figures.get(name, {})
        rows.append({
            "arch": name, "family": info.family, "tasks": "+".join(info.tasks), "input": tuple(info.input_shape),
            "classes": info.num_classes, "params": found.get("params"), "macs": found.get("macs"),
            "reference_params": info.reference_params, "smallest_input": found.get("smallest_input"),
            "why_smallest": found.get("why_smallest", ""), "paper": info.paper,
            "citation": short_citation(info.paper),
        })
    return pd.DataFrame(rows)


def _builds(name: str, side: int, channels: int) -> tuple[bool, str]:
    keras.backend.clear_session()
    try:
        inspect_module.model_for(name, input_shape=(side, side, channels))
        return True, ""
    except Exception as exc:  # noqa: BLE001 - any refusal of a build is what is measured
        return False, (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def smallest_input(name: str) -> tuple[int, str]:
    """The smallest square side ``name`` builds for (bisection between 1 and its reference input), and
    what a build one pixel smaller says ("" when it builds at 1)."""
    info = get_model_info(name)
    high, channels = int(info.input_shape[0]), int(info.input_shape[2])
    ok, why = _builds(name, 1, channels)
    if ok:
        return 1, ""
    low = 1  # fails
    while high - low > 1:
        middle = (low + high) // 2
        ok, message = _builds(name, middle, channels)
        if ok:
            high = middle
        else:
            low, why = middle, message
    if low != 1 or not why:
        why = _builds(name, high - 1, channels)[1]
    return high, why


def measure(name: str) -> dict[str, Any]:
    """Build ``name`` at its reference input and classes: params, MACs; and its smallest input."""
    info = get_model_info(name)
    keras.backend.clear_session()
    frame = inspect_module.inspect(inspect_module.model_for(name))
    side, why = smallest_input(name)
    keras.backend.clear_session()
    return {"input": list(info.input_shape), "classes": info.num_classes, "params": int(frame.attrs["params"]),
            "macs": int(frame.attrs["macs"]), "smallest_input": side, "why_smallest": why}


def write_metadata(names: Iterable[str] | None = None) -> Path:
    """Measure ``names`` (default: every model) and store them, keeping the others' figures."""
    current = stored() if METADATA.exists() else {}
    for name in names or [n for n in list_models() if n not in UNMEASURED]:
        print(f"measuring {name}", file=sys.stderr, flush=True)
        current[name] = measure(name)
    METADATA.write_text(json.dumps({"keras": keras.__version__, "models": dict(sorted(current.items()))},
                                   indent=1) + "\n", encoding="utf-8")
    return METADATA


if __name__ == "__main__":  # pragma: no cover - python -m cnnkeras.zoo.catalog [NAME ...]
    write_metadata(sys.argv[1:] or None)
