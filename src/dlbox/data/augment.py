"""Batch augmentation as pure tensor ops: whole batches [N, C, H, W], any device, any dtype.

No Python loop over images: per-image random choices are drawn as tensors and applied by
indexing, so the same code runs on uint8 images on the GPU and on float batches on the CPU.
Pass a `torch.Generator` on the images' device for reproducible draws (None: torch's
default generator for that device).

    images = random_crop(images, padding=4, generator=g)   # pad 4, crop 32x32 back
    images = random_hflip(images, generator=g)              # mirror half of them
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

PadMode = Literal["reflect", "zeros"]
PAD_MODES: tuple[str, ...] = ("reflect", "zeros")


@dataclass(frozen=True)
class AugmentConfig:
    """The training-time augmentation: random crop after padding, then a horizontal flip,
    then (when `cutout` > 0) a `cutout` x `cutout` square filled with `cutout_fill`."""

    crop_padding: int = 4  # 0 disables the crop
    flip: bool = True
    pad_mode: PadMode = "reflect"
    cutout: int = 0  # 0 disables cutout
    cutout_fill: tuple[float, ...] | None = None  # a value per channel, in the images' units


def _check_batch(images: torch.Tensor) -> None:
    if images.dim() != 4:
        raise ValueError(f"expected a batch [N, C, H, W], got shape {tuple(images.shape)}")


def keep_layout(result: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Return `result` in the memory format of `like` (channels_last stays channels_last)."""
    if like.is_contiguous(memory_format=torch.channels_last) and not like.is_contiguous():
        return result.contiguous(memory_format=torch.channels_last)
    return result.contiguous()


