"""Setting one key path of a raw config: what a ``key.path=value`` override and a sweep's trial do."""

from __future__ import annotations

import copy
from typing import Any

from .errors import ConfigError, ConfigIssue, Location

__all__ = ["apply_override"]

Path = tuple[Any, ...]


def apply_override(data: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    """Return a copy of ``data`` with ``value`` set at ``path`` (creating mappings on the way)."""
    out = copy.deepcopy(data)
    node: Any = out
    for index, part in enumerate(path[:-1]):
        nxt = path[index + 1]
        if isinstance(node, list) and isinstance(part, int):
            if part >= len(node):
                raise ConfigError([ConfigIssue(path[: index + 1], f"index {part} is out of range (list has "
                                               f"{len(node)} items)", Location("command line"))])
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise ConfigError([ConfigIssue(path[:index], "is not a mapping; cannot set keys below it",
                                           Location("command line"))])
        if not isinstance(node.get(part), (dict, list)):
            node[part] = [] if isinstance(nxt, int) else {}
        node = node[part]
    last = path[-1]
    if isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError([ConfigIssue(path, "cannot be set here", Location("command line"))])
    return out
