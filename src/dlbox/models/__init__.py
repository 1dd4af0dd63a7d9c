"""Models by name. Importing this package registers the built-ins: tutorial, resnet, tiny,
speedrun.

    from dlbox.models import create_model, list_models
    model = create_model("resnet", num_classes=10, width=32)
"""

from __future__ import annotations

from dlbox.models import resnet, speedrun, tiny, tutorial  # noqa: F401  (registers the built-ins)
from dlbox.models.registry import (
    ModelInfo,
    Recipe,
    count_parameters,
    create_model,
    default_model_for,
    get_model_info,
    list_models,
    model_names,
    recipe_for,
    register_model,
    set_default_model,
)

__all__ = [
    "ModelInfo",
    "Recipe",
    "count_parameters",
    "create_model",
    "default_model_for",
    "get_model_info",
    "list_models",
    "model_names",
    "recipe_for",
    "register_model",
    "set_default_model",
]
