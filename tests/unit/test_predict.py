"""Reading user images of every kind, refusing bad files one by one, and top-k predictions."""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from dlbox.data.cifar10 import CIFAR10_CLASSES
from dlbox.errors import UsageError
from dlbox.training import predict as pr
from dlbox.training.predict import (
    ImageLoadError,
    PredictionFailure,
    PredictionResult,
    load_image,
    predict_images,
    predict_with_model_fn,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)  # not square, not 32x32


def rgb_image() -> Image.Image:
    return Image.fromarray(RGB, mode="RGB")


def _p_with_transparency(path: Path) -> None:
    image = Image.new("P", (40, 30), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    image.paste(1, (20, 0, 40, 30))  # right half: index 1 (blue); left half index 0
    image.save(path, transparency=0)  # index 0 is transparent: left half becomes white


# mode -> (file name, how to write it)
MODE_WRITERS = {
    "1": ("one.png", lambda p: rgb_image().convert("1").save(p)),
    "L": ("grey.jpg", lambda p: rgb_image().convert("L").save(p)),
    "LA": ("grey_alpha.png", lambda p: rgb_image().convert("LA").save(p)),
    "P": ("palette.gif", lambda p: rgb_image().convert("P").save(p)),
    "P+transparency": ("palette_t.png", _p_with_transparency),
    "RGB": ("colour.png", lambda p: rgb_image().save(p)),
    "RGB-jpeg": ("colour.jpg", lambda p: rgb_image().save(p, quality=90)),
    "RGBA": ("colour_alpha.png", lambda p: rgb_image().convert("RGBA").save(p)),
    "CMYK": ("print.jpg", lambda p: rgb_image().convert("CMYK").save(p)),
    "I;16": ("deep.png", lambda p: Image.fromarray(
        RGB[..., 0].astype(np.uint16) * 257).save(p)),
    "I": ("int32.tif", lambda p: Image.fromarray(
        RGB[..., 0].astype(np.int32) * 257, mode="I").save(p)),
    "F": ("float.tif", lambda p: Image.fromarray(
        RGB[..., 0].astype(np.float32) / 255.0, mode="F").save(p)),
}


@pytest.fixture(scope="module")
def mode_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("modes")
    files = {}
    for mode, (name, write) in MODE_WRITERS.items():
        write(folder / name)
        files[mode] = folder / name
    return files


@pytest.mark.parametrize("mode", list(MODE_WRITERS))
def test_every_mode_becomes_uint8_rgb_32x32(mode: str, mode_files: dict[str, Path]) -> None:
    path = mode_files[mode]
    with Image.open(path) as image:
        assert image.mode == mode.split("+")[0].split("-")[0]  # the file really has that mode
    tensor = load_image(path)
    assert tensor.shape == (3, 32, 32) and tensor.dtype == torch.uint8


def test_transparent_pixels_become_white(tmp_path: Path) -> None:
    rgba = np.zeros((32, 32, 4), dtype=np.uint8)
    rgba[:, :16] = (255, 0, 0, 0)  # fully transparent red: must become white, not red/black
    rgba[:, 16:] = (0, 0, 255, 255)  # opaque blue
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    t = load_image(tmp_path / "a.png")
    assert t[:, :, :14].eq(255).all()
    assert t[:, :, 18:].tolist() == torch.tensor([0, 0, 255], dtype=torch.uint8).view(
        3, 1, 1).expand(3, 32, 14).tolist()

    _p_with_transparency(tmp_path / "p.png")
    t = load_image(tmp_path / "p.png", fit="stretch")
    assert t[:, :, :14].eq(255).all()  # transparent index -> white
    assert t[2, :, 18:].eq(255).all() and t[0, :, 18:].eq(0).all()  # blue stays blue


@pytest.mark.parametrize("dtype, white", [(np.uint8, 255), (np.uint16, 65535)])
def test_grey_with_a_transparent_colour_is_composited_on_white_at_any_depth(
        tmp_path: Path, dtype: type, white: int) -> None:
    """Review: a 16-bit grey PNG with a transparent colour (tRNS) came out with its
    transparent pixels black, where the 8-bit one was composited on white as the docs say."""
    grey = np.zeros((64, 64), dtype)
    grey[24:40, 24:40] = white  # a white square on black; black (0) is transparent
    grey[4:8, 4:60] = white // 2  # an opaque mid-grey bar stays grey
    Image.fromarray(grey).save(tmp_path / "g.png", transparency=0)
    with Image.open(tmp_path / "g.png") as image:
        assert image.info["transparency"] == 0  # the file really has a transparent colour
    t = load_image(tmp_path / "g.png", size=64)
    assert t[:, 16, 16].tolist() == [255, 255, 255]  # transparent: white, not black
    assert t[:, 32, 32].tolist() == [255, 255, 255]
    assert t[:, 6, 32].tolist() == [127, 127, 127]


@pytest.mark.parametrize("value16, expected", [(0, 0), (65535, 255), (32896, 128)])
def test_16_bit_grey_is_scaled_not_clipped(tmp_path: Path, value16: int, expected: int) -> None:
    Image.fromarray(np.full((8, 8), value16, dtype=np.uint16)).save(tmp_path / "g.png")
    with Image.open(tmp_path / "g.png") as image:
        assert image.mode.startswith("I")
    assert load_image(tmp_path / "g.png").eq(expected).all()


def test_float_and_int32_images_are_scaled(tmp_path: Path) -> None:
    Image.fromarray(np.full((8, 8), 0.5, np.float32), mode="F").save(tmp_path / "f.tif")
    assert load_image(tmp_path / "f.tif").eq(128).all()
    Image.fromarray(np.full((8, 8), 200.0, np.float32), mode="F").save(tmp_path / "f2.tif")
    assert load_image(tmp_path / "f2.tif").eq(200).all()
    Image.fromarray(np.full((8, 8), 65535, np.int32), mode="I").save(tmp_path / "i.tif")
    assert load_image(tmp_path / "i.tif").eq(255).all()


def whole_image_reference(values: np.ndarray, mode: str) -> np.ndarray:
    """8-bit grey from high-depth values, as the whole image at once in float64 (how dlbox
    converted them before it did so band by band)."""
    values = values.astype(np.float64)
    if mode.startswith("I;16") or (mode == "I" and values.max() > 255):
        values = values / 257.0
    elif mode == "F":
        finite = values[np.isfinite(values)]
        in_unit = finite.min() >= 0.0 and finite.max() <= 1.0
        values = np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0) * (
            255.0 if in_unit else 1.0)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I-16-bit", "I-8-bit", "F-unit", "F-255"])
