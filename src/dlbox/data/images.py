"""Reading one image file of any kind as uint8 RGB [3, size, size]: the single path every
image takes into a model, so training on an image folder and `dlbox predict` see a file the
same way.

    array = read_image("cat.jpg")            # numpy uint8 [3, 32, 32]
    array = read_image(data_bytes, fit="stretch")

Any file Pillow opens works, of any size and mode: EXIF rotation is applied, it is converted
to 8-bit RGB (alpha composited on white, 16-bit and 32-bit grey scaled down to 8 bits), its
centre square is cut out (fit="crop"; or the whole image is squeezed, fit="stretch") and
resized to size x size with Lanczos. A file that cannot be read (not an image, truncated, too
many pixels) raises ImageLoadError whose message is a one-line reason and whose hint, when
there is one, is the fix, both without the file name: callers add the name where they need it
(`error.one_line()` is "reason; fix", what `dlbox predict` prints).
"""

from __future__ import annotations

import contextlib
import errno
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
from dlbox.fileio import file_head, unsearchable_folder
from dlbox.text import reason_and_fix

# The most pixels (width * height) an input may decode to: a JPEG's after draft(), which
# decodes it straight at 1/2, 1/4 or 1/8 scale (a 108-megapixel phone photo, 12000x9000,
# as 1500x1125), any other format's as it claims. Pillow's own guard is about 89 megapixels
# (warning) and 179 (error, kept for every format); 50 covers a 48-megapixel PNG and stops
# a small file that claims to decompress into gigabytes before any pixel is decoded.
MAX_IMAGE_PIXELS = 50_000_000
IMAGE_SIZE = 32
FITS = ("crop", "stretch")
Fit = Literal["crop", "stretch"]
# Pillow formats never opened: EPS hands the file to Ghostscript, an outside interpreter.
EXCLUDED_FORMATS = frozenset({"EPS"})


class ImageLoadError(DataError):
    """One input file could not be turned into an image: the message says why, the hint (when
    there is one) what to do about it; one line each, without the file name."""

    def one_line(self) -> str:
        """The reason and its fix on one line: "reason; fix"."""
        return reason_and_fix(self.message, self.hint)


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


def is_high_depth(mode: str) -> bool:
    """Grey of more than 8 bits: I;16 (and its byte orders), I (32-bit int), F (32-bit float)."""
    return mode.startswith("I;16") or mode in ("I", "F")


# How many pixels _high_depth_to_8bit converts at a time: a band of this many pixels costs a
# few MiB of float64, where the whole of a 49-megapixel image cost over 1.5 GB.
DEPTH_BAND_PIXELS = 1 << 18


