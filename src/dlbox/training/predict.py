"""Predict the class of the user's own images with a trained run.

    results = predict_images(Path("runs/tutorial-0"), ["cat.jpg", "plane.png"])
    for r in results:
        print(r.path, r.label if isinstance(r, PredictionResult) else r.error)

Any file Pillow opens works, of any size and mode: it is converted to 8-bit RGB (alpha
composited on white, 16-bit and 32-bit grey scaled down to 8 bits, EXIF rotation applied),
cropped to its centre square (or stretched, fit="stretch") and resized to 32x32, then goes
through the same preprocessing as in training. A file that cannot be read (not an image,
truncated, too many pixels) becomes a PredictionFailure with a one-line reason; the other
files still get their predictions.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from dlbox.errors import DataError, UsageError, first_line
from dlbox.training.evaluate import (
    build_model_fn,
    load_run_model,
    predict_logits,
    resolve_tta,
    run_amp_dtype,
)

# The most pixels (width * height) an input may claim. Pillow's own guard is about 89
# megapixels (warning) and 179 (error); 50 covers a 48-megapixel phone photo and stops a
# small file that claims to decompress into gigabytes before any pixel is decoded.
MAX_IMAGE_PIXELS = 50_000_000
IMAGE_SIZE = 32
FITS = ("crop", "stretch")
Fit = Literal["crop", "stretch"]
# Pillow formats never opened: EPS hands the file to Ghostscript, an outside interpreter.
EXCLUDED_FORMATS = frozenset({"EPS"})
PREDICT_BATCH_SIZE = 256


class ImageLoadError(DataError):
    """One input file could not be turned into an image; the message says why."""


@dataclass(frozen=True)
class PredictionResult:
    """The model's answer for one image: the label and the top-k (label, probability) pairs."""

    path: str
    label: str
    confidence: float
    top_k: tuple[tuple[str, float], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "ok": True, "label": self.label,
                "confidence": self.confidence,
                "top_k": [{"label": name, "probability": p} for name, p in self.top_k]}


@dataclass(frozen=True)
class PredictionFailure:
    """A file that got no prediction, and the one-line reason."""

    path: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "ok": False, "error": self.error}


# --- reading one image -------------------------------------------------------------------------


def _open_formats() -> list[str]:
    from PIL import Image

    Image.init()
    return [name for name in Image.ID if name not in EXCLUDED_FORMATS]


def _high_depth_to_8bit(image: Any) -> Any:
    """Grey images of more than 8 bits (I;16*, I, F) as an 8-bit "L" image, scaled not clipped.

    I;16 variants span 0..65535. Mode I (32-bit int) is how 16-bit files often arrive, so it
    is read as 0..65535 too, unless every value fits in 0..255 (an 8-bit image widened). Mode F
    is read as 0..1 when every value lies in [0, 1], else as 0..255.
    """
    from PIL import Image

    values = np.asarray(image, dtype=np.float64)
    mode = image.mode
    if mode.startswith("I;16"):
        scaled = values / 257.0
    elif mode == "I":
        scaled = values / 257.0 if values.size and values.max() > 255 else values
    else:  # "F"
        finite = values[np.isfinite(values)]
        in_unit = finite.size == 0 or (finite.min() >= 0.0 and finite.max() <= 1.0)
        scaled = np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0)
        if in_unit:
            scaled = scaled * 255.0
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def to_rgb(image: Any) -> Any:
    """Any Pillow image as mode RGB; transparency composited on a white background."""
    from PIL import Image

    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _high_depth_to_8bit(image).convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    if mode == "RGB":
        return image
    return image.convert("RGB")


def fit_to_square(image: Any, size: int = IMAGE_SIZE, fit: Fit = "crop") -> Any:
    """Resize to size x size: the centre square (crop) or the whole image squeezed (stretch)."""
    from PIL import Image

    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    width, height = image.size
    box = None
    if fit == "crop" and width != height:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        box = (left, top, left + side, top + side)
    return image.resize((size, size), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)


def _describe(error: BaseException) -> str:
    from PIL import Image, UnidentifiedImageError

    if isinstance(error, ImageLoadError):
        return error.message
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, IsADirectoryError):
        return "is a directory, not an image file"
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, UnidentifiedImageError):
        return "not an image (Pillow does not recognise the format)"
    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        # Past Pillow's own limit (about 89 megapixels) Image.open refuses before dlbox's
        # check sees the size: the same words as that check, with the count Pillow read.
        match = re.search(r"\((\d+) pixels\)", str(error))
        claimed = f"{int(match.group(1)):,} pixels" if match else "too many pixels"
        return (f"image claims {claimed}, over the {MAX_IMAGE_PIXELS // 1_000_000}-megapixel "
                "limit (refused as a possible decompression bomb)")
    text = first_line(error)
    if "truncated" in text.lower() or isinstance(error, EOFError):
        return f"truncated or incomplete image file ({text})"
    if isinstance(error, MemoryError):
        return "not enough memory to decode this image"
    return f"cannot decode image: {text}"


