"""Test-time augmentation (dlbox.training.tta): the 6 views, their weights, the averaging."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlbox.training.evaluate import build_model_fn, with_flip_tta
from dlbox.training.tta import (
    TTA_LEVELS,
    make_view,
    shift_reflect,
    tta_logits,
    views_for_level,
    with_tta,
)


def images(n: int = 5, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    x = torch.randint(0, 256, (n, 3, 8, 8), generator=torch.Generator().manual_seed(1))
    return x.to(dtype)


def linear_model(num_classes: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, num_classes))


def test_level_two_has_six_views_weighted_as_published() -> None:
    views = views_for_level(2)
    assert len(views) == 6
    weights = {(v.dy, v.dx, v.flip): v.weight for v in views}
    assert weights == {(0, 0, False): 0.25, (0, 0, True): 0.25,
                       (-1, -1, False): 0.125, (-1, -1, True): 0.125,
                       (1, 1, False): 0.125, (1, 1, True): 0.125}
    for level in TTA_LEVELS:
        assert sum(v.weight for v in views_for_level(level)) == pytest.approx(1.0)
    assert len(views_for_level(0)) == 1 and len(views_for_level(1)) == 2
    with pytest.raises(ValueError):
        views_for_level(3)


@pytest.mark.parametrize("dy,dx", [(1, 1), (-1, -1), (2, -1), (0, 3)])
def test_shift_matches_reflect_pad_then_crop(dy: int, dx: int) -> None:
    x = images()
    pad = 3
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    expected = padded[:, :, pad - dy:pad - dy + 8, pad - dx:pad - dx + 8]
    assert torch.equal(shift_reflect(x, dy, dx), expected)


def test_views_work_on_uint8_and_flip_mirrors() -> None:
    x = images(dtype=torch.uint8)
    mirror = next(v for v in views_for_level(2) if v.name == "mirror")
    out = make_view(x, mirror)
    assert out.dtype == torch.uint8 and torch.equal(out, x.flip(3))
    shifted = make_view(x, views_for_level(2)[4])  # shift down-right by one pixel
    assert torch.equal(shifted[:, :, 1:, 1:], x[:, :, :-1, :-1])


def test_with_tta_is_the_weighted_mean_of_the_views() -> None:
    model = linear_model()
    x = images()
    expected = sum(model(make_view(x, v)) * v.weight for v in views_for_level(2))
    assert torch.allclose(with_tta(model, 2)(x), expected, atol=1e-5)
    assert torch.allclose(with_tta(model, 0)(x), model(x), atol=1e-6)
    assert torch.allclose(with_tta(model, 1)(x), with_flip_tta(model)(x), atol=1e-5)


def test_level_one_is_invariant_to_mirroring_the_input() -> None:
    model = linear_model()
    x = images()
    assert torch.allclose(with_tta(model, 1)(x), with_tta(model, 1)(x.flip(3)), atol=1e-5)


def test_tta_logits_in_chunks_equals_one_call() -> None:
    model = linear_model()
    x = images(7)
    with torch.no_grad():
        whole = tta_logits(model, x, 2)
        chunked = tta_logits(model, x, 2, batch_size=3)
    assert whole.shape == (7, 4) and whole.dtype == torch.float32
    assert torch.allclose(whole, chunked, atol=1e-5)


class _Loaded:
    """The two attributes build_model_fn reads from a LoadedModel."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def preprocess(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.float() / 255.0


def test_build_model_fn_uses_the_models_own_tta_level() -> None:
    x = images(dtype=torch.uint8)
    plain = linear_model()
    loaded = _Loaded(plain)
    base = build_model_fn(loaded, False)
    assert torch.allclose(build_model_fn(loaded, True)(x), with_flip_tta(base)(x), atol=1e-5)
    plain.tta_level = 2  # as SpeedrunNet declares
    assert torch.allclose(build_model_fn(loaded, True)(x), with_tta(base, 2)(x), atol=1e-5)


def test_views_keep_a_channels_last_batch_channels_last() -> None:
    batch = images(4).contiguous(memory_format=torch.channels_last)
    for view in views_for_level(2):
        out = make_view(batch, view)
        assert out.is_contiguous(memory_format=torch.channels_last), view.name
        assert torch.equal(out, make_view(batch.contiguous(), view))
