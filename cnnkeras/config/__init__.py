"""Experiment configs: the pydantic schema, the YAML loader, every check, and located errors."""

from .checks import register_check
from .errors import ConfigError, ConfigIssue, Location
from .loader import config_from_dict, load_config, parse_override
from .overrides import apply_override
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
    "register_check",
]