def test_high_depth_grey_is_scaled_as_a_whole_image_band_by_band(mode: str) -> None:
    """The conversion runs a band of rows at a time (memory, below); the scale is still the
    whole image's: the value that decides it (over 255 in mode I, over 1.0 in mode F) lies
    in the last band only, and the first band holds NaN and infinities."""
    from dlbox.data.images import DEPTH_BAND_PIXELS, _high_depth_to_8bit

    width = 1024
    height = 3 * DEPTH_BAND_PIXELS // width - 5  # three bands, the last one shorter
    rng = np.random.default_rng(2)
    base = mode.split("-")[0]
    if base.startswith("I;16"):
        values = rng.integers(0, 65536, (height, width)).astype(
            ">u2" if base == "I;16B" else np.uint16)
    elif base == "I":
        values = rng.integers(0, 256, (height, width)).astype(np.int32)
        if mode == "I-16-bit":
            values[-1, -1] = 65535  # a 16-bit image: every pixel divided by 257
    else:
        values = rng.random((height, width), dtype=np.float32)
        values[0, :3] = (np.nan, np.inf, -np.inf)
        if mode == "F-255":
            values *= 200
            values[-1, -1] = 255.0  # not in 0..1: every pixel read as 0..255
    image = Image.fromarray(values, mode=None if base != "I" else "I")
    assert image.mode == base
    converted = _high_depth_to_8bit(image)
    assert converted.mode == "L"
    assert np.array_equal(np.asarray(converted), whole_image_reference(values, base))


