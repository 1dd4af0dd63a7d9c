"""CIFAR-10 in its official Python-pickle layout: load the batches into one tensor per split.

Layout on disk (as the official archive extracts):
    DATA_DIR/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta, readme.html}
Each batch is a Python 2 pickle of a dict: data (uint8 [10000, 3072], rows of R, G, B planes
of 32x32), labels (list of int), batch_label, filenames. Unpickled with encoding="bytes" the
keys are bytes (b"data"); with encoding="latin1" they are str ("data"). Both are accepted, and
so are files re-pickled by Python 3. The Unpickler refuses every global except numpy's array
reconstruction, so a planted file cannot run code; any file that does not decode to such a
dict is a DataError naming it.

Decoding the pickles takes about a second for the training split; the decoded tensors are
kept beside them (dlbox-cache-train.pt, dlbox-cache-test.pt, read back in about a tenth of
that) and used while the batch files' names, sizes and modification times are those they
were made from. A cache that can't be written (a read-only data dir) or read is skipped;
DLBOX_DATA_CACHE=0 turns it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from dlbox import fileio
from dlbox.data.dataset import ImageDataset
from dlbox.data.layout import (
    BATCHES_DIRNAME,
    CACHE_FILE_PREFIX,
    CIFAR10_CLASSES,
    META_FILE,
    SPLITS,
    TEST_BATCHES,
    TRAIN_BATCHES,
    batches_dir,
)
from dlbox.data.paths import data_flag, fetch_hint
from dlbox.errors import DataError, FileWriteError, NoDataError
from dlbox.processes import left_by_dead_writer, owner_id

CACHE_ENV_VAR = "DLBOX_DATA_CACHE"
CACHE_FORMAT = 1


def refetch_hint(directory: Path) -> str:
    """Check and extract again the data dir whose batches (in `directory`, the
    cifar-10-batches-py folder or the data dir itself) are damaged: with its `--data DIR`,
    so that the commands pasted act on it, not on the default data dir (review)."""
    directory = Path(directory)
    where = data_flag(directory.parent if directory.name == BATCHES_DIRNAME else directory)
    return (f"run `dlbox data check{where}`, then `dlbox data fetch --force{where}` (with the "
            "same --from) to extract it again")

# The layout's names, re-exported: they live in dlbox.data.layout, which needs no torch.
__all__ = ["BATCHES_DIRNAME", "CIFAR10_CLASSES", "META_FILE", "SPLITS", "TEST_BATCHES",
           "TRAIN_BATCHES", "batches_dir", "cache_path", "load_cifar10", "read_batch",
           "read_batch_file", "read_class_names"]


def _get(record: dict[Any, Any], key: str) -> Any:
    """A field of an unpickled batch, whichever encoding made its keys."""
    if key in record:
        return record[key]
    bkey = key.encode("ascii")
    if bkey in record:
        return record[bkey]
    raise KeyError(key)


# What a CIFAR-10 batch may name, and nothing else: numpy's array reconstruction (numpy 1 wrote
# numpy.core, numpy 2 writes numpy._core; protocol 5 re-pickles use _frombuffer) and, in the
# Python 2 style protocol-2 pickles numpy writes, _codecs.encode for the raw bytes. The
# official files need only the first three; see _allowed_global for how each is narrowed.
_ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("__builtin__", "bytes"),  # how protocol 2 writes an empty bytes value (b""), e.g. the
    ("builtins", "bytes"),  # buffer of an empty array: narrowed to bytes() with no argument
})


def _plain_dtype(*args: Any) -> np.dtype[Any]:
    """numpy.dtype as a batch may call it: no object dtypes (they would hold Python objects)."""
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise pickle.UnpicklingError(f"object dtype {dtype} is not allowed")
    return dtype


def _latin1_encode(text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    """_codecs.encode as numpy's protocol-2 pickles use it: a str to bytes, through latin-1."""
    if not isinstance(text, str) or str(encoding).lower().replace("-", "") != "latin1" \
            or errors != "strict":
        raise pickle.UnpicklingError("_codecs.encode is allowed only as str -> latin-1 bytes")
    return text.encode("latin-1")


def _empty_bytes(*args: Any) -> bytes:
    """bytes as a batch may call it: with no argument (protocol 2's b""), nothing else."""
    if args:
        raise pickle.UnpicklingError("bytes() is allowed only without arguments")
    return b""


