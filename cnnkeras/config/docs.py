"""The configuration reference as Markdown, generated from the pydantic schema.

``docs/configuration.md`` is this function's output (``cnnkeras schema
--markdown``); a test checks the committed file is up to date.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .errors import _unwrap  # the model classes inside an annotation
from .schema import ExperimentConfig

__all__ = ["schema_markdown"]


def _type_name(annotation: Any) -> str:
    text = repr(annotation).replace("typing.", "").replace("cnnkeras.config.schema.", "")
    text = text.replace("Annotated[", "").replace("NoneType", "None")
    if isinstance(annotation, type):
        return annotation.__name__
    text = text if len(text) < 70 else text[:67] + "..."
    return text.replace("|", "\\|")


def _default(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, BaseModel):
            return "(section)"
        return f"`{value!r}`"
    if field.default is PydanticUndefined:
        return "**required**"
    return f"`{field.default!r}`"


def _section(cls: type[BaseModel], prefix: str, seen: set[str], out: list[str]) -> None:
    title = prefix or "top level"
    if title in seen:
        return
    seen.add(title)
    doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    out += [f"## `{title}` ({cls.__name__})", "", doc, "", "| key | type | default | description |",
            "| --- | --- | --- | --- |"]
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in cls.model_fields.items():
        description = (field.description or "").replace("|", "\\|")
        out.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {description} |")
        for member in _unwrap(field.annotation):
            nested.append((f"{prefix}.{name}" if prefix else name, member))
    out.append("")
    for path, member in nested:
        tag = member.model_fields.get("name")
        label = f"{path} (name: {typing.get_args(tag.annotation)[0]})" if tag is not None else path
        _section(member, label, seen, out)


def schema_markdown() -> str:
    """The whole configuration reference, one table per section."""
    out = ["# Configuration reference", "",
           "Generated from the pydantic schema by `cnnkeras schema --markdown`; do not edit by hand.", "",
           "Every section forbids unknown keys; a mistake is reported as `file:line: key.path: message`.", ""]
    _section(ExperimentConfig, "", set(), out)
    return "\n".join(out) + "\n"
