"""The one in-memory form every loader returns: uint8 images and int64 labels, whole splits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from dlbox.errors import UsageError


@dataclass(frozen=True)
class ImageDataset:
    """A whole split in memory.

    images: uint8 tensor [N, 3, H, W] (CIFAR-10: H = W = 32), channels RGB.
    labels: int64 tensor [N], indexes into `classes`.
    classes: class names, in label order.
    source: where it came from (a path), for manifests and messages.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    source: str = ""

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be uint8 [N, 3, H, W], got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError("labels must be int64 [N] with one label per image")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, count: int | None) -> ImageDataset:
        """The first `count` images (all when None): for quick runs on small data.

        Every loader returns a split in an order whose first images cover every class: the
        CIFAR-10 batches in their official (already shuffled) order, an image tree
        interleaved across classes (dlbox.data.imagefolder.list_image_files). So the first N
        are a balanced, deterministic sample, and index i means the same image in the subset
        as in the whole split."""
        if count is not None and count < 1:  # images[:-5] would keep all but 5, silently
            raise UsageError(f"a subset of {count} images was asked for",
                             hint="ask for 1 image or more, or None for all of them")
        if count is None or count >= len(self):
            return self
        return ImageDataset(self.images[:count], self.labels[:count], self.classes, self.source)


def data_fingerprint(*splits: ImageDataset) -> str:
    """A sha256 of the splits' labels and a checksum of each image, in order: another image
    or label under the same classes and counts (an image tree's class folders swapped, one
    image moved to another class) changes it. Each image's bytes are summed as 64-bit words
    (wrapping, so exact and the same on every machine): milliseconds for CIFAR-10's 60,000
    images, where a pixel sum took half a second. A checkpoint keeps it; a resume compares."""
    digest = hashlib.sha256()
    for split in splits:
        images = split.images.cpu().contiguous().reshape(len(split), -1)
        if images.shape[1] % 8:  # whole 64-bit words: pad each image's bytes with zeros
            images = torch.nn.functional.pad(images, (0, 8 - images.shape[1] % 8))
        sums = images.view(torch.int64).sum(dim=1)
        digest.update(split.labels.cpu().numpy().tobytes())
        digest.update(sums.numpy().tobytes())
    return digest.hexdigest()
