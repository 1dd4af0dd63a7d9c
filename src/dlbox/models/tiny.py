"""A very small conv net for tests and smoke runs: trains an epoch of a few hundred images
in well under a second on a CPU."""

from __future__ import annotations

from torch import nn

from dlbox.models.registry import Recipe, register_model

TINY_RECIPE = Recipe(
    epochs=1, batch_size=32, lr=0.05, weight_decay=5e-4, momentum=0.9, nesterov=True,
    label_smoothing=0.0, schedule="onecycle", warmup_fraction=0.1, crop_padding=2, flip=True,
)


@register_model("tiny", "a very small conv net for tests and smoke runs", recipe=TINY_RECIPE)
def tiny(num_classes: int = 10, width: int = 8) -> nn.Module:
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ValueError(f"width must be a positive number of channels, got {width!r}")
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        nn.MaxPool2d(4),
        nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(2 * width, num_classes),
    )
