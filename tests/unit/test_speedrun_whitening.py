"""Patch whitening (dlbox.training.whitening) and the speedrun net's frozen first layer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlbox.models.speedrun import SpeedrunNet
from dlbox.training.whitening import (
    compute_whitening,
    extract_patches,
    patch_covariance,
    whitening_conv_params,
)


def correlated_images(n: int = 64, seed: int = 0) -> torch.Tensor:
    """Images whose neighbouring pixels and channels are strongly correlated (blurred noise
    shared across channels, plus a little independent noise)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 1, 20, 20, generator=g)
    base = F.avg_pool2d(base, 3, stride=1, padding=1)
    scale = torch.tensor([1.0, 0.8, 0.5]).view(1, 3, 1, 1)
    return base * scale + 0.05 * torch.randn(n, 3, 20, 20, generator=g) + 0.3


def test_patches_are_flattened_in_conv_weight_order() -> None:
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    patches = extract_patches(images, 2)
    assert patches.shape == (2 * 3 * 3, 3 * 2 * 2)
    # A conv with a one-hot weight picks the same value as the patch column.
    weight = torch.zeros(12, 3, 2, 2)
    weight.view(12, -1)[torch.arange(12), torch.arange(12)] = 1.0
    conv = F.conv2d(images, weight)  # [2, 12, 3, 3]
    assert torch.equal(conv.permute(0, 2, 3, 1).reshape(-1, 12), patches)


def test_whitened_patches_have_near_identity_covariance() -> None:
    images = correlated_images()
    raw_cov, _ = patch_covariance(extract_patches(images, 2))
    std = raw_cov.diagonal().sqrt()
    correlation = raw_cov / (std.unsqueeze(0) * std.unsqueeze(1))
    assert (correlation - torch.eye(12, dtype=correlation.dtype)).max() > 0.5  # really correlated
    whitening = compute_whitening(images, kernel_size=2, eps=1e-8)
    out = F.conv2d(images, whitening.filters)  # [N, 12, H-1, W-1]
    flat = out.permute(0, 2, 3, 1).reshape(-1, out.shape[1]).double()
    cov = torch.cov(flat.T)
    assert torch.allclose(cov, torch.eye(12, dtype=cov.dtype), atol=1e-3)
    assert torch.all(whitening.eigenvalues[:-1] >= whitening.eigenvalues[1:])  # largest first


def test_conv_params_pair_each_filter_with_its_negation_and_centre_the_output() -> None:
    images = correlated_images()
    whitening = compute_whitening(images, kernel_size=2, eps=5e-4)
    weight, bias = whitening_conv_params(whitening)
    assert weight.shape == (24, 3, 2, 2) and bias.shape == (24,)
    assert torch.allclose(weight[12:], -weight[:12])
    out = F.conv2d(images, weight, bias)
    assert out.mean(dim=(0, 2, 3)).abs().max() < 1e-3  # zero mean over the estimation images


def test_eps_damps_the_smallest_directions() -> None:
    images = correlated_images()
    loose = compute_whitening(images, eps=1e-1)
    tight = compute_whitening(images, eps=1e-8)
    assert loose.filters[-1].norm() < tight.filters[-1].norm()


def test_model_whitening_layer_is_frozen_and_set_from_data() -> None:
    torch.manual_seed(0)
    model = SpeedrunNet(widths=(8, 8, 8))
    assert not model.whiten.weight.requires_grad and model.whiten.bias.requires_grad
    images = correlated_images(32)
    model.init_whitening(images, eps=1e-8)
    out = model.whiten(images)[:, :12]
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12).double()
    assert torch.allclose(torch.cov(flat.T), torch.eye(12, dtype=torch.float64), atol=5e-3)


@pytest.mark.parametrize("bad", [torch.zeros(3, 8, 8), torch.zeros(0, 3, 8, 8)])
def test_bad_inputs_are_refused(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError):
        compute_whitening(bad, kernel_size=2)
