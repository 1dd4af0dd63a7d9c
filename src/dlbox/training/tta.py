"""Test-time augmentation: average a model's logits over flipped and shifted views of each image.

Level 2 (airbench's scheme, arXiv 2404.00498) uses 6 views per image, weighted as if each
view were drawn at random: the image is mirrored left-right half the time, and half the
time it is moved by one pixel, up-and-left or down-and-right (a quarter each), the gap
filled by reflection:

    view                        weight
    identity                    1/4
    mirror                      1/4
    shift (-1, -1)              1/8
    shift (-1, -1) + mirror     1/8
    shift (+1, +1)              1/8
    shift (+1, +1) + mirror     1/8

Level 1 is identity + mirror (1/2 each); level 0 is the plain model. Views are built by
indexing, so they work on uint8 and float batches alike, on any device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from dlbox.data.augment import keep_layout

ModelFn = Callable[[torch.Tensor], torch.Tensor]

TTA_LEVELS = (0, 1, 2)


@dataclass(frozen=True)
class View:
    """One test-time view: shift the content by (dy, dx) pixels, then mirror if `flip`."""

    name: str
    dy: int
    dx: int
    flip: bool
    weight: float


def views_for_level(level: int = 2) -> tuple[View, ...]:
    """The views of a TTA level and their weights (which sum to 1)."""
    if level == 0:
        return (View("identity", 0, 0, False, 1.0),)
    if level == 1:
        return (View("identity", 0, 0, False, 0.5), View("mirror", 0, 0, True, 0.5))
    if level == 2:
        return (
            View("identity", 0, 0, False, 0.25),
            View("mirror", 0, 0, True, 0.25),
            View("shift_up_left", -1, -1, False, 0.125),
            View("shift_up_left_mirror", -1, -1, True, 0.125),
            View("shift_down_right", 1, 1, False, 0.125),
            View("shift_down_right_mirror", 1, 1, True, 0.125),
        )
    raise ValueError(f"unknown TTA level {level}; use one of {TTA_LEVELS}")


def _reflect_index(length: int, shift: int, device: torch.device) -> torch.Tensor:
    """Source index of each output position when content moves by `shift` (reflect fill)."""
    pos = torch.arange(length, device=device) - shift
    if length == 1:
        return torch.zeros_like(pos)
    period = 2 * (length - 1)
    pos = torch.remainder(pos, period)
    return torch.where(pos >= length, period - pos, pos)


def shift_reflect(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Move the content of a batch [N, C, H, W] by dy rows and dx columns (positive: down /
    right); the uncovered border is filled by reflection, as torch's 'reflect' padding."""
    if images.dim() != 4:
        raise ValueError(f"expected a batch [N, C, H, W], got shape {tuple(images.shape)}")
    out = images
    if dy:
        out = out.index_select(2, _reflect_index(images.shape[2], dy, images.device))
    if dx:
        out = out.index_select(3, _reflect_index(images.shape[3], dx, images.device))
    return out


def make_view(images: torch.Tensor, view: View) -> torch.Tensor:
    """One view of a batch, in the batch's memory format (index_select would give a
    channels_last batch's shifted views the default layout: a second graph under compile)."""
    out = shift_reflect(images, view.dy, view.dx)
    return keep_layout(out.flip(3) if view.flip else out, images)


def with_tta(model_fn: ModelFn, level: int = 2) -> ModelFn:
    """Wrap `model_fn` (batch -> logits [B, C]) so it returns the weighted mean of its logits
    over the views of `level`. The batch may be uint8 (model_fn preprocesses) or float."""
    views = views_for_level(level)

    def averaged(images: torch.Tensor) -> torch.Tensor:
        total: torch.Tensor | None = None
        for view in views:
            logits = model_fn(make_view(images, view)).float() * view.weight
            total = logits if total is None else total + logits
        assert total is not None
        return total

    return averaged


@torch.no_grad()
def tta_logits(model: ModelFn, images: torch.Tensor, level: int = 2,
               batch_size: int | None = None) -> torch.Tensor:
    """Weighted-mean logits [N, C] (float32) of `model` over the TTA views of `images`
    (already preprocessed as the model expects), `batch_size` images at a time."""
    fn = with_tta(model, level)
    if batch_size is None or batch_size >= images.shape[0]:
        return fn(images)
    return torch.cat([fn(chunk) for chunk in images.split(batch_size)])