class _ForbiddenGlobal(pickle.UnpicklingError):
    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.qualified = f"{module}.{name}"


class _BatchUnpickler(pickle.Unpickler):
    """An Unpickler that builds only dicts, lists, str/bytes, numbers and plain numpy arrays:
    any other global a file names (which is how a pickle runs code) is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise _ForbiddenGlobal(module, name)
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) == ("numpy", "dtype"):
            return _plain_dtype
        if name == "bytes":
            return _empty_bytes
        return super().find_class(module, name)


def _not_a_batch(path: Path, error: BaseException) -> DataError:
    detail = " ".join(str(error).split())
    detail = f"{type(error).__name__}: {detail}" if detail else type(error).__name__
    return DataError(f"{path} is not a CIFAR-10 batch: {detail}",
                     hint=refetch_hint(path.parent))


def read_batch_file(path: Path) -> dict[Any, Any]:
    """One batch (or batches.meta) unpickled as a dict, by an Unpickler that refuses every
    global but numpy's array reconstruction: a file that names anything else (os.system, a
    module of its own) is a DataError, and nothing in it runs."""
    path = Path(path)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        folder = path.parent
        data_dir = folder.parent if folder.name == BATCHES_DIRNAME else folder
        raise DataError(
            f"CIFAR-10 batch file {path} is missing",
            hint=f"run `dlbox data fetch{data_flag(data_dir)}` (or pass --data DIR pointing "
                 "at the extracted data)",
        ) from None
    except OSError as error:
        raise DataError(f"cannot read CIFAR-10 batch file {path}: {error.strerror or error}",
                        hint="check that the file exists and is readable") from None
    with handle:
        try:
            record = _BatchUnpickler(handle, encoding="bytes").load()
        except _ForbiddenGlobal as error:
            raise DataError(
                f"{path} is not a CIFAR-10 batch: it refers to {error.qualified}, which a "
                "CIFAR-10 batch never does (refused, nothing in it was run)",
                hint=refetch_hint(path.parent)) from None
        except OSError as error:
            raise DataError(f"cannot read CIFAR-10 batch file {path}: "
                            f"{error.strerror or error}",
                            hint="check that the file exists and is readable") from None
        except Exception as error:  # any other damage: truncated, wrong types, not a pickle
            raise _not_a_batch(path, error) from None
    if not isinstance(record, dict):
        raise DataError(f"{path} is not a CIFAR-10 batch: it holds a {type(record).__name__}, "
                        "not a dict", hint=refetch_hint(path.parent))
    return record


def _a_type(value: Any) -> str:
    """What a value is, for a message: "None", "a dict", "an int"."""
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _pixel_array(value: Any) -> np.ndarray:
    """A batch's `data` as uint8. Only integers in 0..255 pass: a plain cast would turn pixels
    stored as floats in [0, 1] into a black image and wrap 256 to 0, without a word. Only an
    array passes: np.asarray of a list nested in itself (a few KB of pickle naming the same
    list again and again) would expand it to billions of values (review)."""
    if not isinstance(value, np.ndarray):
        raise ValueError(f"data is {_a_type(value)}, not an array of pixels")
    array = value
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind not in "iu":
        raise ValueError(f"data holds {array.dtype} values, not uint8 pixels")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"data holds values {array.min()}..{array.max()}, outside the "
                         "pixel range 0..255")
    return array.astype(np.uint8)


def _label_array(value: Any) -> np.ndarray:
    """A batch's `labels` as int64; labels that are not integers (3.7, "cat", True) are
    refused, never rounded or parsed. A list is looked at item by item before numpy sees it
    (as long as the list, never more): one nested in itself would expand to billions of labels
    (review: a 31 KB batch took many GB)."""
    if isinstance(value, (list, tuple)):
        bad = next((i for i, item in enumerate(value) if type(item) is not int), None)
        if bad is not None:  # (True is a bool, not an int: refused too)
            wrong = value[bad]
            if isinstance(wrong, (list, tuple, dict)):
                raise ValueError(f"labels are a list of {type(wrong).__name__}s, not a flat "
                                 "list of integers")
            raise ValueError(f"labels are {type(wrong).__name__} values, not integers")
        array = np.asarray(value, dtype=np.int64)
    elif isinstance(value, np.ndarray):
        array = value
    else:
        raise ValueError(f"labels are {_a_type(value)}, not a list of integers")
    if array.size == 0:
        return array.astype(np.int64)  # np.asarray([]) is float64
    if array.dtype.kind not in "iu":
        raise ValueError(f"labels are {array.dtype} values, not integers")
    return array.astype(np.int64)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as (uint8 [N, 3, 32, 32], int64 [N])."""
    record = read_batch_file(path)
    try:
        data = _pixel_array(_get(record, "data"))
        labels = _label_array(_get(record, "labels"))
    except KeyError as missing:
        raise DataError(f"CIFAR-10 batch file {path} has no '{missing.args[0]}' field",
                        hint=refetch_hint(path.parent)) from None
    except Exception as error:  # labels that are not integers, data that is not numbers, ...
        raise _not_a_batch(path, error) from None
    if (data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.ndim != 1
            or data.shape[0] != labels.shape[0]):
        raise DataError(f"CIFAR-10 batch file {path} has data of shape {data.shape} "
                        f"for labels of shape {labels.shape}",
                        hint=refetch_hint(path.parent))
    return data.reshape(-1, 3, 32, 32), labels