def test_a_16_bit_image_is_read_without_a_float_copy_of_all_its_pixels(tmp_path: Path) -> None:
    """Found by review: a 49-megapixel 16-bit PNG took about 1.9 GB in `dlbox predict`, the
    whole image as float64 (8 bytes a pixel) and as much again for each step of its scaling.
    What numpy allocates (tracemalloc sees it; Pillow's own image it does not) is now the
    8-bit result (1 byte a pixel) and a few MiB for one band of rows at a time, whatever the
    size of the image (this one: 8 megapixels, 32 bytes a pixel, 270 MB, before)."""
    import tracemalloc

    height, width = 2048, 4096
    ramp = (np.arange(width, dtype=np.uint32) * 65535 // (width - 1)).astype(np.uint16)
    Image.fromarray(np.broadcast_to(ramp, (height, width)).copy()).save(
        tmp_path / "deep.png", compress_level=1)
    tracemalloc.start()
    try:
        array = load_image(tmp_path / "deep.png", fit="stretch")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    beyond_result = peak - width * height
    assert beyond_result < 16 * 2**20, f"{beyond_result / 2**20:.0f} MiB beyond the result"
    row = array[0, 16].numpy().astype(int)  # the ramp, scaled 0..255, not clipped
    assert row[0] <= 8 and row[-1] >= 247 and (np.diff(row) >= 0).all()


def test_grey_and_colour_content_survive(mode_files: dict[str, Path]) -> None:
    grey = load_image(mode_files["L"])
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    colour = load_image(mode_files["RGB"], fit="stretch")
    expected = np.asarray(rgb_image().resize((32, 32), Image.Resampling.LANCZOS))
    assert np.abs(colour.permute(1, 2, 0).numpy().astype(int) - expected.astype(int)).max() <= 1


def test_crop_takes_the_centre_square(tmp_path: Path) -> None:
    wide = np.zeros((32, 96, 3), dtype=np.uint8)
    wide[:, 32:64] = 255  # white centre square, black sides
    Image.fromarray(wide).save(tmp_path / "wide.png")
    assert load_image(tmp_path / "wide.png", fit="crop").eq(255).all()
    stretched = load_image(tmp_path / "wide.png", fit="stretch")
    assert stretched[:, :, 0].eq(0).all() and stretched[:, :, 16].eq(255).all()


def test_large_jpeg_and_exif_rotation(tmp_path: Path) -> None:
    big = np.zeros((600, 400, 3), dtype=np.uint8)
    big[:300] = 255  # top half white in the stored pixels
    image = Image.fromarray(big)
    exif = Image.Exif()
    exif[0x0112] = 3  # orientation: rotate 180 degrees for display
    image.save(tmp_path / "photo.jpg", exif=exif, quality=95)
    t = load_image(tmp_path / "photo.jpg")
    assert t.shape == (3, 32, 32)
    assert t[:, :12].float().mean() < 20 and t[:, 20:].float().mean() > 235  # upright: white low


# --- bad files ----------------------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_bomb_png(path: Path, width: int, height: int) -> Path:
    """A valid-looking PNG header claiming width x height pixels, a few hundred bytes on disk."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
                     + png_chunk(b"IDAT", zlib.compress(b"\0" * 256)) + png_chunk(b"IEND", b""))
    return path


def write_truncated(path: Path, fmt: str, keep: float = 0.5) -> Path:
    """A 64x64 noise image in `fmt`, cut to the first `keep` of its bytes."""
    noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write_png_with_text(path: Path, chunks: int, text_bytes: int) -> Path:
    """A small valid PNG with `chunks` zTXt chunks of `text_bytes` of text each, a few KiB on
    disk: past 1 MiB, one chunk is over Pillow's MAX_TEXT_CHUNK; 65 of 1 MiB are over its
    MAX_TEXT_MEMORY (64 MiB of text in all)."""
    import io

    buffer = io.BytesIO()
    Image.fromarray(RGB).save(buffer, format="PNG")
    data = buffer.getvalue()  # the IHDR chunk ends at byte 33
    chunk = png_chunk(b"zTXt", b"comment\0\0" + zlib.compress(b"x" * text_bytes, 9))
    path.write_bytes(data[:33] + chunk * chunks + data[33:])
    return path


@pytest.mark.parametrize("make, expected", [
    (lambda d: (d / "notes.png").write_text("this is not an image") and d / "notes.png",
     "not an image"),
    (lambda d: (d / "empty.jpg").write_bytes(b"") or d / "empty.jpg", "empty file (0 bytes)"),
    (lambda d: write_truncated(d / "cut.png", "PNG"), "truncated"),
    (lambda d: write_truncated(d / "cut.jpg", "JPEG"), "truncated"),
    (lambda d: write_bomb_png(d / "bomb.png", 100_000, 100_000),
     "image claims 10,000,000,000 pixels, over the 50-megapixel limit (refused as a possible "
     "decompression bomb)"),
    (lambda d: write_bomb_png(d / "bomb50.png", 8_000, 8_000), "decompression bomb"),
    (lambda d: write_bomb_png(d / "bomb90.png", 10_000, 9_000),  # past Pillow's warning
     "image claims 10000x9000 pixels, over the 50-megapixel limit"),
    (lambda d: write_bomb_png(d / "bomb200.png", 20_000, 10_000),  # past Pillow's hard limit
     "image claims 200,000,000 pixels, over the 50-megapixel limit"),
    (lambda d: (d / "art.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n")
     and d / "art.eps", "EPS/PostScript is not read"),
    (lambda d: d / "missing.png", "no such file"),
    (lambda d: (d / "loop.png").symlink_to(d / "loop.png") or d / "loop.png",
     "a symbolic link on the path points back into itself"),
    (lambda d: (d / "a.png").write_bytes(b"") or d / "a.png" / "x.png",
     "a part of the path is a file, not a folder"),
    (lambda d: d, "directory"),
    (lambda d: os.mkfifo(d / "pipe.png") or d / "pipe.png", "not a regular file"),
])
def test_bad_files_get_a_one_line_reason(tmp_path: Path, make, expected: str) -> None:
    path = make(tmp_path)
    if path.is_file() and "bomb" in path.name:
        assert path.stat().st_size < 1000
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert expected in info.value.message
    assert "\n" not in info.value.message


@pytest.mark.parametrize("make, reason, fix", [
    (lambda d: (d / "empty.jpg").write_bytes(b"") or d / "empty.jpg",
     "empty file (0 bytes)", "copy or download it again"),
    (lambda d: write_truncated(d / "cut.png", "PNG"),
     "truncated or incomplete image file", "copy or download it again"),
    (lambda d: write_truncated(d / "cut.jpg", "JPEG"),
     "truncated or incomplete image file", "copy or download it again"),
    (lambda d: write_bomb_png(d / "bomb50.png", 8_000, 8_000),
     "image claims 8000x8000 pixels, over the 50-megapixel limit",
     "downscale it to a few megapixels first (the model sees 32x32 pixels)"),
    (lambda d: write_bomb_png(d / "bomb200.png", 20_000, 10_000),  # Pillow's own refusal
     "image claims 200,000,000 pixels, over the 50-megapixel limit",
     "downscale it to a few megapixels first (the model sees 32x32 pixels)"),
    (lambda d: write_png_with_text(d / "big_text.png", 1, 2 << 20),  # MAX_TEXT_CHUNK
     "PNG metadata (text or colour profile chunks) too large to read",
     "re-save the image without its metadata"),
    (lambda d: write_png_with_text(d / "much_text.png", 65, 1 << 20),  # MAX_TEXT_MEMORY
     "PNG metadata (text or colour profile chunks) too large to read",
     "re-save the image without its metadata"),
    (lambda d: (d / "notes.png").write_text("this is not an image") and d / "notes.png",
     "not an image (Pillow does not recognise the format)", "convert it to PNG or JPEG"),
    # "cannot decode image: could not create decoder object; re-save it ..."
    (lambda d: write_truncated(d / "cut.webp", "WEBP"),
     "truncated or incomplete image file", "copy or download it again"),
    # cut inside its colour table: "not an image (Pillow does not recognise the format)"
    (lambda d: write_truncated(d / "cut.gif", "GIF", keep=0.01),
     "truncated or incomplete image file", "copy or download it again"),
    # the next four named no fix, or only the OS's words ("cannot open the file (File name
    # too long)")
    (lambda d: d / "missing.png", "no such file", "check the path (ls shows what is there"),
    (lambda d: d / ("n" * 300 + ".png"), "the path or a name in it is too long to open",
     "rename the file or a folder above it to a shorter name"),
    (lambda d: (d / "loop.png").symlink_to(d / "loop.png") or d / "loop.png",
     "a symbolic link on the path points back into itself", "fix or remove the link"),
    (lambda d: (d / "a.png").write_bytes(b"") or d / "a.png" / "x.png",
     "a part of the path is a file, not a folder", "check the path"),
    # found by review: these two named no fix ("error: /dev/zero: not a regular file")
    (lambda d: os.mkfifo(d / "pipe.png") or d / "pipe.png",
     "not a regular file (a pipe, socket or device)",
     "save the image to a file and pass that file"),
    (lambda d: (d / "photos.png").mkdir() or d / "photos.png",
     "is a directory, not an image file", "pass the image files in it"),
    # found by review: "no such file", though the link is there (ls shows it)
    (lambda d: (d / "cat.png").symlink_to(d / "moved" / "photo.png") or d / "cat.png",
     "a link to nothing (it points to ", "fix or remove the link"),
], ids=["empty", "cut-png", "cut-jpeg", "64-megapixels", "200-megapixels", "text-chunk",
        "text-memory", "not-an-image", "cut-webp", "cut-gif", "missing", "name-too-long",
        "link-loop", "file-as-folder", "fifo", "folder", "dangling-link"])
def test_a_bad_files_reason_says_the_fix(tmp_path: Path, make, reason: str, fix: str) -> None:
    """Found by review: a 0-byte file was "not an image (Pillow does not recognise the
    format)", a truncated one carried Pillow's "(image file is truncated (28 bytes not
    processed))", a PNG with too much text "cannot decode image: Too much memory used in
    text chunks: 68157440>MAX_TEXT_MEMORY", and none said what to do. Each reason is now one
    line, in dlbox's words, that ends in its fix; `dlbox predict` prints it as it is."""
    path = make(tmp_path)
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    line = info.value.one_line()
    assert line.startswith(reason) and fix in line.split("; ", 1)[1], line
    assert info.value.message.startswith(reason) and fix in (info.value.hint or "")
    assert "\n" not in line and path.name not in line
    for internal in ("MAX_TEXT", "text chunks:", "bytes not processed", "Truncated File Read",
                     "image file is truncated"):
        assert internal not in line
    (failure,) = predict_with_model_fn(colour_model_fn, CIFAR10_CLASSES, [path])
    assert isinstance(failure, PredictionFailure) and failure.one_line() == line
    # --json keeps them apart: the reason, and the fix
    assert (failure.to_dict()["error"], failure.to_dict()["fix"]) == (
        info.value.message, info.value.hint)


