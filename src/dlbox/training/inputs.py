"""The model input: one normalisation of uint8 images, used by every trainer, evaluate and
predict, so a model sees exactly the same numbers in training as it does afterwards.

    x = prepare_batch(images, device, channels_last=True)   # uint8 [N, 3, H, W] -> float
"""

from __future__ import annotations

import functools

import torch

# Per-channel mean and standard deviation of the CIFAR-10 training images (RGB, 0..1).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def prepare_batch(images: torch.Tensor, device: torch.device | str, channels_last: bool = False,
                  dtype: torch.dtype = torch.float32,
                  mean: tuple[float, ...] | None = None,
                  std: tuple[float, ...] | None = None) -> torch.Tensor:
    """uint8 images [N, 3, H, W] -> normalised float model input on `device`.

    Scales to 0..1, subtracts the per-channel `mean` and divides by `std` (default: the
    CIFAR-10 training set's), in `dtype`, in channels_last memory format when asked.
    """
    mean = CIFAR10_MEAN if mean is None else mean
    std = CIFAR10_STD if std is None else std
    x = images.to(device, non_blocking=True)
    scale, shift = _normaliser(tuple(mean), tuple(std), dtype, x.device)
    # (x / 255 - mean) / std as one multiply-add: x * scale + shift.
    x = torch.addcmul(shift, x.to(dtype), scale)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


@functools.lru_cache(maxsize=16)
def _normaliser(mean: tuple[float, ...], std: tuple[float, ...], dtype: torch.dtype,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """scale and shift as [1, C, 1, 1] tensors on `device`, made once: a tensor built from a
    list on a GPU is a host-to-device copy that waits for the GPU, twice a step otherwise."""
    mean_t = torch.tensor(mean, dtype=torch.float64).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float64).view(1, -1, 1, 1)
    scale = (1.0 / (255.0 * std_t)).to(device=device, dtype=dtype)
    shift = (-mean_t / std_t).to(device=device, dtype=dtype)
    return scale, shift
