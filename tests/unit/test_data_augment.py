"""Batch augmentation: shapes, dtypes, devices, and that the ops do what they claim."""

import pytest
import torch
import torch.nn.functional as F

from dlbox.data.augment import (
    AugmentConfig,
    augment_batch,
    crop_at,
    flip_where,
    random_crop,
    random_cutout,
    random_hflip,
    random_translate,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def batch(n: int = 16, dtype: torch.dtype = torch.uint8, size: int = 8,
          device: str = "cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.int64)
    return x.to(dtype=dtype, device=device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float16, torch.int64])
def test_shapes_dtypes_devices_preserved(device: str, dtype: torch.dtype) -> None:
    x = batch(dtype=dtype, device=device)
    g = torch.Generator(device=device).manual_seed(1)
    for out in (random_hflip(x, g), random_crop(x, 2, g), random_crop(x, 2, g, mode="zeros"),
                random_translate(x, 2, g), augment_batch(x, AugmentConfig(), g)):
        assert out.shape == x.shape and out.dtype == dtype and out.device == x.device


def test_flip_really_mirrors_and_labels_stay_aligned() -> None:
    x = batch(n=64)
    labels = torch.arange(64)
    out = random_hflip(x, torch.Generator().manual_seed(3))
    flipped = torch.tensor([torch.equal(out[i], x[i].flip(-1)) for i in range(64)])
    same = torch.tensor([torch.equal(out[i], x[i]) for i in range(64)])
    assert bool((flipped | same).all())  # each image is itself or its mirror, in place
    assert 10 < int(flipped.sum()) < 54  # roughly half, with margin
    assert torch.equal(labels, torch.arange(64))  # augmentation never reorders the batch


def test_flip_where_exact() -> None:
    x = torch.arange(2 * 1 * 2 * 3, dtype=torch.float32).view(2, 1, 2, 3)
    out = flip_where(x, torch.tensor([True, False]))
    assert out[0, 0, 0].tolist() == [2.0, 1.0, 0.0]
    assert torch.equal(out[1], x[1])


@pytest.mark.parametrize("mode,torch_mode", [("reflect", "reflect"), ("zeros", "constant")])
def test_crop_at_matches_pad_then_slice(mode: str, torch_mode: str) -> None:
    x = batch(n=9, dtype=torch.float32, size=6)
    p = 3
    oy = torch.arange(9) % (2 * p + 1)
    ox = torch.flip(oy, [0])
    out = crop_at(x, p, oy, ox, mode)  # type: ignore[arg-type]
    padded = F.pad(x, (p, p, p, p), mode=torch_mode)
    for i in range(9):
        window = padded[i, :, oy[i]:oy[i] + 6, ox[i]:ox[i] + 6]
        assert torch.equal(out[i], window)
    centre = crop_at(x, p, torch.full((9,), p), torch.full((9,), p), mode)  # type: ignore[arg-type]
    assert torch.equal(centre, x)


@pytest.mark.parametrize("mode", ["reflect", "zeros"])
def test_random_crop_is_a_shifted_window_within_padding(mode: str) -> None:
    x = batch(n=32, dtype=torch.float32, size=8) + 1  # no zeros in the content
    p = 2
    out = random_crop(x, p, torch.Generator().manual_seed(5), mode=mode)  # type: ignore[arg-type]
    torch_mode = "reflect" if mode == "reflect" else "constant"
    padded = F.pad(x, (p, p, p, p), mode=torch_mode)
    offsets_seen = set()
    for i in range(32):
        matches = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                   if torch.equal(out[i], padded[i, :, dy:dy + 8, dx:dx + 8])]
        assert matches, f"image {i} is not a window of its padded input"
        dy, dx = matches[0]
        assert abs(dy - p) <= p and abs(dx - p) <= p
        offsets_seen.add((dy, dx))
    assert len(offsets_seen) > 5  # offsets really vary per image