def flip_where(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror left-right the images whose entry of `mask` (bool [N]) is True."""
    _check_batch(images)
    mask = mask.to(device=images.device, dtype=torch.bool).view(-1, 1, 1, 1)
    return torch.where(mask, images.flip(3), images)


def random_hflip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability 0.5 (independently per image)."""
    _check_batch(images)
    mask = torch.rand(images.shape[0], generator=generator, device=images.device) < 0.5
    return flip_where(images, mask)


def _source_index(offsets: torch.Tensor, length: int, padding: int,
                  mode: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Indexes into the unpadded axis for each output position, and where they fall inside.

    Output position j of image n reads padded position offsets[n] + j, i.e. original
    position offsets[n] + j - padding, mapped back inside by reflection (mode "reflect",
    as torch's reflect padding: no edge repeat) or marked invalid (mode "zeros").
    """
    pos = offsets.view(-1, 1) + torch.arange(length, device=offsets.device).view(1, -1) - padding
    if mode == "reflect":
        if length == 1:
            return torch.zeros_like(pos), None
        period = 2 * (length - 1)
        pos = torch.remainder(pos, period)
        pos = torch.where(pos >= length, period - pos, pos)
        return pos, None
    valid = (pos >= 0) & (pos < length)
    return pos.clamp(0, length - 1), valid


def crop_at(images: torch.Tensor, padding: int, offsets_y: torch.Tensor, offsets_x: torch.Tensor,
            mode: PadMode = "reflect") -> torch.Tensor:
    """Pad each image by `padding` and cut the HxW window at (offsets_y[n], offsets_x[n]).

    Offsets lie in 0..2*padding; offset == padding returns the image unchanged. The padding is
    never materialised: output pixels index the input directly.
    """
    _check_batch(images)
    if mode not in PAD_MODES:
        raise ValueError(f"unknown pad mode {mode!r}; use one of {PAD_MODES}")
    if padding < 0:
        raise ValueError("padding must be >= 0")
    n, _, height, width = images.shape
    if n == 0 or padding == 0:
        return images.clone()
    if mode == "reflect" and (padding >= height or padding >= width):
        raise ValueError(f"reflect padding {padding} must be smaller than the image "
                         f"({height}x{width})")
    device = images.device
    offsets_y = offsets_y.to(device=device, dtype=torch.long)
    offsets_x = offsets_x.to(device=device, dtype=torch.long)
    rows, row_ok = _source_index(offsets_y, height, padding, mode)  # [N, H]
    cols, col_ok = _source_index(offsets_x, width, padding, mode)  # [N, W]
    batch = torch.arange(n, device=device).view(n, 1, 1)
    # Advanced indexes split by a slice put their dims first: result is [N, H, W, C].
    out = images[batch, :, rows.view(n, height, 1), cols.view(n, 1, width)]
    out = out.permute(0, 3, 1, 2)
    if row_ok is not None and col_ok is not None:
        inside = (row_ok.view(n, 1, height, 1) & col_ok.view(n, 1, 1, width))
        out = torch.where(inside, out, torch.zeros((), dtype=out.dtype, device=device))
    return keep_layout(out, images)


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator | None = None,
                mode: PadMode = "reflect") -> torch.Tensor:
    """Pad by `padding` (reflect or zeros) and crop back to HxW at a random offset per image."""
    _check_batch(images)
    if padding < 0:  # else torch.randint's "random_ expects 'from' to be less than 'to'"
        raise ValueError("padding must be >= 0")
    n = images.shape[0]
    if padding == 0 or n == 0:
        return images.clone()
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=images.device)
    return crop_at(images, padding, offsets[0], offsets[1], mode)


def random_cutout(images: torch.Tensor, size: int, fill: Sequence[float] | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Cover one `size` x `size` square per image, at a random place wholly inside it, with
    `fill` (a value per channel, in the images' units; None: 0). Cutout (DeVries & Taylor,
    2017), as airbench96 uses it: with the channel means as `fill` the square is 0 after
    normalisation."""
    _check_batch(images)
    n, c, h, w = images.shape
    if size <= 0 or n == 0:
        return images.clone()
    if size > min(h, w):
        raise ValueError(f"cutout size {size} is larger than the images ({h}x{w})")
    top = torch.randint(0, h - size + 1, (n,), generator=generator, device=images.device)
    left = torch.randint(0, w - size + 1, (n,), generator=generator, device=images.device)
    rows = torch.arange(h, device=images.device).view(1, h)
    cols = torch.arange(w, device=images.device).view(1, w)
    inside_rows = (rows >= top.view(n, 1)) & (rows < top.view(n, 1) + size)
    inside_cols = (cols >= left.view(n, 1)) & (cols < left.view(n, 1) + size)
    mask = (inside_rows.view(n, 1, h, 1) & inside_cols.view(n, 1, 1, w))
    filler = _cutout_fill(tuple(fill) if fill is not None else (0.0,) * c, images.device,
                          images.dtype)
    return keep_layout(torch.where(mask, filler.view(1, c, 1, 1), images), images)


@functools.lru_cache(maxsize=16)
def _cutout_fill(fill: tuple[float, ...], device: torch.device,
                 dtype: torch.dtype) -> torch.Tensor:
    """The fill values on the images' device, made once: a copy to a GPU on every call
    would make the host wait for the GPU's queue each time."""
    values = torch.tensor(fill, dtype=torch.float32)
    values = values.to(dtype) if dtype.is_floating_point else values.round().to(dtype)
    return values.to(device)


def random_translate(images: torch.Tensor, max_shift: int,
                     generator: torch.Generator | None = None,
                     mode: PadMode = "zeros") -> torch.Tensor:
    """Shift each image by up to `max_shift` pixels in x and y, filling the gap (zeros default)."""
    return random_crop(images, max_shift, generator=generator, mode=mode)


def augment_batch(images: torch.Tensor, config: AugmentConfig = AugmentConfig(),
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply `config` (crop, then flip, then cutout) to a whole batch."""
    if config.crop_padding:
        images = random_crop(images, config.crop_padding, generator=generator,
                             mode=config.pad_mode)
    if config.flip:
        images = random_hflip(images, generator=generator)
    if config.cutout:
        images = random_cutout(images, config.cutout, config.cutout_fill, generator=generator)
    return images
