"""Class-per-folder image trees (the ImageFolder layout) as an in-memory ImageDataset.

    ROOT/<class>/<name>.png|jpg|webp|ppm|...   (IMAGE_EXTENSIONS) classes sorted by folder
                                               name -> labels 0..K-1

Images are ordered round-robin across classes (each class's files sorted by name; class 0's
first, class 1's first, ..., then the second of each), so the first N images of a split are
balanced across classes and `--num-train N` never keeps just one class.

Every image is read by dlbox.data.images.read_image, the same reading `dlbox predict` gives
the user's own images: EXIF rotation applied, converted to RGB (transparent pixels over
white), its centre square resized to SIZE x SIZE (Lanczos) when it is not that size already.
Decoding runs in a thread pool: Pillow releases the GIL while it decodes, so 50,000 small
JPEGs load in seconds. Nothing is cached on disk. The split comes back as an
ImageTreeDataset, which knows each image's file (predictions.csv's `path` column).

A folder or file of the tree that is there but may not be read (its permissions) is an
ImageTreeAccessError naming it, whose hint is to fix its permissions, never to replace it.
"""

from __future__ import annotations

import os
import stat
import threading
import unicodedata
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dlbox.data.dataset import ImageDataset
from dlbox.data.images import ImageLoadError, quiet_pillow_warnings, read_image
from dlbox.data.layout import IMAGE_EXTENSIONS, IMAGE_EXTENSIONS_TEXT, SPLITS
from dlbox.errors import DataError
from dlbox.fileio import ACCESS_ERRNOS, unsearchable_folder
from dlbox.text import listed, shell_quote, shown_name

# IMAGE_EXTENSIONS(_TEXT) re-exported: they live in dlbox.data.layout, which needs no torch.
__all__ = ["ACCESS_ERRNOS", "DEFAULT_SIZE", "IMAGE_EXTENSIONS", "IMAGE_EXTENSIONS_TEXT",
           "NOT_CLASS_FOLDERS", "ImageTreeAccessError", "ImageTreeDataset", "decode_image",
           "describe_skipped", "file_access_error", "find_classes", "folder_access_error",
           "has_image_extension", "interleave_classes", "is_hidden", "is_image_file",
           "list_image_files", "load_image_folder", "no_images_error", "skipped_entries"]

DEFAULT_SIZE = 32


@dataclass(frozen=True)
class ImageTreeDataset(ImageDataset):
    """A split of an image tree: an ImageDataset that knows each image's file, as a path
    relative to `source` (the split folder), "cat/000.png": image i is files[i], so a row of
    predictions.csv can be traced back to its file."""

    files: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.files) != len(self):
            raise ValueError(f"{len(self.files)} files for {len(self)} images")

    def subset(self, count: int | None) -> ImageTreeDataset:
        kept = super().subset(count)
        if kept is self:
            return self
        return ImageTreeDataset(kept.images, kept.labels, self.classes, self.source,
                                self.files[:len(kept)])


class ImageTreeAccessError(DataError):
    """A folder or image file of an image tree that is there but may not be read (its
    permissions, or those of a folder above it): the fix is its permissions, not a new copy."""

    def __init__(self, message: str, hint: str, path: Path) -> None:
        super().__init__(message, hint=hint)
        self.path = path


def folder_access_error(folder: Path, what: str = "folder") -> ImageTreeAccessError:
    """`folder` (a "class folder", a "split folder", ...) may not be listed or searched."""
    return ImageTreeAccessError(
        f"cannot read the {what} {folder}: permission denied",
        hint=f"fix its permissions: `chmod u+rx {folder}`, or, if another user owns it "
             f"(`ls -ld {folder}` shows who), run dlbox as that user or take it over with "
             f"`sudo chown -R $USER {folder}`", path=folder)


def file_access_error(path: Path) -> ImageTreeAccessError:
    """The image file `path` may not be read."""
    return ImageTreeAccessError(
        f"image {shown_name(path)}: permission denied",
        hint=f"fix its permissions: `chmod u+r {shell_quote(path)}`, or, if another user owns "
             f"it (`ls -l {shell_quote(path)}` shows who), run dlbox as that user or take it "
             f"over with `sudo chown $USER {shell_quote(path)}`", path=path)


