"""The architecture zoo: every classic CNN registered by name, plus declarative models."""

from .build import check_model_config, model_from_config
from .registry import ModelInfo, build_model, get_model_info, list_models, register_model

__all__ = ["ModelInfo", "build_model", "check_model_config", "get_model_info", "list_models",
           "model_from_config", "register_model"]
