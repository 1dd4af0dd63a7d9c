"""Patch whitening: a first conv layer whose filters decorrelate the input's small patches.

The idea (Coates & Ng 2012; used by tysam-code's hlb-CIFAR10 and Keller Jordan's airbench,
arXiv 2404.00498): take every k x k patch of some training images, estimate the covariance
of the flattened patches (C*k*k values), and use its eigenvectors, each divided by the
square root of its eigenvalue, as conv filters. The layer's outputs are then uncorrelated
with unit variance over the data: the network starts from a well-conditioned input without
learning its first layer, so that layer is frozen. Each filter is also used negated, so
that a following GELU/ReLU passes both signs of every whitened component.

Everything here is a pure function of tensors; the model owns the layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Whitening:
    """Filters [C*k*k, C, k, k] (one per eigenvector, largest eigenvalue first), the eigenvalues
    they were scaled by, and the patch mean (flattened, [C*k*k]) they were estimated around."""

    filters: torch.Tensor
    eigenvalues: torch.Tensor
    mean: torch.Tensor


def extract_patches(images: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Every kernel_size x kernel_size patch (stride 1, no padding) of float images
    [N, C, H, W], flattened in conv-weight order (c, i, j): returns [N*(H-k+1)*(W-k+1), C*k*k]."""
    if images.dim() != 4:
        raise ValueError(f"expected images [N, C, H, W], got shape {tuple(images.shape)}")
    if kernel_size < 1 or kernel_size > min(images.shape[-2:]):
        raise ValueError(f"kernel_size {kernel_size} does not fit images of size "
                         f"{tuple(images.shape[-2:])}")
    # unfold gives [N, C*k*k, L] with the C*k*k axis in (c, i, j) order, as conv weights are.
    columns = F.unfold(images.float(), kernel_size=kernel_size)
    return columns.transpose(1, 2).reshape(-1, columns.shape[1])


def patch_covariance(patches: torch.Tensor, center: bool = True
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(covariance [D, D], mean [D]) of flattened patches [M, D], in float64 for stability.

    With center=False the second moment is returned (and a zero mean), as airbench does on
    normalised images, whose mean is close to zero anyway."""
    x = patches.double()
    mean = x.mean(dim=0) if center else torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
    x = x - mean
    return (x.T @ x) / max(1, x.shape[0]), mean


def whitening_from_patches(patches: torch.Tensor, kernel_size: int, channels: int,
                           eps: float = 5e-4, center: bool = True) -> Whitening:
    """Eigen-decompose the patch covariance; filters = eigenvectors / sqrt(eigenvalue + eps).

    `eps` keeps the near-zero directions (pixel noise) from being blown up."""
    covariance, mean = patch_covariance(patches, center=center)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)  # largest first
    eigenvalues = eigenvalues.clamp_min(0.0)
    scaled = eigenvectors.T / torch.sqrt(eigenvalues + eps).unsqueeze(1)  # row r: filter r
    filters = scaled.reshape(-1, channels, kernel_size, kernel_size)
    return Whitening(filters.float(), eigenvalues.float(), mean.float())


def compute_whitening(images: torch.Tensor, kernel_size: int = 2, eps: float = 5e-4,
                      center: bool = True, max_images: int | None = 5000) -> Whitening:
    """Whitening filters for float images [N, C, H, W] (already preprocessed as the model sees
    them). Uses the first `max_images` images (airbench: 5000 suffice)."""
    if max_images is not None:
        images = images[:max_images]
    if images.shape[0] == 0:
        raise ValueError("need at least one image to estimate the patch covariance")
    patches = extract_patches(images, kernel_size)
    return whitening_from_patches(patches, kernel_size, images.shape[1], eps=eps, center=center)


def whitening_conv_params(whitening: Whitening) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight [2*D, C, k, k], bias [2*D]) for the first conv: each filter and its negation,
    the bias set so the outputs have zero mean over the estimation images."""
    weight = torch.cat([whitening.filters, -whitening.filters])
    flat = weight.reshape(weight.shape[0], -1)
    bias = -(flat @ whitening.mean)
    return weight, bias