def test_generator_makes_it_reproducible() -> None:
    x = batch(n=32)
    a = augment_batch(x, generator=torch.Generator().manual_seed(7))
    b = augment_batch(x, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_channels_last_kept() -> None:
    x = batch(n=4, dtype=torch.float32).contiguous(memory_format=torch.channels_last)
    out = random_crop(x, 2)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_edge_cases() -> None:
    empty = torch.zeros(0, 3, 8, 8, dtype=torch.uint8)
    assert random_crop(empty, 4).shape == empty.shape
    assert random_hflip(empty).shape == empty.shape
    x = batch(n=2)
    assert torch.equal(random_crop(x, 0), x)
    with pytest.raises(ValueError):
        random_crop(x, 8)  # reflect padding must be smaller than the image
    with pytest.raises(ValueError):
        random_crop(x[0], 2)  # not a batch
    with pytest.raises(ValueError):
        crop_at(x, 1, torch.zeros(2), torch.zeros(2), mode="wrap")  # type: ignore[arg-type]


@pytest.mark.gpu
def test_runs_on_cuda_with_cuda_generator() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    x = batch(n=128, device="cuda")
    g = torch.Generator(device="cuda").manual_seed(0)
    out = augment_batch(x, AugmentConfig(crop_padding=4), g)
    assert out.is_cuda and out.shape == x.shape
    cpu = crop_at(x.cpu(), 4, torch.arange(128) % 9, torch.arange(128) % 7)
    gpu = crop_at(x, 4, (torch.arange(128) % 9).cuda(), (torch.arange(128) % 7).cuda())
    assert torch.equal(cpu, gpu.cpu())


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_cutout_covers_one_square_of_the_given_size_inside_each_image(dtype: torch.dtype) -> None:
    x = batch(n=32, dtype=dtype, size=10) + 1  # no pixel is 0 before the cutout
    out = random_cutout(x, 4, fill=(0.0, 0.0, 0.0), generator=torch.Generator().manual_seed(3))
    assert out.shape == x.shape and out.dtype == x.dtype
    covered = (out != x).any(dim=1)  # [N, H, W]: where any channel changed
    for image in covered:
        rows = image.any(dim=1).nonzero().flatten()
        cols = image.any(dim=0).nonzero().flatten()
        assert len(rows) == 4 and len(cols) == 4  # a 4x4 square, wholly inside
        assert int(rows[-1] - rows[0]) == 3 and int(cols[-1] - cols[0]) == 3
        assert int(image.sum()) == 16
    assert torch.equal(out[out != x], torch.zeros_like(out[out != x]))
    tops = {int((o != i).any(dim=0).any(dim=1).nonzero()[0]) for o, i in zip(out, x, strict=True)}
    assert len(tops) > 1  # the place is random per image


def test_cutout_fills_per_channel_and_keeps_the_layout() -> None:
    x = batch(n=4, size=8).contiguous(memory_format=torch.channels_last)
    out = random_cutout(x, 8, fill=(10.4, 20.6, 30.0))  # the whole image
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert out[:, 0].unique().tolist() == [10] and out[:, 1].unique().tolist() == [21]
    assert torch.equal(random_cutout(x, 0), x)
    with pytest.raises(ValueError, match="larger than the images"):
        random_cutout(x, 9)


def test_a_negative_padding_or_shift_is_a_value_error_like_crop_ats() -> None:
    images = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        random_crop(images, -1)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        random_translate(images, -2)


def test_augment_batch_is_crop_then_flip_then_cutout_as_configured() -> None:
    """The training loop's augmentation is augment_batch: the same draws, in that order, as
    the three ops called one after another (so a resumed run's batches stay the same)."""
    x = batch(n=32, size=16)
    config = AugmentConfig(crop_padding=2, flip=True, cutout=5, cutout_fill=(10.0, 20.0, 30.0))
    out = augment_batch(x, config, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    by_hand = random_cutout(random_hflip(random_crop(x, 2, g), g), 5, (10.0, 20.0, 30.0), g)
    assert torch.equal(out, by_hand)
    covered = (out == torch.tensor([10, 20, 30], dtype=torch.uint8).view(1, 3, 1, 1)).all(1)
    assert (covered.flatten(1).sum(1) >= 25).all()  # each image has its 5 x 5 square
    assert torch.equal(augment_batch(x, AugmentConfig(crop_padding=0, flip=False, cutout=0)), x)