def _noise_bytes(fmt: str, **options: object) -> bytearray:
    import io

    buffer = io.BytesIO()
    noise = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format=fmt, **options)
    return bytearray(buffer.getvalue())


def write_12_bit_jpeg(path: Path) -> Path:
    """A whole JPEG whose frame header (SOF0) says 12 bits a sample: Pillow reads 8 only."""
    data = _noise_bytes("JPEG")
    data[data.index(b"\xff\xc0") + 4] = 12
    path.write_bytes(data)
    return path


def write_jpeg2000_tiff(path: Path) -> Path:
    """A whole TIFF whose Compression tag (259) says JPEG 2000 (34712), which Pillow lacks."""
    data = _noise_bytes("TIFF")
    ifd = struct.unpack("<I", data[4:8])[0]
    for entry in range(struct.unpack("<H", data[ifd:ifd + 2])[0]):
        at = ifd + 2 + 12 * entry
        if struct.unpack("<H", data[at:at + 2])[0] == 259:
            data[at + 8:at + 10] = struct.pack("<H", 34712)
    path.write_bytes(data)
    return path


def write_png_with_a_flipped_byte(path: Path) -> Path:
    """A whole PNG (IEND at its end) with one byte of its compressed pixels flipped."""
    data = _noise_bytes("PNG")
    data[data.index(b"IDAT") + 24] ^= 0xFF
    path.write_bytes(data)
    return path