def _upright(image: Any) -> Any:
    """The image turned as its EXIF orientation says; as it is when that tag is unreadable."""
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a damaged EXIF block should not cost the prediction
        return image


def load_image(path: str | Path, size: int = IMAGE_SIZE, fit: Fit = "crop") -> torch.Tensor:
    """One image file as uint8 [3, size, size] RGB; ImageLoadError with the reason otherwise."""
    from PIL import Image

    path = Path(path)
    if path.exists() and not path.is_file():
        # A folder, a FIFO or a device: opening it could block or read forever.
        raise ImageLoadError("is a directory, not an image file" if path.is_dir()
                             else "not a regular file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # A bomb warning (over Pillow's own limit) is an error here, not a message.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=_open_formats()) as image:
                width, height = image.size
                if width < 1 or height < 1:
                    raise ImageLoadError(f"image has no pixels ({width}x{height})")
                if width * height > MAX_IMAGE_PIXELS:
                    raise ImageLoadError(
                        f"image claims {width}x{height} pixels, over the "
                        f"{MAX_IMAGE_PIXELS // 1_000_000}-megapixel limit "
                        "(refused as a possible decompression bomb)")
                # JPEG decodes straight at 1/2, 1/4 or 1/8 scale when that is still >= size.
                image.draft(None, (size, size))
                image.load()
                upright = _upright(image)
                rgb = to_rgb(upright)
                square = fit_to_square(rgb, size, fit)
    except ImageLoadError:
        raise
    except Exception as error:  # any decoder failure is this file's problem, not the run's
        raise ImageLoadError(_describe(error)) from error
    array = np.asarray(square, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


# --- predicting --------------------------------------------------------------------------------


def top_k_pairs(probabilities: torch.Tensor, classes: Sequence[str],
                k: int) -> tuple[tuple[str, float], ...]:
    """The k most likely (class, probability) pairs of one probability row, most likely first."""
    k = min(k, len(classes))
    values, indexes = probabilities.topk(k)
    return tuple((classes[int(i)], float(v)) for v, i in zip(values, indexes, strict=True))


def predict_with_model_fn(model_fn: Any, classes: Sequence[str], paths: Sequence[str | Path],
                          device: torch.device | str = "cpu", top_k: int = 3,
                          size: int = IMAGE_SIZE, fit: Fit = "crop",
                          amp_dtype: torch.dtype | None = torch.float16,
                          ) -> list[PredictionResult | PredictionFailure]:
    """Predict each file with `model_fn` (uint8 batch -> logits); one result per path, in order."""
    if top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {top_k}")
    results: list[PredictionResult | PredictionFailure | None] = [None] * len(paths)
    images: list[torch.Tensor] = []
    positions: list[int] = []
    for position, path in enumerate(paths):
        try:
            images.append(load_image(path, size, fit))
            positions.append(position)
        except ImageLoadError as error:
            results[position] = PredictionFailure(str(path), error.message)
    if images:
        logits = predict_logits(model_fn, torch.stack(images), PREDICT_BATCH_SIZE, device,
                                amp_dtype)
        probabilities = torch.softmax(logits.double(), dim=1)
        for position, row in zip(positions, probabilities, strict=True):
            if not torch.isfinite(row).all():
                results[position] = PredictionFailure(
                    str(paths[position]), "the model produced NaN or infinite outputs")
                continue
            pairs = top_k_pairs(row, classes, top_k)
            results[position] = PredictionResult(str(paths[position]), pairs[0][0],
                                                 pairs[0][1], pairs)
    return [r for r in results if r is not None]


def predict_images(run_dir: str | Path, paths: Sequence[str | Path], device: str = "auto",
                   top_k: int = 3, fit: Fit = "crop", tta: bool | None = None,
                   checkpoint: str = "last") -> list[PredictionResult | PredictionFailure]:
    """Load the run's model and predict each file: a PredictionResult or a PredictionFailure.

    Raises (RunDirError, UsageError) only for problems of the whole call: a missing run or
    checkpoint, a bad top_k. A file that cannot be read fails on its own.
    """
    if top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {top_k}")
    if fit not in FITS:
        raise UsageError(f"unknown fit '{fit}'", hint=f"use one of {', '.join(FITS)}")
    loaded, resolved = load_run_model(Path(run_dir), device, checkpoint)
    model_fn = build_model_fn(loaded, resolve_tta(tta, loaded.config))
    classes = tuple(loaded.classes)
    return predict_with_model_fn(model_fn, classes, paths, resolved, top_k, IMAGE_SIZE, fit,
                                 run_amp_dtype(loaded))
