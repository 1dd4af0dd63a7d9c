"""Small synthetic CIFAR-10 look-alikes for tests, quick checks and the notebook's smoke run.

The images are learnable: each class has its own colour and stripe pattern, plus noise, so a
model trained on them for one epoch does measurably better than chance.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from dlbox.data.cifar10 import BATCHES_DIRNAME, CIFAR10_CLASSES, META_FILE, TRAIN_BATCHES


def make_synthetic_images(count: int, seed: int = 0, num_classes: int = 10,
                          size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [count, 3, size, size], int64 [count]) with balanced, class-dependent patterns."""
    rng = np.random.default_rng(seed % 2**64)  # any seed a run takes (numpy's are >= 0)
    labels = np.arange(count, dtype=np.int64) % num_classes
    rng.shuffle(labels)
    palette = np.random.default_rng(1234).integers(40, 216, size=(num_classes, 3))
    yy, xx = np.mgrid[0:size, 0:size]
    images = np.empty((count, 3, size, size), dtype=np.uint8)
    for i, label in enumerate(labels):
        period = 2 + int(label) % 5
        stripes = ((xx if label % 2 else yy) // period) % 2  # direction and width by class
        base = palette[label][:, None, None] * (0.6 + 0.4 * stripes[None])
        noise = rng.normal(0, 18, size=(3, size, size))
        images[i] = np.clip(base + noise, 0, 255).astype(np.uint8)
    return images, labels


def _batch_record(images: np.ndarray, labels: np.ndarray, name: str) -> dict[bytes, object]:
    return {
        b"batch_label": name.encode(),
        b"labels": [int(x) for x in labels],
        b"data": images.reshape(len(images), int(np.prod(images.shape[1:]))),
        b"filenames": [f"synthetic_{i:05d}.png".encode() for i in range(len(images))],
    }


def write_fake_cifar10(root: str | Path, n_train: int = 500, n_test: int = 100, seed: int = 0,
                       str_keys: bool = False) -> Path:
    """Write ROOT/cifar-10-batches-py in the official layout; returns that folder.

    `str_keys` writes the dict keys as str (as a Python 3 re-pickle would) instead of bytes.
    """
    directory = Path(root) / BATCHES_DIRNAME
    directory.mkdir(parents=True, exist_ok=True)
    train_x, train_y = make_synthetic_images(n_train, seed)
    test_x, test_y = make_synthetic_images(n_test, seed + 1)
    chunks = np.array_split(np.arange(n_train), len(TRAIN_BATCHES))
    records = {name: _batch_record(train_x[idx], train_y[idx], name)
               for name, idx in zip(TRAIN_BATCHES, chunks, strict=True)}
    records["test_batch"] = _batch_record(test_x, test_y, "test_batch")
    records[META_FILE] = {b"label_names": [c.encode() for c in CIFAR10_CLASSES],
                          b"num_cases_per_batch": max(1, n_train // 5), b"num_vis": 3072}
    for name, record in records.items():
        to_write: dict[Any, object] = record
        if str_keys:
            to_write = {k.decode(): v for k, v in record.items()}
        with open(directory / name, "wb") as handle:
            pickle.dump(to_write, handle, protocol=2)
    (directory / "readme.html").write_text("<html>synthetic CIFAR-10 for tests</html>\n")
    return directory


def write_fake_cifar10_archive(path: str | Path, n_train: int = 500, n_test: int = 100,
                               seed: int = 0) -> Path:
    """A cifar-10-python.tar.gz look-alike at `path`, members as in the official archive."""
    import tempfile

    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        directory = write_fake_cifar10(tmp, n_train, n_test, seed)
        with tarfile.open(path, "w:gz") as tar:
            tar.add(directory, arcname=BATCHES_DIRNAME, recursive=False)
            for member in sorted(directory.iterdir()):
                tar.add(member, arcname=f"{BATCHES_DIRNAME}/{member.name}")
    return path


def write_fake_image_folder(root: str | Path, per_class: int = 5, classes: int = 3,
                            seed: int = 0, fmt: str = "png") -> Path:
    """ROOT/<class>/NNNN.<fmt>, the ImageFolder layout."""
    from PIL import Image

    root = Path(root)
    images, labels = make_synthetic_images(per_class * classes, seed, num_classes=classes)
    counts = [0] * classes
    for image, label in zip(images, labels, strict=True):
        folder = root / f"class_{int(label)}"
        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        pil_format = fmt.upper().replace("JPG", "JPEG")
        Image.fromarray(image.transpose(1, 2, 0)).save(buffer, format=pil_format)
        (folder / f"{counts[label]:04d}.{fmt}").write_bytes(buffer.getvalue())
        counts[label] += 1
    return root
