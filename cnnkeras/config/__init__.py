"""Experiment configs: the pydantic schema, the YAML loader and located errors."""

from .errors import ConfigError, ConfigIssue, Location
from .loader import apply_override, config_from_dict, load_config, parse_override
from .schema import ExperimentConfig

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "ExperimentConfig",
    "Location",
    "apply_override",
    "config_from_dict",
    "load_config",
    "parse_override",
]
