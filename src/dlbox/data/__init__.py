"""Data: fetch and verify CIFAR-10, load it (or an image folder) into uint8 tensors, augment.

    from dlbox.data import load_dataset, resolve_data_dir
    train = load_dataset(resolve_data_dir(None), "train")   # ImageDataset, uint8 [N,3,32,32]
"""

from dlbox.data.cifar10 import CIFAR10_CLASSES, load_cifar10
from dlbox.data.dataset import ImageDataset
from dlbox.data.imagefolder import load_image_folder
from dlbox.data.loading import detect_layout, load_dataset
from dlbox.data.paths import resolve_data_dir

__all__ = [
    "CIFAR10_CLASSES",
    "ImageDataset",
    "detect_layout",
    "load_cifar10",
    "load_dataset",
    "load_image_folder",
    "resolve_data_dir",
]