def read_class_names(directory: Path) -> tuple[str, ...]:
    path = directory / META_FILE
    if not path.exists():
        return CIFAR10_CLASSES
    record = read_batch_file(path)
    try:
        names = _get(record, "label_names")
        if isinstance(names, (str, bytes)):
            raise TypeError(f"label_names is a {type(names).__name__}, not a list")
        # str() of a list nested in itself would expand it (review): names are str or bytes
        names = list(names)
        bad = next((i for i, n in enumerate(names) if not isinstance(n, (str, bytes))), None)
        if bad is not None:
            raise ValueError(f"label_names holds {_a_type(names[bad])}, not a class name")
        classes = tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)
    except KeyError:
        raise DataError(f"CIFAR-10 batch file {path} has no 'label_names' field",
                        hint=refetch_hint(path.parent)) from None
    except Exception as error:
        raise _not_a_batch(path, error) from None
    # Review: ten times "cat" trained, and reported one class, "cat", at 0 %: the per-class
    # figures and predictions.csv's columns are keyed by name.
    repeated = sorted(name for name, count in Counter(classes).items() if count > 1)
    if repeated:
        what = "class" if len(repeated) == 1 else "classes"
        raise DataError(f"CIFAR-10 batch file {path} names the {what} "
                        f"{' and '.join(repr(name) for name in repeated)} more than once: each "
                        "class needs a name of its own", hint=refetch_hint(path.parent))
    return classes


def cache_path(data_dir: str | Path, split: str) -> Path:
    """Where the decoded tensors of `split` are kept: beside the batches."""
    return batches_dir(data_dir) / f"{CACHE_FILE_PREFIX}{split}.pt"


def cache_enabled() -> bool:
    return os.environ.get(CACHE_ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


def _fingerprint(directory: Path, names: tuple[str, ...]) -> str | None:
    """What the cache must have been made from: each file's name, size, mtime, inode and
    ctime (a copy that keeps size and mtime, as `cp -p` or `rsync -a` make, still differs in
    the last two, which no tool can set)."""
    parts = []
    for name in (*names, META_FILE):
        try:
            stat = (directory / name).stat()
        except OSError:
            return None
        parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}:"
                     f"{stat.st_ctime_ns}")
    return hashlib.sha256("\n".join([str(CACHE_FORMAT), *parts]).encode()).hexdigest()


def _read_cache(path: Path, key: str, directory: Path) -> ImageDataset | None:
    try:
        state = torch.load(path, weights_only=True)
        images, labels, classes = state["images"], state["labels"], tuple(state["classes"])
        ok = (state["key"] == key and images.dtype == torch.uint8 and images.dim() == 4
              and tuple(images.shape[1:]) == (3, 32, 32) and labels.dtype == torch.int64
              and labels.shape == (images.shape[0],)
              and all(isinstance(name, str) for name in classes))
    except Exception:  # missing, damaged, another format: decode the batches instead
        return None
    return ImageDataset(images, labels, classes, str(directory)) if ok else None