def _bands(image: Image.Image) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, float64 values) of successive bands of rows of a one-band image."""
    width, height = image.size
    rows = max(1, DEPTH_BAND_PIXELS // max(width, 1))
    for top in range(0, height, rows):
        band = image.crop((0, top, width, min(top + rows, height)))
        yield top, np.array(band, dtype=np.float64)  # a copy of its own, to change in place


def _high_depth_to_8bit(image: Image.Image) -> Image.Image:
    """Grey images of more than 8 bits (I;16*, I, F) as an 8-bit "L" image, scaled not clipped.

    I;16 variants span 0..65535. Mode I (32-bit int) is how 16-bit files often arrive, so it
    is read as 0..65535 too, unless every value fits in 0..255 (an 8-bit image widened). Mode F
    is read as 0..1 when every value lies in [0, 1], else as 0..255. Converted a band of rows
    at a time into the uint8 result, so memory beyond the image itself is that result (one
    byte a pixel) and one band, not a float64 copy of the whole image (8 bytes a pixel, and
    as much again for each step of the arithmetic).

    A transparent colour (a PNG's tRNS: the value in info["transparency"]) becomes white, as
    to_rgb composites 8-bit grey with a transparent colour on white (review: it was black).
    """
    mode = image.mode
    transparent = image.info.get("transparency")
    if isinstance(transparent, bool) or not isinstance(transparent, (int, float)):
        transparent = None  # only grey's single value; never a palette's or alpha's
    width, height = image.size
    divisor, factor, from_float = 1.0, 1.0, mode == "F"
    if mode.startswith("I;16"):
        divisor = 257.0
    elif mode == "I":
        extrema = image.getextrema() if width and height else None  # no copy of the pixels
        if extrema is not None and float(extrema[1]) > 255:  # type: ignore[arg-type, index]
            divisor = 257.0
    else:  # "F": the range of its finite values decides, so a first pass reads them
        low, high = np.inf, -np.inf
        for _, values in _bands(image):
            finite = values[np.isfinite(values)]
            if finite.size:
                low, high = min(low, float(finite.min())), max(high, float(finite.max()))
        if low == np.inf or (low >= 0.0 and high <= 1.0):
            factor = 255.0
    result = np.empty((height, width), dtype=np.uint8)
    for top, values in _bands(image):  # each band a fresh float64 array: changed in place
        hidden = values == transparent if transparent is not None else None
        if from_float:
            np.nan_to_num(values, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
        if divisor != 1.0:
            values /= divisor
        if factor != 1.0:
            values *= factor
        np.rint(values, out=values)
        np.clip(values, 0, 255, out=values)
        if hidden is not None:
            values[hidden] = 255
        result[top:top + values.shape[0]] = values
    return Image.fromarray(result, mode="L")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow image as mode RGB; transparency composited on a white background."""
    mode = image.mode
    if is_high_depth(mode):
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


# The fixes of ImageLoadError's hints, one line each and without the file name.
FIX_PERMISSIONS = ("make it readable for you (chmod u+r), or run dlbox as the user that owns "
                   "it (ls -l shows who)")
FIX_COPY_AGAIN = "copy or download it again"
FIX_DOWNSCALE = "downscale it to a few megapixels first (the model sees 32x32 pixels)"
FIX_RESAVE = "re-save it as PNG or JPEG with an image editor, or copy it again"
FIX_METADATA = "re-save the image without its metadata"
FIX_NOT_AN_IMAGE = "check that it is the image you meant, or convert it to PNG or JPEG"
FIX_MEMORY = "free memory used by other programs, or downscale the image first"


FIX_PATH = "check the path (ls shows what is there; a relative path starts from the current folder)"
# Errors of the path rather than the pixels: (reason, fix) by errno; any other names its
# strerror alone.
PATH_ERRORS = {
    errno.ENOENT: ("no such file", FIX_PATH),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", FIX_PATH),
    errno.ENAMETOOLONG: ("the path or a name in it is too long to open",
                         "rename the file or a folder above it to a shorter name (at most "
                         "255 bytes a name)"),
    errno.ELOOP: ("a symbolic link on the path points back into itself",
                  "fix or remove the link (ls -l shows where it points)"),
    errno.EIO: ("the disk reported an error reading it (Input/output error)",
                "copy the file again from a good copy, and check the disk (dmesg shows its "
                "errors)"),
}


# How the reason for a decoder failure dlbox has no words of its own for begins.
UNDECODABLE = "cannot decode image"


def _truncated() -> ImageLoadError:
    # Pillow's own words ("image file is truncated (28 bytes not processed)") add nothing
    return ImageLoadError("truncated or incomplete image file (it ends before the image does)",
                          hint=FIX_COPY_AGAIN)


def _too_many_pixels(claimed: str) -> ImageLoadError:
    return ImageLoadError(f"image claims {claimed}, over the "
                          f"{MAX_IMAGE_PIXELS // 1_000_000}-megapixel limit "
                          "(refused as a possible decompression bomb)", hint=FIX_DOWNSCALE)


def image_load_error(error: BaseException, path: str | Path | None = None) -> ImageLoadError:
    """The ImageLoadError for any exception raised while opening or decoding one file: a
    one-line reason and, where there is one, the fix as its hint. `path` (the file, when it
    was one) tells a file that may not be read from one in a folder that may not be searched."""
    if isinstance(error, ImageLoadError):
        return error
    if isinstance(error, OSError) and error.errno == errno.ENOENT and path is not None \
            and os.path.islink(path):  # the link is there, what it names is not
        return ImageLoadError(f"a link to nothing (it points to {os.readlink(path)})",
                              hint="fix or remove the link (ls -l shows where it points)")
    if isinstance(error, OSError) and error.errno in PATH_ERRORS:
        reason, fix = PATH_ERRORS[error.errno]
        return ImageLoadError(reason, hint=fix)
    if isinstance(error, IsADirectoryError):
        return ImageLoadError("is a directory, not an image file")
    if isinstance(error, PermissionError):
        folder = unsearchable_folder(Path(path).absolute()) if path is not None else None
        if folder is None:
            return ImageLoadError("permission denied", hint=FIX_PERMISSIONS)
        return ImageLoadError(f"permission denied on the folder {folder}",
                              hint=f"make that folder readable for you (chmod u+rx {folder}), "
                                   "or run dlbox as the user that owns it (ls -ld shows who)")
    if isinstance(error, UnidentifiedImageError):
        return ImageLoadError("not an image (Pillow does not recognise the format)",
                              hint=FIX_NOT_AN_IMAGE)
    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        # Past Pillow's own limit (about 89 megapixels) Image.open refuses before dlbox's
        # check sees the size: the same words as that check, with the count Pillow read.
        match = re.search(r"\((\d+) pixels\)", str(error))
        return _too_many_pixels(f"{int(match.group(1)):,} pixels" if match else "too many pixels")
    if isinstance(error, OSError) and error.errno is not None:  # the path, not the pixels
        return ImageLoadError(f"cannot open the file ({error.strerror})")
    text = first_line(error)
    if "truncated" in text.lower() or isinstance(error, EOFError):
        return _truncated()
    if isinstance(error, ValueError) and ("MAX_TEXT_CHUNK" in text
                                          or "MAX_TEXT_MEMORY" in text):
        # Pillow's PngImagePlugin refuses text (tEXt, zTXt, iTXt) or colour profile (iCCP)
        # chunks past its limits: "Too much memory used in text chunks: N>MAX_TEXT_MEMORY".
        return ImageLoadError("PNG metadata (text or colour profile chunks) too large to read",
                              hint=FIX_METADATA)
    if isinstance(error, MemoryError):
        return ImageLoadError("not enough memory to decode this image", hint=FIX_MEMORY)
    return ImageLoadError(f"{UNDECODABLE}: {text}", hint=FIX_RESAVE)


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
# How the common formats begin: a file that starts as one of them but that Pillow fails on
# is that format, cut short (a GIF cut inside its colour table, say) when it lacks its end
# (_looks_cut_short), else a variant or damage Pillow's decoder has a reason for.
IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"),
               (b"GIF89a", "GIF"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))
