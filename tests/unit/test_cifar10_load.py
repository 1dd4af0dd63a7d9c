from pathlib import Path

import numpy as np
import pytest
import torch

from dlbox.data.cifar10 import CIFAR10_CLASSES, load_cifar10
from dlbox.data.synthetic import make_synthetic_images, write_fake_cifar10
from dlbox.errors import DataError


@pytest.mark.parametrize("str_keys", [False, True])
def test_load_both_key_encodings(tmp_path: Path, str_keys: bool) -> None:
    write_fake_cifar10(tmp_path, n_train=50, n_test=20, seed=3, str_keys=str_keys)
    train = load_cifar10(tmp_path, "train")
    test = load_cifar10(tmp_path, "test")
    assert train.images.shape == (50, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.labels.shape == (20,) and test.labels.dtype == torch.int64
    assert train.classes == CIFAR10_CLASSES
    expected, labels = make_synthetic_images(20, seed=4)
    assert np.array_equal(test.images.numpy(), expected)
    assert np.array_equal(test.labels.numpy(), labels)


def test_missing_dir_is_a_data_error_with_hint(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_cifar10(tmp_path / "nowhere")
    assert "dlbox data fetch" in (info.value.hint or "")


def test_corrupt_batch_is_a_data_error(tmp_path: Path) -> None:
    directory = write_fake_cifar10(tmp_path, n_train=10, n_test=10)
    (directory / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="test_batch"):
        load_cifar10(tmp_path, "test")
