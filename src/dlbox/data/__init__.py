"""Data: fetch and verify CIFAR-10, load it (or an image folder) into uint8 tensors, augment.

    from dlbox.data import load_dataset, resolve_data_dir
    train = load_dataset(resolve_data_dir(None), "train")   # ImageDataset, uint8 [N,3,32,32]

The names below load on first use, so importing a torch-free part of the package (paths,
layout, fetch, extract: what `dlbox data fetch` and the CLI's start-up need) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlbox.data.cifar10 import load_cifar10
    from dlbox.data.dataset import ImageDataset
    from dlbox.data.imagefolder import load_image_folder
    from dlbox.data.layout import CIFAR10_CLASSES
    from dlbox.data.loading import detect_layout, load_dataset
    from dlbox.data.paths import resolve_data_dir

_WHERE = {
    "CIFAR10_CLASSES": "dlbox.data.layout",
    "ImageDataset": "dlbox.data.dataset",
    "detect_layout": "dlbox.data.loading",
    "load_cifar10": "dlbox.data.cifar10",
    "load_dataset": "dlbox.data.loading",
    "load_image_folder": "dlbox.data.imagefolder",
    "resolve_data_dir": "dlbox.data.paths",
}

__all__ = [
    "CIFAR10_CLASSES",
    "ImageDataset",
    "detect_layout",
    "load_cifar10",
    "load_dataset",
    "load_image_folder",
    "resolve_data_dir",
]


_SUBMODULES = ("augment", "cifar10", "dataset", "extract", "fetch", "imagefolder", "layout",
               "loading", "paths", "synthetic")


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    if name in _SUBMODULES:  # `import dlbox.data` then `dlbox.data.loading.load_dataset(...)`
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'dlbox.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE) | set(_SUBMODULES))