def _is_access_error(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in ACCESS_ERRNOS


def _mode(path: Path) -> int | None:
    """`path`'s st_mode (links followed), None when there is nothing there (or a broken link);
    ImageTreeAccessError naming the folder that keeps it out of reach. Path.is_dir/is_file
    would raise a bare PermissionError here (Python < 3.14) or say False (3.14)."""
    try:
        return os.stat(path).st_mode
    except OSError as error:
        if _is_access_error(error):
            raise folder_access_error(unsearchable_folder(path) or path.parent) from None
        return None


def _entries(folder: Path, what: str) -> list[tuple[Path, int | None]]:
    """(path, st_mode) of every entry of `folder` that is not hidden (is_hidden), sorted by
    name; mode None for a broken link. A folder that may not be listed, or whose entries may
    not be looked at (read but no search permission), raises ImageTreeAccessError naming it."""
    try:
        names = sorted(os.listdir(folder))
    except OSError as error:
        if _is_access_error(error):
            raise folder_access_error(folder, what) from None
        raise
    found: list[tuple[Path, int | None]] = []
    for name in names:
        path = folder / name
        if is_hidden(path):
            continue
        try:
            mode: int | None = os.stat(path).st_mode
        except OSError as error:
            if not _is_access_error(error):
                mode = None  # a broken link, or gone since the listing
            else:
                try:
                    os.lstat(path)
                except OSError:  # the folder itself may not be searched
                    raise folder_access_error(folder, what) from None
                # a link whose target is out of reach: a file, and reading it says why
                mode = stat.S_IFREG
        found.append((path, mode))
    return found


def has_image_extension(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def decode_image(source: str | Path | bytes, size: int = DEFAULT_SIZE) -> np.ndarray:
    """One image file (path or bytes) as uint8 [3, size, size] RGB, read exactly as
    `dlbox predict` reads the user's images (dlbox.data.images.read_image: EXIF rotation,
    RGB on white, centre square, Lanczos), so a model meets its inputs the same way in
    training and in prediction.

    Raises DataError naming the file when it is not an image, is truncated, or is so large it
    could be a decompression bomb. Safe to call from several threads at once.
    """
    try:
        return read_image(source, size, fit="crop")
    except ImageLoadError as error:
        name = "<bytes>" if isinstance(source, bytes) else shown_name(source)
        if not isinstance(source, bytes) and (isinstance(error.__cause__, PermissionError)
                                              or error.message == "permission denied"):
            raise file_access_error(Path(source)) from None
        # The reason's own fix (downscale it, re-save it without its metadata, copy it
        # again...), or failing one, replacing it; removing it from the tree always works.
        fix = error.hint or "replace that file with a readable PNG or JPEG"
        raise DataError(f"image {name}: {error.message}",
                        hint=f"{fix}, or remove it from the image folder") from None


def is_image_file(path: Path) -> bool:
    return has_image_extension(path) and path.is_file()


# Folders that tools put beside the user's own and that never hold a class: macOS's zip
# leaves __MACOSX/ (full of ._name.jpg resource forks) next to every folder it zipped.
NOT_CLASS_FOLDERS = frozenset({"__MACOSX"})


def is_hidden(path: Path) -> bool:
    """A name no image tree means as data: hidden (.DS_Store, ._x.jpg, .ipynb_checkpoints)
    or a tool's by-product (__MACOSX)."""
    return path.name.startswith(".") or path.name in NOT_CLASS_FOLDERS


def find_classes(root: str | Path, check_names: bool = False) -> tuple[str, ...]:
    """Class names: the sub-folders of `root` (hidden ones and __MACOSX skipped), sorted.
    Raises ImageTreeAccessError when `root` is there but may not be read; with
    `check_names` (a split about to be loaded, not a folder looked at to tell its layout),
    DataError for a name that is not UTF-8."""
    root = Path(root)
    mode = _mode(root)
    if mode is None or not stat.S_ISDIR(mode):
        return ()
    names = tuple(path.name for path, mode in _entries(root, "folder")
                  if mode is not None and stat.S_ISDIR(mode))
    for name in names if check_names else ():
        _check_class_name(root, name)
    return names


def convmv_command(tree: str, form: str) -> str:
    """The command that renames every name under `tree` (shell-quoted) to Unicode `form`
    ("nfc", "nfd"), for the hints about class names in two forms."""
    return (f"convmv -r -f utf8 -t utf8 --{form} --notest {tree} (Debian: apt-get install "
            "convmv)")


def _check_class_name(root: Path, name: str) -> None:
    """A class name goes into predictions.csv, metrics.json and the checkpoint, all UTF-8:
    a folder name in another encoding (Latin-1 from an old zip, say; Python holds its bytes
    as surrogates) is refused before training rather than failing every report after it."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        tree = root.parent if root.name in SPLITS else root  # every split's folders
        raise DataError(f"the class folder {shown_name(root / name)} has a name that is not "
                        "UTF-8",
                        hint="rename it to UTF-8 (`convmv -f latin1 -t utf8 --notest -r "
                             f"{shell_quote(tree)}` renames a Latin-1 tree): class names are "
                             "written to predictions.csv and metrics.json") from None


def interleave_classes(per_class: Sequence[Sequence[Path]]) -> tuple[list[Path], list[int]]:
    """(files, labels) taking one file from each class in turn (class 0's first file, class
    1's first, ..., then every class's second file, ...); a class that runs out is skipped.
    So the first N images of a split hold every class as equally as the class sizes allow,
    which is what `ImageDataset.subset(N)`, i.e. `--num-train N`, keeps."""
    files: list[Path] = []
    labels: list[int] = []
    longest = max((len(members) for members in per_class), default=0)
    for rank in range(longest):
        for label, members in enumerate(per_class):
            if rank < len(members):
                files.append(members[rank])
                labels.append(label)
    return files, labels


def list_image_files(
    root: str | Path, classes: Sequence[str] | None = None,
) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """(files, labels, classes) of an ImageFolder tree, in the order the split is loaded:
    files sorted by name within each class, then interleaved across classes (see
    interleave_classes). Image i of a loaded split, and row `index` i of predictions.csv,
    is files[i]."""
    root = Path(root)
    found = find_classes(root, check_names=True)
    names = tuple(classes) if classes is not None else found
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise DataError(f"image folder {root} has class folders {unknown} not in the class list",
                        hint="give every split the same class folders")
    per_class: list[list[Path]] = []
    for name in names:
        folder = root / name
        mode = _mode(folder)
        per_class.append([path for path, kind in _entries(folder, "class folder")
                          if kind is not None and stat.S_ISREG(kind) and has_image_extension(path)]
                         if mode is not None and stat.S_ISDIR(mode) else [])
    files, labels = interleave_classes(per_class)
    return files, labels, names


def skipped_entries(root: str | Path, classes: Sequence[str] | None = None,
                    ) -> tuple[list[str], list[str], list[str], list[str]]:
    """What loading `root` passes over, as paths relative to it: (files in a class folder
    without an image extension (IMAGE_EXTENSIONS), files lying in `root` outside any class
    folder, folders nested inside a class folder: only ROOT/<class>/<image> is read, and
    names with an image extension that are no file: a link to nothing, a pipe). Hidden
    names (.DS_Store, ._x.jpg) are left out: they are never images the user meant."""
    root = Path(root)
    names = tuple(classes) if classes is not None else find_classes(root)
    not_images: list[str] = []
    loose: list[str] = []
    nested: list[str] = []
    not_files: list[str] = []
    root_mode = _mode(root)
    if root_mode is None or not stat.S_ISDIR(root_mode):
        return not_images, loose, nested, not_files
    loose.extend(entry.name for entry, mode in _entries(root, "folder")
                 if mode is None or not stat.S_ISDIR(mode))
    for name in names:
        folder = root / name
        mode = _mode(folder)
        if mode is None or not stat.S_ISDIR(mode):
            continue
        for entry, kind in _entries(folder, "class folder"):
            if kind is not None and stat.S_ISDIR(kind):
                nested.append(f"{name}/{entry.name}/")
            elif not has_image_extension(entry):
                not_images.append(f"{name}/{entry.name}")
            elif kind is None or not stat.S_ISREG(kind):  # review: "without an extension"
                not_files.append(f"{name}/{entry.name}")
    return not_images, loose, nested, not_files


def describe_skipped(not_images: Sequence[str], loose: Sequence[str],
                     nested: Sequence[str], not_files: Sequence[str] = ()) -> list[str]:
    """skipped_entries' lists in words, one phrase per kind that is not empty:
    "2 files without an image extension (a/x.heic, a/y.txt)", ..."""
    phrases = []
    for items, one, many in (
            (not_images, "file without an image extension", "files without an image extension"),
            (loose, "file outside the class folders", "files outside the class folders"),
            (nested, "folder inside a class folder", "folders inside class folders"),
            (not_files, "image name that is no file (a link to nothing, a pipe)",
             "image names that are no files (links to nothing, pipes)")):
        if items:
            shown = listed([shown_name(item) for item in items], 3)
            phrases.append(f"{len(items)} {one if len(items) == 1 else many} ({shown})")
    return phrases


def no_images_error(root: Path, classes: Sequence[str]) -> DataError:
    """The error for a tree whose class folders hold no image file: where the images go,
    which extensions are read, and what is there instead (other files, nested folders)."""
    shown = listed([f"{name}/" for name in classes], 3)
    instead = describe_skipped(*skipped_entries(root, classes))
    return DataError(
        f"image folder {root} holds no images: its class folders ({shown}) have no file "
        f"ending in {IMAGE_EXTENSIONS_TEXT}",
        hint=f"put each class's images directly in its folder, {root}/<class>/<image>, as "
             f"{IMAGE_EXTENSIONS_TEXT} files"
             + (f"; passed over now: {'; '.join(instead)}" if instead else ""))


def _worker_count(n_files: int) -> int:
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:  # pragma: no cover - macOS, Windows
        cores = os.cpu_count() or 1
    # Pillow releases the GIL only while decoding, so more threads than cores buy little.
    return max(1, min(n_files // 256 + 1, cores, 32))


def load_image_folder(root: str | Path, classes: Sequence[str] | None = None,
                      size: int = DEFAULT_SIZE,
                      failures: list[DataError] | None = None,
                      limit: int | None = None) -> ImageTreeDataset:
    """Load ROOT/<class>/<image> (IMAGE_EXTENSIONS) into memory as uint8 [N, 3, size, size]
    plus labels.

    `classes` fixes the class order (so train and test splits agree on labels); by default it
    is the sorted folder names. The first file that can't be read raises its DataError (its
    hint, for a split of a tree, names `dlbox data check`, which lists every such file), unless
    `failures` is given (`dlbox data check`): then every such error is appended to it, in file
    order, and the load goes on (those images are left black).
    `limit`: decode only the first `limit` files (the split's `subset(limit)`, without
    decoding the rest: `--num-train 500` on a tree of 50,000 JPEGs).
    """
    root = Path(root)
    mode = _mode(root)
    if mode is None or not stat.S_ISDIR(mode):
        raise DataError(f"no image folder at {root}",
                        hint="pass --data DIR holding <split>/<class>/<image>.png|jpg, or run "
                             "`dlbox data fetch`")
    files, labels, names = list_image_files(root, classes)
    if not names:
        raise DataError(f"image folder {root} has no class sub-folders",
                        hint=f"lay it out as {root}/<class>/<image>, one folder per class, "
                             f"the images ending in {IMAGE_EXTENSIONS_TEXT}")
    if not files:
        raise no_images_error(root, names)
    if limit is not None:  # list_image_files interleaves the classes: the first N cover all
        files, labels = files[:limit], labels[:limit]
    images = np.empty((len(files), 3, size, size), dtype=np.uint8)
    # Set when the load is failing (a bad file) or interrupted (Ctrl-C): the other threads
    # stop at their next image instead of decoding the rest of the tree first.
    abandon = threading.Event()

    failed: dict[int, DataError] = {}

    def decode_range(start: int, stop: int) -> None:
        for i in range(start, stop):
            if abandon.is_set():
                return
            try:
                images[i] = decode_image(files[i], size)
            except DataError as error:
                if failures is None:
                    if root.name in SPLITS:  # review: train named only the first
                        error.hint = (f"{error.hint}; `dlbox data check --data "
                                      f"{shell_quote(root.parent)}` lists every unreadable image")
                    raise
                images[i] = 0
                failed[i] = error  # one key per thread's own range: no lock needed

    workers = _worker_count(len(files))
    bounds = np.linspace(0, len(files), workers + 1).astype(int)
    with quiet_pillow_warnings():  # once for all threads: warnings' filters are process-wide
        if workers == 1:
            decode_range(0, len(files))
        else:
            with ThreadPoolExecutor(max_workers=workers,
                                    thread_name_prefix="dlbox-decode") as pool:
                futures = [pool.submit(decode_range, int(a), int(b))
                           for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
                try:
                    wait(futures, return_when=FIRST_EXCEPTION)
                    for future in futures:
                        future.result()  # re-raises the first DataError
                except BaseException:
                    abandon.set()
                    raise
    if failures is not None:
        failures.extend(failed[i] for i in sorted(failed))
    return ImageTreeDataset(torch.from_numpy(images), torch.tensor(labels, dtype=torch.int64),
                            tuple(names), str(root),
                            tuple(path.relative_to(root).as_posix() for path in files))


def refuse_another_unicode_form(model_classes: Sequence[str], data_classes: Sequence[str],
                                where: str, what: str = "the test data") -> None:
    """Data (`what`, in the split folder `where`) whose class names are a run's in another
    Unicode form (café decomposed, copied from a Mac, for a run trained on café composed):
    "it lacks café; it adds café" said nothing (the re-check), nor a resume's two lists."""
    def form(name: str) -> str:
        return "NFC" if unicodedata.is_normalized("NFC", name) else "NFD"

    ours = {unicodedata.normalize("NFC", name): name for name in model_classes}
    theirs = [name for name in data_classes if name not in model_classes
              and ours.get(unicodedata.normalize("NFC", name)) is not None]
    if not theirs:
        return
    run_form, data_form = form(ours[unicodedata.normalize("NFC", theirs[0])]), form(theirs[0])
    words = {"NFC": "composed", "NFD": "decomposed, as macOS writes names,"}
    tree = shell_quote(Path(where).parent) if where else "DIR"
    raise DataError(f"{what}{f' in {where}' if where else ''} writes the class "
                    f"{listed(theirs, 3)} in another Unicode form than the run "
                    f"({words[data_form]} where the run's is {words[run_form].rstrip(',')})",
                    hint="rename its names to the run's form: "
                         + convmv_command(tree, run_form.lower()))
