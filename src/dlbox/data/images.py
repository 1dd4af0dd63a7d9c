"""Reading one image file of any kind as uint8 RGB [3, size, size]: the single path every
image takes into a model, so training on an image folder and `dlbox predict` see a file the
same way.

    array = read_image("cat.jpg")            # numpy uint8 [3, 32, 32]
    array = read_image(data_bytes, fit="stretch")

Any file Pillow opens works, of any size and mode: EXIF rotation is applied, it is converted
to 8-bit RGB (alpha composited on white, 16-bit and 32-bit grey scaled down to 8 bits), its
centre square is cut out (fit="crop"; or the whole image is squeezed, fit="stretch") and
resized to size x size with Lanczos. A file that cannot be read (not an image, truncated, too
many pixels) raises ImageLoadError whose message is a one-line reason, without the file name:
callers add the name where they need it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import stat
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dlbox.errors import DataError, first_line

# The most pixels (width * height) an input may claim. Pillow's own guard is about 89
# megapixels (warning) and 179 (error); 50 covers a 48-megapixel phone photo and stops a
# small file that claims to decompress into gigabytes before any pixel is decoded.
MAX_IMAGE_PIXELS = 50_000_000
IMAGE_SIZE = 32
FITS = ("crop", "stretch")
Fit = Literal["crop", "stretch"]
# Pillow formats never opened: EPS hands the file to Ghostscript, an outside interpreter.
EXCLUDED_FORMATS = frozenset({"EPS"})


class ImageLoadError(DataError):
    """One input file could not be turned into an image; the message says why."""


# Tried first: Image.open asks each format in turn whether the file is its own, and the
# registration order (AVIF, BLP, BMP, ...) would put the common ones behind a dozen others.
COMMON_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")


@functools.cache
def _open_formats() -> tuple[str, ...]:
    Image.init()  # registers every plugin: Image.ID then lists every format Pillow reads
    common = tuple(name for name in COMMON_FORMATS if name in Image.ID)
    return common + tuple(name for name in Image.ID
                          if name not in EXCLUDED_FORMATS and name not in common)


@contextlib.contextmanager
def quiet_pillow_warnings() -> Iterator[None]:
    """Silence Pillow's warnings (damaged EXIF, over 89 megapixels, ...) while reading a batch
    of images: read_image turns what matters into ImageLoadError. Enter it once around all the
    reads, threads included: warnings' filters are process-wide, and entering them per image
    from several threads is not safe."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _high_depth_to_8bit(image: Image.Image) -> Image.Image:
    """Grey images of more than 8 bits (I;16*, I, F) as an 8-bit "L" image, scaled not clipped.

    I;16 variants span 0..65535. Mode I (32-bit int) is how 16-bit files often arrive, so it
    is read as 0..65535 too, unless every value fits in 0..255 (an 8-bit image widened). Mode F
    is read as 0..1 when every value lies in [0, 1], else as 0..255.
    """
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


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow image as mode RGB; transparency composited on a white background."""
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


def fit_to_square(image: Image.Image, size: int = IMAGE_SIZE, fit: Fit = "crop") -> Image.Image:
    """Resize to size x size: the centre square (crop) or the whole image squeezed (stretch)."""
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    width, height = image.size
    if (width, height) == (size, size):
        return image
    box = None
    if fit == "crop" and width != height:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        box = (left, top, left + side, top + side)
    return image.resize((size, size), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)


def describe_error(error: BaseException) -> str:
    """A one-line reason for any exception raised while opening or decoding one file."""
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
    if isinstance(error, OSError) and error.errno is not None:  # the path, not the pixels
        return f"cannot open the file ({error.strerror})"
    text = first_line(error)
    if "truncated" in text.lower() or isinstance(error, EOFError):
        return f"truncated or incomplete image file ({text})"
    if isinstance(error, MemoryError):
        return "not enough memory to decode this image"
    return f"cannot decode image: {text}"


EXIF_ORIENTATION = 0x0112
# Where Pillow finds an orientation (getexif also reads XMP's tiff:Orientation): the EXIF
# block, or XMP as JPEG/WebP ("xmp") and PNG ("XML:com.adobe.xmp") carry it.
ORIENTATION_SOURCES = ("exif", "xmp", "XML:com.adobe.xmp")


def upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says; as it is when that tag is unreadable."""
    if image.format != "TIFF" and not any(key in image.info for key in ORIENTATION_SOURCES):
        return image  # no EXIF or XMP block, so nothing to turn (and no copy: most files)
    try:
        if image.getexif().get(EXIF_ORIENTATION, 1) == 1:
            return image
        return ImageOps.exif_transpose(image)
    except Exception:  # a damaged EXIF block should not cost the image
        return image


# How PostScript / EPS files begin: plain text, or the binary DOS EPS header.
POSTSCRIPT_MAGIC = (b"%!PS", b"\xc5\xd0\xd3\xc6")


def _is_postscript(source: str | Path | bytes) -> bool:
    try:
        if isinstance(source, bytes):
            head = source[:4]
        else:
            with open(source, "rb") as handle:
                head = handle.read(4)
    except OSError:
        return False
    return head in POSTSCRIPT_MAGIC


def read_image(source: str | Path | bytes, size: int = IMAGE_SIZE,
               fit: Fit = "crop") -> np.ndarray:
    """One image (a path or the file's bytes) as uint8 [3, size, size] RGB.

    Raises ImageLoadError, whose message is the one-line reason, for anything that is not a
    readable image of at most MAX_IMAGE_PIXELS pixels. Safe to call from several threads;
    wrap a batch of calls in quiet_pillow_warnings() to keep Pillow's warnings off stderr.
    """
    if not isinstance(source, bytes):
        try:
            mode = os.stat(source).st_mode
        except OSError:
            mode = None  # missing, a loop, ...: Image.open says which, below
        if mode is not None and not stat.S_ISREG(mode):
            # A folder, a FIFO or a device: opening it could block or read forever.
            raise ImageLoadError("is a directory, not an image file" if stat.S_ISDIR(mode)
                                 else "not a regular file")
    try:
        opened = io.BytesIO(source) if isinstance(source, bytes) else source
        # Pillow refuses past about 179 megapixels (DecompressionBombError) and only warns
        # from 89: the check below refuses from MAX_IMAGE_PIXELS, before any pixel is decoded.
        with Image.open(opened, formats=_open_formats()) as image:
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
            square = fit_to_square(to_rgb(upright(image)), size, fit)
            array = np.asarray(square, dtype=np.uint8)
    except ImageLoadError:
        raise
    except UnidentifiedImageError as error:
        if _is_postscript(source):
            raise ImageLoadError("EPS/PostScript is not read (Pillow would hand it to "
                                 "Ghostscript); convert it to PNG or JPEG") from error
        raise ImageLoadError(describe_error(error)) from error
    except Exception as error:  # any decoder failure is this file's problem, not the run's
        raise ImageLoadError(describe_error(error)) from error
    return np.ascontiguousarray(array.transpose(2, 0, 1))
