"""A small residual network in the ResNet-9 style (Myrtle.ai / David Page, DAWNBench 2018).

    prep    conv 3x3 -> w,            BN, ReLU                     32x32
    layer1  conv 3x3 -> 2w, BN, ReLU, max-pool 2, + residual(2w)  16x16
    layer2  conv 3x3 -> 4w, BN, ReLU, max-pool 2                    8x8
    layer3  conv 3x3 -> 8w, BN, ReLU, max-pool 2, + residual(8w)    4x4
    head    global max-pool, linear 8w -> classes, logits x 0.125

A residual block is two (conv 3x3, BN, ReLU) layers added to their input. The width `w`
(64 in the original) sets every layer; 16 gives a net 16x cheaper for CPUs. The final
x0.125 keeps early logits small, which with label smoothing makes the high one-cycle
learning rate stable (as in the original).
"""

from __future__ import annotations

import torch
from torch import nn

from dlbox.models.registry import Recipe, register_model


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 64, logit_scale: float = 0.125) -> None:
        super().__init__()
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"width must be a positive number of channels, got {width!r}")
        w = width
        self.features = nn.Sequential(
            conv_bn(3, w),
            conv_bn(w, 2 * w), nn.MaxPool2d(2), Residual(2 * w),
            conv_bn(2 * w, 4 * w), nn.MaxPool2d(2),
            conv_bn(4 * w, 8 * w), nn.MaxPool2d(2), Residual(8 * w),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(8 * w, num_classes, bias=False)
        self.logit_scale = logit_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x)) * self.logit_scale


# GPU: Page's recipe (SGD nesterov 0.9, peak lr 0.4 at ~20% of training then linear to 0,
# weight decay 5e-4, label smoothing 0.2, batch 512, crop + flip), shortened to 16 epochs.
RESNET_RECIPE = Recipe(
    epochs=16, batch_size=512, lr=0.4, weight_decay=5e-4, momentum=0.9, nesterov=True,
    label_smoothing=0.2, schedule="onecycle", warmup_fraction=0.2, crop_padding=4, flip=True,
)
# CPU: the same recipe on a net a quarter as wide (1/16 of the compute), fewer epochs, so
# that a 2-core machine finishes full CIFAR-10 in about a quarter of an hour.
RESNET_CPU_RECIPE = RESNET_RECIPE.replace(epochs=5, batch_size=256, lr=0.2,
                                          model_kwargs={"width": 16})


@register_model(
    "resnet",
    "ResNet-9 style residual CNN with BatchNorm (width 64; 16 on CPU: 82% in 5 epochs)",
    recipe=RESNET_RECIPE, cpu_recipe=RESNET_CPU_RECIPE,
)
def resnet(num_classes: int = 10, width: int = 64) -> nn.Module:
    return ResNet9(num_classes, width=width)
