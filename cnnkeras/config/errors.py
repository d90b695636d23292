"""Config errors that name the file, the line, the key path and the nearest valid key.

A :class:`ConfigError` carries every problem found in one pass, each a
:class:`ConfigIssue` printed as ``exp.yaml:7: train.optimiser: unknown key; did
you mean 'optimizer'?``. Pydantic's errors are translated here: their ``loc``
is mapped back onto the raw YAML (skipping the union tags pydantic inserts), the
line comes from the loader's source map, and for unknown keys and names the
closest valid one is suggested with :func:`difflib.get_close_matches`.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import CnnkerasError

__all__ = ["ConfigError", "ConfigIssue", "Location", "format_path", "nearest", "issues_from_validation_error"]

Path = tuple[Any, ...]


@dataclass(frozen=True)
class Location:
    """Where a value was set: a file and 1-based line, or a command-line override."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config: where, which key, and what is wrong."""

    path: Path
    message: str
    location: Location | None = None

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        key = format_path(self.path) or "(top level)"
        return f"{where}{key}: {self.message}"


class ConfigError(CnnkerasError):
    """One or more config problems, found before anything runs."""

    def __init__(self, issues: Sequence[ConfigIssue]):
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


def format_path(path: Iterable[Any]) -> str:
    """``('model', 'layers', 2, 'filters')`` -> ``model.layers[2].filters``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def nearest(word: str, choices: Iterable[str]) -> str | None:
    """The valid choice closest to ``word``, or None when none is close."""
    choices = [str(c) for c in choices]
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:
        return lowered[word.lower()]
    match = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return match[0] if match else None


def suggestion(word: str, choices: Sequence[str], what: str = "valid keys") -> str:
    """'did you mean X?' when one is close, else the list of valid choices."""
    best = nearest(word, choices)
    if best is not None:
        return f"did you mean '{best}'?"
    return f"{what}: {', '.join(sorted(map(str, choices)))}"


# ------------------------------------------------------------- pydantic translation


def _raw_path(loc: Sequence[Any], raw: Any) -> Path:
    """Map a pydantic ``loc`` onto the raw data, dropping union tags that are not keys."""
    path: list[Any] = []
    node = raw
    for part in loc:
        if isinstance(node, Mapping) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, Mapping) or isinstance(node, list):
            # A tag pydantic inserted for a union member ('adam', 'function-after[...]'),
            # or a key that is missing from the raw data: keep it only if it is the last part.
            if part is loc[-1] and isinstance(part, str) and not _looks_like_tag(part, node):
                path.append(part)
        else:
            break
    return tuple(path)


def _looks_like_tag(part: str, node: Any) -> bool:
    if not isinstance(node, Mapping):
        return True
    return node.get("name") == part or node.get("source") == part or "[" in part


def _unwrap(annotation: Any) -> list[Any]:
    """The model classes an annotation may hold (through Optional, Union, Annotated, list)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        out = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    if origin in (list, tuple, dict):
        args = typing.get_args(annotation)
        return _unwrap(args[-1]) if args else []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _model_at(root: type[BaseModel], path: Path, raw: Any) -> type[BaseModel] | None:
    """The pydantic class that validates the mapping at ``path`` of the raw data."""
    current: type[BaseModel] | None = root
    node = raw
    for part in path:
        if current is None:
            return None
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        field = current.model_fields.get(part)
        if field is None:
            return None
        node = node.get(part) if isinstance(node, Mapping) else None
        default_tag = next(
            (getattr(m.discriminator, "default_tag", None) for m in field.metadata if hasattr(m, "discriminator")),
            None,
        )
        current = _pick_member(_unwrap(field.annotation), node, default_tag)
    return current


def _pick_member(
    candidates: list[type[BaseModel]], node: Any, default_tag: str | None
) -> type[BaseModel] | None:
    """The member of a (discriminated) union that validates ``node``."""
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    tag = node.get("name", default_tag) if isinstance(node, Mapping) else default_tag
    for cls in candidates:
        field = cls.model_fields.get("name")
        if field is not None and tag in typing.get_args(field.annotation):
            return cls
    return None


def _message(error: Mapping[str, Any], path: Path, root: type[BaseModel], raw: Any) -> tuple[Path, str]:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        parent = _model_at(root, path[:-1], raw)
        valid = list(parent.model_fields) if parent is not None else []
        return path, f"unknown key; {suggestion(str(path[-1]), valid)}"
    if kind == "missing":
        return path, "required key is missing"
    if kind == "union_tag_invalid":
        tags = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",")]
        discriminator = str(ctx.get("discriminator", "")).strip("'")
        key = discriminator if discriminator.isidentifier() else "name"  # a callable reads 'name'
        what = key if key != "name" else (path[-1] if path else "value")
        tag = str(ctx.get("tag"))
        return path + (key,), f"unknown {what} '{tag}'; {suggestion(tag, tags, 'choose from')}"
    if kind == "literal_error":
        expected = [e.strip().strip("'") for e in str(ctx.get("expected", "")).replace(" or ", ",").split(",")]
        got = error.get("input")
        return path, f"'{got}' is not allowed; {suggestion(str(got), [e for e in expected if e], 'choose from')}"
    msg = str(error["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    value = error.get("input")
    if kind not in ("value_error",) and not isinstance(value, (Mapping, list)):
        msg = f"{msg[0].lower()}{msg[1:]} (got {value!r})"
    return path, msg


def issues_from_validation_error(
    exc: ValidationError,
    *,
    root: type[BaseModel],
    raw: Any,
    locate: typing.Callable[[Path], Location | None],
) -> list[ConfigIssue]:
    """Translate a pydantic ``ValidationError`` into located, readable issues."""
    issues = []
    for error in exc.errors():
        path = _raw_path(error["loc"], raw)
        path, message = _message(error, path, root, raw)
        issues.append(ConfigIssue(path, message, locate(path)))
    return issues
