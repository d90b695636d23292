"""Read an experiment YAML file into a validated, immutable :class:`ExperimentConfig`.

The steps, in order, all before any training:

1. YAML is read with a safe loader (no Python tags) that also reads ``1e-3`` as a
   float (YAML 1.2 rules) and refuses duplicate keys. A source map records the
   file and line of every key.
2. ``extends: base.yaml`` (or a list) merges base files first, deepest first;
   mappings merge key by key, anything else is replaced.
3. Command-line overrides ``train.batch_size=64`` are parsed as YAML values and
   set by key path (``model.layers.0.filters=8`` indexes lists).
4. Relative ``data.path`` values are resolved against the file that set them.
5. Pydantic validates the whole; then every check of :mod:`cnnkeras.config.checks`
   runs on the result (search space, report claims, and the zoo's architecture
   names, options and layer types, registered by the package root). Every problem
   is collected into one :class:`ConfigError` with ``file:line: key.path: message``.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path as FsPath
from typing import Any

import yaml
from pydantic import ValidationError

from .checks import Check, all_checks
from .errors import ConfigError, ConfigIssue, Location, issues_from_validation_error
from .overrides import apply_override
from .schema import ExperimentConfig

__all__ = [
    "Check",
    "ConfigSource",
    "apply_override",
    "config_from_dict",
    "load_config",
    "load_yaml",
    "parse_override",
]

Path = tuple[Any, ...]
#: A check takes a validated config and returns (key path, message) problems.


class _SafeLoader(yaml.SafeLoader):
    """SafeLoader that reads YAML 1.2 floats (``1e-3``, not only ``1.0e-3``)."""


_SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


class ConfigSource:
    """Where each key of a config came from: files, lines and overrides."""

    def __init__(self, file: str | None = None, overrides: Sequence[str] = ()):
        self.file = file
        self.overrides = list(overrides)
        self.locations: dict[Path, Location] = {}

    def locate(self, path: Path) -> Location | None:
        """The location of ``path``, or of its closest parent that has one."""
        path = tuple(path)
        while True:
            if path in self.locations:
                return self.locations[path]
            if not path:
                return Location(self.file) if self.file else None
            path = path[:-1]


# ------------------------------------------------------------------------- YAML


def _issue_from_yaml_error(exc: yaml.YAMLError, file: str) -> ConfigIssue:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    if "could not determine a constructor for the tag" in str(exc):
        problem = (
            f"YAML tag {str(exc).split('tag')[-1].split(chr(10))[0].strip()} is not allowed: configs are "
            "read with a safe loader and may hold only plain values"
        )
    else:
        problem = f"invalid YAML: {problem}"
    return ConfigIssue((), problem, Location(file, line))


#: Most values a config may expand to. YAML aliases can make a small file expand
#: exponentially (9 levels of 9 aliases: 387 million values); real configs hold hundreds.
MAX_VALUES = 100_000


class _TooLarge(Exception):
    pass


def _walk_nodes(node: yaml.Node, path: Path, file: str, out: dict[Path, Location], issues: list[ConfigIssue],
                budget: list[int] | None = None):
    budget = budget if budget is not None else [MAX_VALUES]
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                issues.append(
                    ConfigIssue(path + (key,), "duplicate key (each key may appear once)",
                                Location(file, key_node.start_mark.line + 1))
                )
            seen.add(key)
            out[path + (key,)] = Location(file, key_node.start_mark.line + 1)
            _walk_nodes(value_node, path + (key,), file, out, issues, budget)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            out[path + (index,)] = Location(file, item.start_mark.line + 1)
            _walk_nodes(item, path + (index,), file, out, issues, budget)


def load_yaml(file: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[Path, Location]]:
    """Read one YAML mapping safely, with the line of every key."""
    name = str(file)
    try:
        text = FsPath(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue((), "config file not found", Location(name))]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue((), f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                                           f"{exc.start}); save the file as UTF-8", Location(name))]) from None
    except OSError as exc:
        raise ConfigError([ConfigIssue((), f"cannot read config file: {exc.strerror}", Location(name))]) from None
    try:
        node = yaml.compose(text, Loader=_SafeLoader)
        data = yaml.load(text, Loader=_SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([_issue_from_yaml_error(exc, name)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue((), "a config must be a mapping of keys to values", Location(name, 1))])
    locations: dict[Path, Location] = {}
    issues: list[ConfigIssue] = []
    if node is not None:
        try:
            _walk_nodes(node, (), name, locations, issues)
        except _TooLarge:
            raise ConfigError([ConfigIssue((), f"the config expands to more than {MAX_VALUES:,} values (YAML "
                                               "aliases repeated inside aliases?); write it out plainly",
                                            Location(name))]) from None
    if issues:
        raise ConfigError(issues)
    return data, locations


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``top`` into a copy of ``base``: mappings merge, the rest is replaced."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _load_with_extends(file: FsPath, source: ConfigSource, chain: tuple[FsPath, ...] = ()) -> dict[str, Any]:
    file = file.resolve() if file.exists() else file
    if file in chain:
        cycle = " -> ".join(str(p) for p in chain + (file,))
        raise ConfigError([ConfigIssue(("extends",), f"extends makes a cycle: {cycle}", Location(str(chain[-1])))])
    data, locations = load_yaml(file)
    bases = data.pop("extends", None)
    merged: dict[str, Any] = {}
    if bases is not None:
        if isinstance(bases, str):
            bases = [bases]
        if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
            raise ConfigError([ConfigIssue(("extends",), "extends must be a file path or a list of them",
                                           locations.get(("extends",)))])
        for base in bases:
            base_path = (file.parent / base) if not os.path.isabs(base) else FsPath(base)
            if not base_path.exists():
                raise ConfigError([ConfigIssue(("extends",), f"base config not found: {base_path}",
                                               locations.get(("extends",)))])
            merged = _merge(merged, _load_with_extends(base_path, source, chain + (file,)))
    locations.pop(("extends",), None)
    source.locations.update(locations)
    _resolve_paths(data, file.parent)
    return _merge(merged, data)


#: data keys that hold paths: relative ones are relative to the file that sets them.
PATH_KEYS = ("path", "cache_dir")


def _resolve_paths(data: dict[str, Any], folder: FsPath) -> None:
    """Make a relative ``data.path`` (and ``data.cache_dir``) absolute, against the folder of the file that
    set it."""
    section = data.get("data")
    for key in PATH_KEYS:
        if isinstance(section, dict) and isinstance(section.get(key), str):
            path = os.path.expanduser(section[key])
            if not os.path.isabs(path):
                path = os.path.normpath(os.path.join(folder, path))
            section[key] = path


# -------------------------------------------------------------------- overrides


def parse_override(text: str) -> tuple[Path, Any]:
    """``'train.optimizer.learning_rate=3e-4'`` -> ``(('train', 'optimizer', 'learning_rate'), 0.0003)``."""
    if "=" not in text:
        raise ConfigError([ConfigIssue((), f"override {text!r} must look like key.path=value",
                                       Location("command line"))])
    key, _, raw_value = text.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError([ConfigIssue((), f"override {text!r} has an empty key", Location("command line"))])
    path = tuple(int(p) if p.isdigit() else p for p in key.split("."))
    try:
        value = yaml.load(raw_value, Loader=_SafeLoader) if raw_value.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(path, f"cannot parse value {raw_value!r}: {exc}",
                                       Location(f"command line '{text}'"))]) from None
    return path, value




# ------------------------------------------------------------------- validation


def config_from_dict(
    raw: Mapping[str, Any],
    overrides: Sequence[str] = (),
    *,
    source: ConfigSource | None = None,
    checks: Sequence[Check] | None = None,
) -> ExperimentConfig:
    """Validate a raw mapping (plus overrides) into an :class:`ExperimentConfig`.

    ``checks`` defaults to :func:`~cnnkeras.config.checks.all_checks` (everything a run
    would refuse); a list replaces them (tests of one check).
    """
    source = source or ConfigSource(overrides=overrides)
    data = dict(copy.deepcopy(raw))
    for text in overrides:
        path, value = parse_override(text)
        data = apply_override(data, path, value)
        if len(path) == 2 and path[0] == "data" and path[1] in PATH_KEYS and isinstance(value, str):
            data["data"][path[1]] = os.path.abspath(os.path.expanduser(value))
        source.locations[path] = Location(f"command line '{text}'")
        # Keys below an overridden value no longer come from the file.
        for known in [p for p in source.locations if p[: len(path)] == path and len(p) > len(path)]:
            del source.locations[known]
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            issues_from_validation_error(exc, root=ExperimentConfig, raw=data, locate=source.locate)
        ) from None
    issues = [ConfigIssue(tuple(p), msg, source.locate(tuple(p)))
              for check in (all_checks() if checks is None else checks) for p, msg in check(config)]
    if issues:
        raise ConfigError(issues)
    config._source = source
    return config


def load_config(
    file: str | os.PathLike[str],
    overrides: Sequence[str] = (),
    *,
    checks: Sequence[Check] | None = None,
) -> ExperimentConfig:
    """Load, merge, override and validate one experiment file: every error at once, before anything runs."""
    source = ConfigSource(str(file), overrides)
    data = _load_with_extends(FsPath(file), source)
    # Report the file as the user named it, not its resolved absolute path.
    resolved = str(FsPath(file).resolve())
    source.locations = {
        path: Location(str(file), loc.line) if loc.file == resolved else loc for path, loc in source.locations.items()
    }
    return config_from_dict(data, source=source, overrides=overrides, checks=checks)

