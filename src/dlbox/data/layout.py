"""The layouts on disk, by name only (no torch here, so `dlbox data fetch`, the archive
checks and the CLI start without importing it): CIFAR-10's official one,

    DATA_DIR/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta, readme.html}

and the file extensions an image tree (DATA_DIR/<split>/<class>/<image>) is read for.
"""

from __future__ import annotations

from pathlib import Path

BATCHES_DIRNAME = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
META_FILE = "batches.meta"
# dlbox's own decoded-tensor cache beside the batches (dlbox.data.cifar10.cache_path): never
# part of the dataset, so an archive packed from a data dir dlbox trained from carries it.
CACHE_FILE_PREFIX = "dlbox-cache-"
# Every file dlbox itself writes beside the batches (that cache, the fetch's
# dlbox-checksums.json record) starts with this.
DLBOX_FILE_PREFIX = "dlbox-"
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
SPLITS = ("train", "test")
# The files an image tree (dlbox.data.imagefolder) is read for, and what a folder given to
# `dlbox predict` is searched for: the formats Pillow reads that photos and datasets come in.
# Any other file in a class folder is passed over, and `dlbox data check` notes it.
# .jfif and .jpe are JPEGs as browsers save them (review: Chrome's photo.jfif was passed over);
# .ppm, .pgm, .pbm and .pnm are Netpbm's, which Pillow reads (review: a tree of .ppm files
# was passed over, though `dlbox predict` reads each when named).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jfif", ".jpe", ".gif", ".bmp", ".webp", ".tif",
                    ".tiff", ".ppm", ".pgm", ".pbm", ".pnm")
IMAGE_EXTENSIONS_TEXT = ", ".join(IMAGE_EXTENSIONS)  # for messages: ".png, .jpg, ..."


def batches_dir(data_dir: str | Path) -> Path:
    """The cifar-10-batches-py folder: `data_dir` itself or the folder of that name in it."""
    data_dir = Path(data_dir)
    if data_dir.name == BATCHES_DIRNAME:
        return data_dir
    return data_dir / BATCHES_DIRNAME