# How a whole file of each ends: PNG's IEND chunk (data some programs append after it
# aside), JPEG's EOI marker, GIF's trailer; after any NUL padding.
PNG_END = b"\0\0\0\0IEND\xaeB`\x82"
JPEG_END = b"\xff\xd9"
GIF_END = b";"
TAIL_BYTES = 1024  # how much of a GIF's end is read to look for its end
JPEG_HEADERS = 16 << 20  # the most of a JPEG's start read for the segments before its image


def _head(source: str | Path | bytes, size: int = 12) -> bytes:
    """The first `size` bytes of a file (or of its bytes); b"" when it cannot be read."""
    return source[:size] if isinstance(source, bytes) else file_head(source, size)


def _bytes_at(source: str | Path | bytes, offset: int, size: int) -> bytes:
    """`size` bytes of a file (or of its bytes) from `offset`, counted from the end when
    negative; fewer at its end, b"" when it cannot be read."""
    if isinstance(source, bytes):
        start = max(0, len(source) + offset) if offset < 0 else offset
        return source[start:start + size]
    try:
        with open(source, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) + offset) if offset < 0 else offset)
            return handle.read(size)
    except (OSError, ValueError):
        return b""


def _holds(source: str | Path | bytes, marker: bytes, block: int = 1 << 20,
           start: int = 0) -> bool:
    """Whether the file (or its bytes) holds `marker` anywhere from `start`; read a block at
    a time."""
    if isinstance(source, bytes):
        return marker in source[start:]
    try:
        with open(source, "rb") as handle:
            handle.seek(start)
            carried = b""
            while chunk := handle.read(block):
                if marker in carried + chunk:
                    return True
                carried = chunk[-len(marker):]
    except OSError:
        pass
    return False


