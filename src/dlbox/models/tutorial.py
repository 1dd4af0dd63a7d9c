"""The network of PyTorch's "Training a Classifier" (CIFAR-10) tutorial, layer for layer.

conv 3->6 (5x5), max-pool 2, conv 6->16 (5x5), max-pool 2, then fully connected
400 -> 120 -> 84 -> classes, with ReLU after every layer but the last.
Its default recipe is the tutorial's own: inputs normalised to -1..1 (its
`Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))`), SGD with lr 0.001 and momentum 0.9, batches
of 4, 2 epochs, no augmentation, which lands near the tutorial's 54% test accuracy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlbox.models.registry import Recipe, register_model


class TutorialNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


TUTORIAL_RECIPE = Recipe(
    epochs=2, batch_size=4, lr=0.001, weight_decay=0.0, momentum=0.9, nesterov=False,
    label_smoothing=0.0, schedule="constant", warmup_fraction=0.0, crop_padding=0, flip=False,
    mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
    # one thread: an epoch took 23.6 s on one and 23.2 s on two quiet cores, but 20.5 s on
    # one and 28.1 s on two while another process used a core (review: 40 times slower on a
    # 2-core machine under load, every thread waiting on the others at each small step)
    threads=1,
)


@register_model("tutorial", "the CNN of PyTorch's 'Training a Classifier' tutorial (2 conv, 3 fc)",
                recipe=TUTORIAL_RECIPE)
def tutorial(num_classes: int = 10) -> nn.Module:
    return TutorialNet(num_classes)