def _killed_writes(path: Path) -> list[Path]:
    """The temp files that loads killed mid-write (SIGKILL) left beside the cache `path`:
    each whose writer has ended, as its name says (its owner id, as a fetch's temp folder
    has), or (another machine's, or a name without an owner, an older dlbox's) that is over
    an hour old (a younger one may be another load's, being written now)."""
    prefix = f".{path.name}."
    killed = []
    for temp in sorted(path.parent.glob(f"{prefix}*.tmp")):
        with contextlib.suppress(OSError):
            if left_by_dead_writer(temp, prefix):
                killed.append(temp)
    return killed


def _clear_killed_writes(path: Path) -> None:
    """Delete _killed_writes(path), each as big as the cache (150 MB for train). Asked by
    every load that uses the cache, not only by one that writes it: once a cache is in place
    no load writes again (review: the temp file stayed for good, then for an hour)."""
    for killed in _killed_writes(path):
        with contextlib.suppress(OSError):
            killed.unlink()


def killed_cache_writes(directory: Path) -> list[str]:
    """For `dlbox data check`: the temp files of killed cache writes in the batches folder."""
    notes = []
    for split in SPLITS:
        for killed in _killed_writes(cache_path(directory, split)):
            with contextlib.suppress(OSError):
                notes.append(f"{killed} ({killed.stat().st_size / 1e6:.0f} MB) is the temp "
                             "file of a data cache write that was killed: the next train or "
                             "evaluate deletes it (or delete it by hand)")
    return notes


def write_through_memory(path: Path, writer: Callable[[IO[bytes]], None]) -> None:
    """dlbox.fileio.write_through_memory with the writer's owner id in the temp file's name:
    a killed write's file goes as soon as its process has (_clear_killed_writes)."""
    fileio.write_through_memory(path, writer, tag=owner_id(namespace=True))


def _write_cache(path: Path, key: str, dataset: ImageDataset) -> None:
    state = {"key": key, "images": dataset.images, "labels": dataset.labels,
             "classes": list(dataset.classes)}
    _clear_killed_writes(path)
    try:
        write_through_memory(path, lambda buffer: torch.save(state, buffer))
    except (OSError, FileWriteError, MemoryError, RuntimeError):
        # a read-only or full data dir, or no memory for the buffer (torch.save reports that
        # as a RuntimeError): no cache, and nothing else lost. A signal is none of these.
        pass


def load_cifar10(data_dir: str | Path, split: str = "train",
                 cache: bool | None = None) -> ImageDataset:
    """Load a whole split into memory as uint8 tensors (about 150 MB for train).

    cache: keep and reuse the decoded tensors beside the batches (default: on, unless
    DLBOX_DATA_CACHE=0)."""
    if split not in SPLITS:
        raise DataError(f"unknown split '{split}'", hint=f"use one of {', '.join(SPLITS)}")
    directory = batches_dir(data_dir)
    if not directory.is_dir():
        raise NoDataError(f"no CIFAR-10 data at {directory}", data_dir,
                          hint=fetch_hint(data_dir))
    names = TRAIN_BATCHES if split == "train" else TEST_BATCHES
    use_cache = cache_enabled() if cache is None else cache
    key = _fingerprint(directory, names) if use_cache else None
    if key is not None:
        cached = _read_cache(cache_path(directory, split), key, directory)
        if cached is not None:
            _clear_killed_writes(cache_path(directory, split))
            return cached
    # Each batch is read by its path: a `dlbox data fetch --force` swapping another archive
    # in meanwhile gave a dataset of both (review). Read again then; never return a mix.
    for _ in range(READ_TRIES):
        before = _fingerprint(directory, names)
        try:
            dataset = _decode(directory, names)
        except DataError:  # a file gone or cut short mid-swap is no damage of the data
            if _fingerprint(directory, names) == before:
                raise
            continue
        if _fingerprint(directory, names) == before:
            break
    else:
        raise DataError(f"the batches in {directory} changed while they were read (a `dlbox "
                        "data fetch --force`?)", hint="run the command again when the fetch ends")
    if use_cache and before is not None:
        _write_cache(cache_path(directory, split), before, dataset)
    return dataset


READ_TRIES = 3  # reads of a split whose batch files keep changing, before giving up


def _decode(directory: Path, names: tuple[str, ...]) -> ImageDataset:
    parts = [read_batch(directory / name) for name in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    classes = read_class_names(directory)
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        raise DataError(f"CIFAR-10 labels in {directory} fall outside 0..{len(classes) - 1}",
                        hint=refetch_hint(directory))
    return ImageDataset(torch.from_numpy(images), torch.from_numpy(labels), classes,
                        str(directory))