def _image_format(source: str | Path | bytes) -> str | None:
    """The common format (IMAGE_MAGIC) a file begins as; None for any other."""
    head = _head(source)
    return next((name for magic, name in IMAGE_MAGIC if head.startswith(magic)), None)


def _is_postscript(source: str | Path | bytes) -> bool:
    return _head(source, 4) in POSTSCRIPT_MAGIC


def _looks_cut_short(source: str | Path | bytes, length: int | None) -> bool:
    """Whether a file Pillow failed on is a known image format that ends early: a PNG
    without its IEND chunk, a JPEG not ending in its EOI marker, a GIF without its trailer, a
    TIFF whose first directory lies past its end, a WebP shorter than the size its RIFF
    header declares. A cut copy, not a whole file that is damaged or in a variant Pillow does
    not read (a 12-bit JPEG, a JPEG 2000 TIFF): review, those were called cut short too."""
    head = _head(source)
    name = _image_format(source)
    if name == "PNG":  # its end chunk anywhere: data after it is no part of the image
        return not _holds(source, PNG_END)
    if name == "JPEG":
        return not _jpeg_ends(source)
    if name == "GIF":
        return not _bytes_at(source, -TAIL_BYTES, TAIL_BYTES).rstrip(b"\0").endswith(GIF_END)
    if name == "TIFF":
        if length is None:
            return True
        order: Literal["little", "big"] = "little" if head[:2] == b"II" else "big"
        directory = int.from_bytes(head[4:8], order)  # where the first directory (IFD) is
        entries = _bytes_at(source, directory, 2)
        return len(entries) < 2 or directory + 2 + 12 * int.from_bytes(entries, order) > length
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and length is not None:
        return length < int.from_bytes(head[4:8], "little") + 8
    return False


def _jpeg_ends(source: str | Path | bytes) -> bool:
    """Whether a JPEG's image data starts (its own start of scan, after the segments before
    it) and has an end marker after it. One inside an EXIF thumbnail (a camera's) is no end
    of the image (the re-check); data after the image's end (a motion photo's video) is
    allowed. Entropy-coded data never holds FF D9 (an FF in it is followed by 00)."""
    data = source if isinstance(source, bytes) else _bytes_at(source, 0, JPEG_HEADERS)
    position = 2  # past the start-of-image marker
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return True  # not the segments of a JPEG: damage, for the decoder's reason
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            position += 2
            continue
        end = position + 2 + int.from_bytes(data[position + 2:position + 4], "big")
        if marker == 0xDA:  # start of scan: the image's data, then its end marker
            return _holds(source, JPEG_END, start=end)
        position = end
    return len(data) >= JPEG_HEADERS  # else cut before its image data


def _undecodable(source: str | Path | bytes, name: str) -> ImageLoadError:
    """A whole file that begins as the format `name` but that Pillow does not open: the reason
    that format's own reader gives ("cannot handle 12-bit layers"), which Image.open turns
    into "cannot identify image file"."""
    reason = f"a {name} file Pillow cannot read"
    factory = Image.OPEN.get(name, (None, None))[0]
    if factory is not None:
        try:
            with (io.BytesIO(source) if isinstance(source, bytes)
                  else open(source, "rb")) as handle:
                factory(handle, "" if isinstance(source, bytes) else str(source)).close()
        except Exception as error:
            # Pillow wraps a KeyError, IndexError, ... of the reader in a SyntaxError
            inner = error.args[0] if error.args else None
            cause = inner if isinstance(inner, BaseException) else error
            if isinstance(cause, KeyError):  # a value it has no entry for: TIFF compression
                reason = f"{reason} (an unknown value, {cause.args[0] if cause.args else '?'})"
            else:
                reason = first_line(cause) or reason
    return ImageLoadError(f"{UNDECODABLE}: {reason}", hint=FIX_RESAVE)


