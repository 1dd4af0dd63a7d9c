"""CIFAR-10 in its official Python-pickle layout: load the batches into one tensor per split.

Layout on disk (as the official archive extracts):
    DATA_DIR/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta, readme.html}
Each batch is a Python 2 pickle of a dict: data (uint8 [10000, 3072], rows of R, G, B planes
of 32x32), labels (list of int), batch_label, filenames. Unpickled with encoding="bytes" the
keys are bytes (b"data"); with encoding="latin1" they are str ("data"). Both are accepted, and
so are files re-pickled by Python 3.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlbox.data.dataset import ImageDataset
from dlbox.data.layout import (
    BATCHES_DIRNAME,
    CIFAR10_CLASSES,
    META_FILE,
    SPLITS,
    TEST_BATCHES,
    TRAIN_BATCHES,
    batches_dir,
)
from dlbox.errors import DataError

# The layout's names, re-exported: they live in dlbox.data.layout, which needs no torch.
__all__ = ["BATCHES_DIRNAME", "CIFAR10_CLASSES", "META_FILE", "SPLITS", "TEST_BATCHES",
           "TRAIN_BATCHES", "batches_dir", "load_cifar10", "read_batch", "read_batch_file",
           "read_class_names"]


def _get(record: dict[Any, Any], key: str) -> Any:
    """A field of an unpickled batch, whichever encoding made its keys."""
    if key in record:
        return record[key]
    bkey = key.encode("ascii")
    if bkey in record:
        return record[bkey]
    raise KeyError(key)


def read_batch_file(path: Path) -> dict[Any, Any]:
    # The batches are trusted only after `dlbox data fetch` checked the archive's checksum;
    # pickle can run code, so never point this at files of unknown origin.
    try:
        with open(path, "rb") as handle:
            record = pickle.load(handle, encoding="bytes")
    except FileNotFoundError:
        raise DataError(
            f"CIFAR-10 batch file {path} is missing",
            hint="run `dlbox data fetch` (or pass --data DIR pointing at the extracted data)",
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise DataError(
            f"CIFAR-10 batch file {path} is not a valid pickle ({error})",
            hint="run `dlbox data check`, then `dlbox data fetch --force` to extract it again",
        ) from None
    if not isinstance(record, dict):
        raise DataError(f"CIFAR-10 batch file {path} does not hold a dict",
                        hint="run `dlbox data fetch --force` to extract it again")
    return record


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as (uint8 [N, 3, 32, 32], int64 [N])."""
    record = read_batch_file(path)
    try:
        data = np.asarray(_get(record, "data"), dtype=np.uint8)
        labels = np.asarray(_get(record, "labels"), dtype=np.int64)
    except KeyError as missing:
        raise DataError(f"CIFAR-10 batch file {path} has no '{missing.args[0]}' field",
                        hint="run `dlbox data fetch --force` to extract it again") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise DataError(f"CIFAR-10 batch file {path} has data of shape {data.shape} "
                        f"for {labels.shape[0]} labels",
                        hint="run `dlbox data fetch --force` to extract it again")
    return data.reshape(-1, 3, 32, 32), labels


def read_class_names(directory: Path) -> tuple[str, ...]:
    path = directory / META_FILE
    if not path.exists():
        return CIFAR10_CLASSES
    names = _get(read_batch_file(path), "label_names")
    return tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)


def load_cifar10(data_dir: str | Path, split: str = "train") -> ImageDataset:
    """Load a whole split into memory as uint8 tensors (about 150 MB for train)."""
    if split not in SPLITS:
        raise DataError(f"unknown split '{split}'", hint=f"use one of {', '.join(SPLITS)}")
    directory = batches_dir(data_dir)
    if not directory.is_dir():
        raise DataError(
            f"no CIFAR-10 data at {directory}",
            hint="run `dlbox data fetch` (offline: `dlbox data fetch --from "
                 "/path/to/cifar-10-python.tar.gz`) or pass --data DIR",
        )
    names = TRAIN_BATCHES if split == "train" else TEST_BATCHES
    parts = [read_batch(directory / name) for name in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    classes = read_class_names(directory)
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        raise DataError(f"CIFAR-10 labels in {directory} fall outside 0..{len(classes) - 1}",
                        hint="run `dlbox data fetch --force` to extract it again")
    return ImageDataset(torch.from_numpy(images), torch.from_numpy(labels), classes, str(directory))
