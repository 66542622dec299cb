"""The model zoo: ``create_model(name, num_classes)``, ``list_models(pattern)``, checkpoints."""

from .registry import (
    count_parameters,
    create_model,
    list_models,
    model_family,
    model_revision,
    register_model,
    resolve_model_name,
)

__all__ = [
    "count_parameters",
    "create_model",
    "list_models",
    "model_family",
    "model_revision",
    "register_model",
    "resolve_model_name",
]