def read_image(source: str | Path | bytes, size: int = IMAGE_SIZE,
               fit: Fit = "crop") -> np.ndarray:
    """One image (a path or the file's bytes) as uint8 [3, size, size] RGB.

    Raises ImageLoadError, whose message is the one-line reason (and hint the fix, where
    there is one), for anything that is not a readable image that decodes to at most
    MAX_IMAGE_PIXELS pixels. Safe to call from several threads; wrap a batch of calls in
    quiet_pillow_warnings() to keep Pillow's warnings off stderr.
    """
    if isinstance(source, bytes):
        length: int | None = len(source)
    else:
        try:
            status: os.stat_result | None = os.stat(source)
        except (OSError, ValueError):
            status = None  # missing, a loop, out of reach, ...: Image.open says which, below
        if status is not None and not stat.S_ISREG(status.st_mode):
            # A folder, a FIFO or a device: opening it could block or read forever.
            if stat.S_ISDIR(status.st_mode):
                raise ImageLoadError("is a directory, not an image file",
                                     hint="pass the image files in it, or move the folder out")
            raise ImageLoadError("not a regular file (a pipe, socket or device)",
                                 hint="save the image to a file and pass that file")
        length = status.st_size if status is not None else None
    if length == 0:  # Pillow would say only that it does not know the format
        raise ImageLoadError("empty file (0 bytes)", hint=FIX_COPY_AGAIN)
    try:
        opened = io.BytesIO(source) if isinstance(source, bytes) else source
        # Pillow refuses past about 179 megapixels (DecompressionBombError) and only warns
        # from 89: the check below refuses from MAX_IMAGE_PIXELS, before any pixel is decoded.
        with Image.open(opened, formats=_open_formats()) as image:
            width, height = image.size
            if width < 1 or height < 1:
                raise ImageLoadError(f"image has no pixels ({width}x{height})",
                                     hint=FIX_RESAVE)
            # JPEG decodes straight at 1/2, 1/4 or 1/8 scale when that is still >= size: the
            # pixels it decodes are those of its size after draft (review: a 12000x9000 phone
            # photo, 1500x1125 decoded, was refused); other formats keep theirs.
            image.draft(None, (size, size))
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise _too_many_pixels(f"{width}x{height} pixels")
            image.load()
            turned = upright(image)
            if is_high_depth(turned.mode):
                # Grey stays one band until it is size x size: the same pixels as converting
                # to RGB first (each band is resized alike), at a third of the memory.
                square = fit_to_square(_high_depth_to_8bit(turned), size, fit).convert("RGB")
            else:
                square = fit_to_square(to_rgb(turned), size, fit)
            array = np.asarray(square, dtype=np.uint8)
    except ImageLoadError:
        raise
    except UnidentifiedImageError as error:
        if _is_postscript(source):
            raise ImageLoadError("EPS/PostScript is not read (Pillow would hand it to "
                                 "Ghostscript); convert it to PNG or JPEG") from error
        if _looks_cut_short(source, length):
            raise _truncated() from error
        name = _image_format(source)
        if name is not None:  # a whole PNG, JPEG, GIF or TIFF, in a variant Pillow lacks
            raise _undecodable(source, name) from error
        raise image_load_error(error) from error
    except Exception as error:  # any decoder failure is this file's problem, not the run's
        problem = image_load_error(error, None if isinstance(source, bytes) else source)
        if problem.message.startswith(UNDECODABLE) and _looks_cut_short(source, length):
            raise _truncated() from error  # WebP: "could not create decoder object"
        raise problem from error
    return np.ascontiguousarray(array.transpose(2, 0, 1))