def _with_tail(path: Path, size: int) -> Path:
    """`path` with `size` bytes appended after its image's end."""
    path.write_bytes(path.read_bytes() + b"trailing data " * (size // 14 + 1))
    return path


def write_camera_jpeg_cut_after_its_thumbnail(path: Path) -> Path:
    """A camera's JPEG (an EXIF segment holding a thumbnail, itself a JPEG with its own end
    marker) cut just after that segment: the re-check found the thumbnail's end marker taken
    for the image's (it was "cannot decode image: unpack_from requires ...")."""
    thumbnail = _noise_bytes("JPEG")
    body = b"Exif\0\0" + bytes(thumbnail)
    app1 = b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body
    photo = bytes(_noise_bytes("JPEG"))
    data = photo[:2] + app1 + photo[2:]
    path.write_bytes(data[:2 + len(app1) + 20])
    return path


def write_cut_tiff(path: Path) -> Path:
    """A compressed TIFF (its directory written after the pixels) cut in half."""
    data = _noise_bytes("TIFF", compression="tiff_lzw")
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("make, reason", [
    (lambda d: write_12_bit_jpeg(d / "deep.jpg"), "cannot decode image: cannot handle 12-bit"),
    (lambda d: write_jpeg2000_tiff(d / "j2k.tif"),
     "cannot decode image: a TIFF file Pillow cannot read (an unknown value, 34712)"),
    (lambda d: write_png_with_a_flipped_byte(d / "flipped.png"),
     "cannot decode image: broken data stream"),
    # data after the end (a phone's motion photo appends a video): the re-check
    (lambda d: _with_tail(write_png_with_a_flipped_byte(d / "flipped.png"), 3000),
     "cannot decode image: broken data stream"),
    (lambda d: _with_tail(write_12_bit_jpeg(d / "deep.jpg"), 100),
     "cannot decode image: cannot handle 12-bit"),
], ids=["12-bit-jpeg", "jpeg2000-tiff", "png-flipped-byte", "png-with-a-tail",
        "jpeg-with-a-tail"])
def test_a_whole_file_pillow_cannot_decode_is_not_called_cut_short(
        tmp_path: Path, make, reason: str) -> None:
    """Review: any file that began as a PNG, JPEG, GIF or TIFF and failed to decode was
    "truncated or incomplete image file ...; copy or download it again", even a whole one in
    a variant Pillow does not read: copying it again changes nothing. Only a file that ends
    early is called cut short; the others get the decoder's reason and "re-save it"."""
    path = make(tmp_path)
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    line = info.value.one_line()
    assert info.value.message.startswith(reason), line
    assert "truncated" not in line and "<_io" not in line and "\n" not in line
    assert info.value.hint == "re-save it as PNG or JPEG with an image editor, or copy it again"


@pytest.mark.parametrize("make", [
    lambda d: write_cut_tiff(d / "cut.tif"),
    lambda d: write_truncated(d / "cut.gif", "GIF", keep=0.01),
    lambda d: write_truncated(d / "cut.webp", "WEBP"),
    lambda d: write_truncated(d / "cut.png", "PNG", keep=0.01),
    lambda d: write_truncated(d / "cut.jpg", "JPEG", keep=0.01),
    lambda d: write_camera_jpeg_cut_after_its_thumbnail(d / "photo.jpg"),
], ids=["tiff", "gif", "webp", "png", "jpeg", "jpeg-with-a-thumbnail"])
def test_a_file_that_ends_early_is_still_called_cut_short(tmp_path: Path, make) -> None:
    """Those that Pillow does not call truncated itself included: a compressed TIFF (its
    directory comes last), a GIF cut in its colour table, a WebP."""
    with pytest.raises(ImageLoadError) as info:
        load_image(make(tmp_path))
    assert info.value.message == ("truncated or incomplete image file (it ends before the "
                                  "image does)")


# --- predictions --------------------------------------------------------------------------


def colour_model_fn(images: torch.Tensor) -> torch.Tensor:
    """A fake model: logits grow with the mean of R, G and B (classes 0, 1, 2 of 10)."""
    means = images.float().mean(dim=(2, 3)) / 255.0
    return torch.cat([8 * means, torch.zeros(images.shape[0], 7)], dim=1)


def use_the_colour_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """predict_images (and `dlbox predict`) with colour_model_fn as the run's model: any
    RUN_DIR, the files read and expanded for real."""
    def fake_load(run_dir, device="auto", checkpoint="last"):
        loaded = SimpleNamespace(model=colour_model_fn, config=SimpleNamespace(),
                                 preprocess=lambda images: images, classes=CIFAR10_CLASSES)
        return loaded, torch.device("cpu")

    monkeypatch.setattr(pr, "load_run_model", fake_load)


def test_predictions_in_order_with_failures_in_place(tmp_path: Path) -> None:
    red = np.zeros((40, 40, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((40, 40, 3), np.uint8)
    blue[..., 2] = 255
    Image.fromarray(red).save(tmp_path / "red.png")
    Image.fromarray(blue).save(tmp_path / "blue.jpg")
    (tmp_path / "bad.png").write_text("nope")
    paths = [tmp_path / "red.png", tmp_path / "bad.png", str(tmp_path / "blue.jpg")]
    results = predict_with_model_fn(colour_model_fn, CIFAR10_CLASSES, paths, top_k=3)
    assert [type(r) for r in results] == [PredictionResult, PredictionFailure, PredictionResult]
    red_result, failure, blue_result = results
    assert red_result.label == "airplane" and blue_result.label == "bird"
    assert red_result.path == str(paths[0]) and failure.path == str(paths[1])
    assert len(red_result.top_k) == 3
    probs = [p for _, p in red_result.top_k]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-9
    assert red_result.confidence == probs[0]
    assert red_result.to_dict()["top_k"][0] == {"label": "airplane", "probability": probs[0]}
    assert failure.to_dict() == {"path": str(paths[1]), "ok": False, "error": failure.error,
                                 "fix": failure.fix}
    assert failure.error.startswith("not an image") and failure.fix.startswith("check that")


def test_top_k_is_clamped_and_validated(tmp_path: Path) -> None:
    Image.fromarray(RGB).save(tmp_path / "x.png")
    (result,) = predict_with_model_fn(colour_model_fn, CIFAR10_CLASSES, [tmp_path / "x.png"],
                                      top_k=50)
    assert len(result.top_k) == 10
    assert sum(p for _, p in result.top_k) == pytest.approx(1.0)
    for wrong in (0, -3, 2.5, True):  # one wording: 0 was told "--top-k must be ...", 2.5
        with pytest.raises(UsageError) as info:  # "top_k must be a whole number ..."
            predict_with_model_fn(colour_model_fn, CIFAR10_CLASSES, [tmp_path / "x.png"],
                                  top_k=wrong)  # type: ignore[arg-type]
        assert info.value.message == f"top_k must be a whole number of at least 1, got {wrong}"
        assert info.value.hint and "top_k=3" in info.value.hint  # it had no hint line


def test_the_cli_words_a_bad_top_k_as_its_flag(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`dlbox predict --top-k 0` names the flag, not the Python argument top_k=."""
    from dlbox.cli import main
    from dlbox.errors import EXIT_USAGE

    use_the_colour_model(monkeypatch)
    Image.fromarray(RGB).save(tmp_path / "x.png")
    assert main(["predict", str(tmp_path), str(tmp_path / "x.png"), "--top-k", "0"]) == EXIT_USAGE
    assert capsys.readouterr().err.splitlines() == [
        "error: --top-k must be at least 1, got 0",
        "hint: e.g. --top-k 3 (the default), or --top-k 1 for the label alone"]


def test_predict_images_uses_the_runs_model_and_preprocessing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[torch.dtype] = []

    def preprocess(images: torch.Tensor) -> torch.Tensor:
        seen.append(images.dtype)
        return images

    def fake_load(run_dir, device="auto", checkpoint="last"):
        loaded = SimpleNamespace(model=colour_model_fn, config=SimpleNamespace(),
                                 preprocess=preprocess, classes=CIFAR10_CLASSES)
        return loaded, torch.device("cpu")

    monkeypatch.setattr(pr, "load_run_model", fake_load)
    blue = np.zeros((10, 10, 3), np.uint8)
    blue[..., 2] = 200
    Image.fromarray(blue).save(tmp_path / "b.png")
    (result,) = predict_images(tmp_path, [tmp_path / "b.png"], device="cpu")
    assert result.label == "bird" and seen == [torch.uint8]
    (flipped,) = predict_images(tmp_path, [tmp_path / "b.png"], device="cpu", tta=True)
    assert flipped.label == "bird" and len(seen) == 3  # TTA: the image and its mirror
    with pytest.raises(UsageError):
        predict_images(tmp_path, [tmp_path / "b.png"], fit="zoom")  # type: ignore[arg-type]


def test_an_empty_path_and_a_dash_fail_on_their_own_in_the_library_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty IMAGE ("$IMG" unset) and `-` (stdin) fail with their own reasons, the others
    still predicted: in predict_images as in `dlbox predict` (only the CLI said so)."""
    use_the_colour_model(monkeypatch)
    monkeypatch.chdir(tmp_path)
    Image.fromarray(RGB).save(tmp_path / "a.png")
    shutil.copy(tmp_path / "a.png", tmp_path / "-")  # a file named - is ./-, not -
    empty = ("an empty path, not an image file (is the shell variable you used set?)",
             "pass the image file's path")
    stdin = ("images are read from files, not from stdin (-)",
             "save the image to a file and pass its path (a file named - is ./-)")
    assert pr.expand_image_paths(["", " ", "-", "a.png"]) == [
        PredictionFailure("", *empty), PredictionFailure(" ", *empty),
        PredictionFailure("-", *stdin), "a.png"]
    results = predict_images(tmp_path, ["", "a.png", "-", "./-"], device="cpu")
    assert [(r.path, type(r)) for r in results] == [
        ("", PredictionFailure), ("a.png", PredictionResult), ("-", PredictionFailure),
        ("./-", PredictionResult)]
    assert (results[0].error, results[2].error) == (empty[0], stdin[0])


def test_a_disk_error_says_to_copy_the_file_again() -> None:
    """EIO cannot be made on a healthy disk: the error a failing one raises. It read "cannot
    open the file (Input/output error)", with no fix; any errno without words of dlbox's own
    still names the system's reason."""
    import errno

    from dlbox.data.images import image_load_error

    failing = image_load_error(OSError(errno.EIO, "Input/output error", "cat.png"))
    assert failing.message == "the disk reported an error reading it (Input/output error)"
    assert failing.hint and failing.hint.startswith("copy the file again from a good copy")
    other = image_load_error(OSError(errno.EBUSY, "Device or resource busy", "cat.png"))
    assert other.message == "cannot open the file (Device or resource busy)"


def test_each_file_read_is_counted_for_the_progress_line(tmp_path: Path) -> None:
    """Found by review: predict on a folder of large photos said nothing for tens of seconds
    (each file decoded before any output); the CLI counts the files read at a terminal."""
    Image.new("RGB", (64, 64), (255, 0, 0)).save(tmp_path / "a.png")
    (tmp_path / "bad.png").write_text("nope")  # a failure is read too, and counted
    Image.new("RGB", (64, 64), (0, 0, 255)).save(tmp_path / "c.png")
    counted: list[tuple[int, int]] = []
    results = predict_with_model_fn(
        colour_model_fn, CIFAR10_CLASSES, sorted(tmp_path.iterdir()),
        on_image=lambda done, total: counted.append((done, total)))
    assert counted == [(1, 3), (2, 3), (3, 3)] and len(results) == 3


@pytest.mark.parametrize("pattern", ["photos/*.jpg", "IMG_00?.JPG", "shot[12].png"])
def test_a_shell_pattern_that_matched_nothing_says_so(
        pattern: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Review: `dlbox predict RUN 'photos/*.jpg'` (a pattern the shell passed on as it was,
    having matched nothing) said only "photos/*.jpg: no such file; check the path"."""
    from dlbox.cli import main
    from dlbox.errors import EXIT_OK, EXIT_PARTIAL

    use_the_colour_model(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    Image.fromarray(RGB).save(tmp_path / "photos" / "a.JPG")
    assert main(["predict", "run", pattern, "photos/a.JPG"]) == EXIT_PARTIAL
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"error: {pattern}: no file matches this pattern (the shell passed it "
                      "on as it was); check the pattern (case counts: *.JPG is not *.jpg), or "
                      "pass the folder itself (predict reads the images in a folder)")
    # a file whose name holds such a character is read as any other
    literal = pattern.replace("/", "_")
    Image.fromarray(RGB).save(tmp_path / literal, format="PNG")
    assert main(["predict", "run", literal]) == EXIT_OK
    assert capsys.readouterr().err == ""


def test_a_quoted_pattern_that_matches_files_reads_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by the docs check: `dlbox predict RUN 'photos/*.png'` (quoted, or "$DIR/*.png"
    in a script) said "no file matches this pattern" of a pattern three files match."""
    from dlbox.cli import main
    from dlbox.errors import EXIT_OK

    def read(*images: str) -> list[str]:
        assert main(["predict", "run", *images, "--json"]) == EXIT_OK
        captured = capsys.readouterr()
        assert captured.err == ""
        return [entry["path"] for entry in json.loads(captured.out)]

    use_the_colour_model(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    for name in ("b.png", "a.png", "c.jpg"):
        Image.fromarray(RGB).save(tmp_path / "photos" / name)
    assert read("photos/*.png") == ["photos/a.png", "photos/b.png"]
    # a folder it matches is read as a folder named (the re-check: "is a directory")
    (tmp_path / "photos" / "sub").mkdir()
    Image.fromarray(RGB).save(tmp_path / "photos" / "sub" / "d.png")
    assert read("photos/s*") == ["photos/sub/d.png"]
    # "$DIR/*.png" with a [ in DIR's name: the folder is the folder named, not a pattern
    (tmp_path / "shots [1]").mkdir()
    Image.fromarray(RGB).save(tmp_path / "shots [1]" / "e.png")
    assert read("shots [1]/*.png") == ["shots [1]/e.png"]


def test_a_phone_jpeg_over_the_limit_is_read_at_the_size_it_decodes_to(tmp_path: Path) -> None:
    """Found by review: a 12000x9000 (108-megapixel) phone JPEG was refused as "over the
    50-megapixel limit", though JPEG decodes it straight at 1/8 scale (1500x1125, under 2
    megapixels) for a 32x32 input. The limit is on the pixels decoded: the JPEG is read; a
    PNG of more than 50 megapixels, decoded whole, is still refused."""
    photo = Image.new("L", (12000, 9000), 0)
    photo.paste(255, (6000, 0, 12000, 9000))  # dark left half, white right half
    photo.save(tmp_path / "phone.jpg", quality=85)
    del photo
    array = load_image(tmp_path / "phone.jpg").numpy()
    assert array.shape == (3, 32, 32)
    assert array[:, :, :14].max() < 20 and array[:, :, 18:].min() > 235
    Image.new("L", (8000, 8000)).save(tmp_path / "scan.png")  # 64 megapixels, decoded whole
    with pytest.raises(ImageLoadError) as info:
        load_image(tmp_path / "scan.png")
    assert info.value.message.startswith("image claims 8000x8000 pixels, over the "
                                         "50-megapixel limit")


def test_files_a_folder_passes_over_are_noted_on_stderr(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Review: a folder's .avif, .heic and extensionless files were skipped in silence (exit
    0), where `dlbox data check`, train and evaluate note what they skip."""
    from dlbox.cli import main
    from dlbox.data.layout import IMAGE_EXTENSIONS_TEXT
    from dlbox.errors import EXIT_OK

    use_the_colour_model(monkeypatch)
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    Image.fromarray(RGB).save(photos / "a.png")
    for name in ("b.avif", "noext", "sub/c.heic", ".DS_Store"):  # the hidden one: not noted
        (photos / name).write_bytes(b"\0" * 16)
    plain = tmp_path / "plain"
    plain.mkdir()
    Image.fromarray(RGB).save(plain / "d.png")
    results = predict_images(tmp_path, [photos, plain], device="cpu")
    assert [(r.path, type(r)) for r in results] == [(str(photos / "a.png"), PredictionResult),
                                                   (str(plain / "d.png"), PredictionResult)]
    assert capsys.readouterr().err.splitlines() == [
        f"note: {photos}: skipped 3 files without an image extension (b.avif, noext, "
        f"sub/c.heic); a folder is read for its {IMAGE_EXTENSIONS_TEXT} files (a file "
        "named itself is tried whatever its extension)"]

    assert main(["predict", str(tmp_path), str(photos), "--json"]) == EXIT_OK
    captured = capsys.readouterr()
    assert [entry["path"] for entry in json.loads(captured.out)] == [str(photos / "a.png")]
    assert captured.err.startswith(f"note: {photos}: skipped 3 files")


def test_a_folder_without_images_says_the_fix_and_what_it_holds(tmp_path: Path) -> None:
    """Review: `"fix": null` for a folder without image files."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "heic").mkdir()
    (tmp_path / "heic" / "x.heic").write_bytes(b"\0")
    empty, heic = pr.expand_image_paths([tmp_path / "empty", tmp_path / "heic"])
    assert isinstance(empty, PredictionFailure) and isinstance(heic, PredictionFailure)
    assert empty.error.startswith("is a folder without image files (.png, .jpg")
    assert empty.fix == heic.fix.split("; ", 1)[1] == (
        "pass image files, or a folder that holds some (a file named itself is tried "
        "whatever its extension)")
    assert heic.fix.startswith("it holds 1 file without an image extension (x.heic); ")
    assert empty.to_dict()["fix"] == empty.fix
