"""Load a split from a data dir, whichever layout it holds.

Looked for, in this order:
1. the official CIFAR-10 batches: DATA_DIR/cifar-10-batches-py/ (or DATA_DIR is that folder);
2. an ImageFolder tree per split: DATA_DIR/<split>/<class>/<image> (an image: a file ending
   in one of layout.IMAGE_EXTENSIONS, .png, .jpg, .webp, ...), or the same one folder down
   (DATA_DIR/<name>/<split>/..., as the extracted cifar10-jpeg.tar.gz holds it).
Class names of an image tree come from the union of its split folders, sorted, so train and
test agree on labels even when a split lacks a class.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dlbox.data.cifar10 import (
    BATCHES_DIRNAME,
    CIFAR10_CLASSES,
    SPLITS,
    TEST_BATCHES,
    TRAIN_BATCHES,
    batches_dir,
    killed_cache_writes,
    load_cifar10,
)
from dlbox.data.dataset import ImageDataset
from dlbox.data.extract import old_copies, restore_swapped_out
from dlbox.data.imagefolder import (
    IMAGE_EXTENSIONS_TEXT,
    ImageTreeAccessError,
    convmv_command,
    describe_skipped,
    find_classes,
    is_hidden,
    is_image_file,
    list_image_files,
    load_image_folder,
    skipped_entries,
)
from dlbox.data.paths import (
    DATA_ENV_VAR,
    check_data_dir_path,
    data_flag,
    fetch_from_copy,
    fetch_hint,
)
from dlbox.errors import DataError, DlboxError, NoDataError
from dlbox.fileio import held_elsewhere
from dlbox.text import json_path, listed, shell_quote, shown_name, tell


@dataclass(frozen=True)
class DataLayout:
    """What a data dir holds: kind is 'cifar10-batches' or 'image-folder'; root is its folder."""

    kind: str
    root: Path


def _has_split(folder: Path) -> bool:
    return any(find_classes(folder / split) for split in SPLITS)


def _nested_image_trees(data_dir: Path) -> list[Path]:
    """The folders one level down that hold split folders (DATA_DIR/<name>/<split>/...). One
    that may not be read is not taken for a tree (a data dir at the top of a disk holds
    lost+found, which only root reads)."""
    if not data_dir.is_dir():
        return []
    return [child for child in sorted(data_dir.iterdir())
            if child.is_dir() and not is_hidden(child) and _readable_tree(child)]


def _readable_tree(folder: Path) -> bool:
    try:
        return _has_split(folder)
    except (OSError, ImageTreeAccessError):
        return False


def _image_folder_root(data_dir: Path) -> Path | None:
    """The folder whose children are split folders with class sub-folders, if any (one
    level down only when exactly one folder there is such a tree)."""
    if _has_split(data_dir):
        return data_dir
    candidates = _nested_image_trees(data_dir)
    return candidates[0] if len(candidates) == 1 else None


def detect_layout(data_dir: str | Path) -> DataLayout | None:
    """The layout found in `data_dir`, or None when it holds nothing loadable."""
    data_dir = Path(data_dir)
    directory = batches_dir(data_dir)
    if directory.is_dir():
        return DataLayout("cifar10-batches", directory)
    root = _image_folder_root(data_dir)
    if root is not None:
        return DataLayout("image-folder", root)
    return None


def _holds_images(folder: Path) -> bool:
    """True when `folder` has at least one image file directly in it (stops at the first)."""
    try:
        return any(is_image_file(p) for p in folder.iterdir())
    except OSError:
        return False


# Split folders named as other tools name them: what dlbox reads for each.
SPLIT_SYNONYMS = {"val": "test", "valid": "test", "validation": "test"}


def split_lookalikes(folder: Path) -> dict[str, str]:
    """The folders in `folder` named like a split dlbox reads but not as it (Train, TEST, val,
    validation) that hold class folders with images (a class named `valid`, images alone, is
    a class), each with the split name it would be, where that split is not there already."""
    try:
        names = sorted(child.name for child in folder.iterdir()
                       if child.is_dir() and not is_hidden(child))
    except OSError:
        return {}
    found: dict[str, str] = {}
    for name in names:
        split = SPLIT_SYNONYMS.get(name.lower(), name.lower())
        if split in SPLITS and name != split and split not in names \
                and split not in found.values() and _looks_like_a_split(folder / name):
            found[name] = split
    return found


def _looks_like_a_split(folder: Path) -> bool:
    """Whether `folder` holds class folders with images (loose files beside them or not: a
    stray preview.jpg in Train/ made it a class, review found)."""
    try:
        return any(_holds_images(folder / name) for name in find_classes(folder))
    except (OSError, DlboxError):
        return False


def renames(folder: Path, lookalikes: dict[str, str]) -> str:
    """`mv` commands that give the folders the names dlbox reads."""
    return "; ".join(f"mv {shell_quote(folder / name)} {shell_quote(folder / split)}"
                     for name, split in lookalikes.items())


def no_data_error(data_dir: str | Path, split: str | None = None) -> DataError:
    """The error for a data dir with no layout dlbox reads. When what is there is nearly a
    layout -- batch files in a folder not named cifar-10-batches-py, two or more image trees
    one level down, an image tree without split folders (DIR/<class>/*.png, the plain
    ImageFolder layout, or one split folder itself) -- it says so and what to change, instead
    of just "no CIFAR-10 data found" with a hint to download it. `split`: the one the
    command reads, when only one ("test" for evaluate)."""
    data_dir = Path(data_dir)
    try:  # a file, or a link to nothing, where the folder should be: say that, not "fetch"
        check_data_dir_path(data_dir)
    except DataError as error:
        return error
    missing = _missing_data_dir_error(data_dir, split)
    if missing is not None:
        return missing
    message = f"no CIFAR-10 data found in {shown_name(data_dir)}"
    lookalikes = split_lookalikes(data_dir)
    if lookalikes:  # review: Train/ and Test/ were told to fetch CIFAR-10
        shown = ", ".join(f"{name}/" for name in lookalikes)
        return DataError(f"{message}: it holds {shown}, where an image tree's split folders "
                         f"are named {' and '.join(s + '/' for s in SPLITS)}",
                         hint=f"rename {'it' if len(lookalikes) == 1 else 'them'}: "
                              f"{renames(data_dir, lookalikes)}")
    loose = [name for name in (*TRAIN_BATCHES, *TEST_BATCHES) if (data_dir / name).is_file()]
    if loose:
        return DataError(
            f"{message}: it holds CIFAR-10 batch files ({', '.join(loose[:2])}"
            f"{', ...' if len(loose) > 2 else ''}) but not in a folder named {BATCHES_DIRNAME}",
            hint=f"rename {data_dir} to {data_dir.parent / BATCHES_DIRNAME} (and pass --data "
                 f"{shell_quote(data_dir.parent)}), or move the files into "
                 f"{data_dir / BATCHES_DIRNAME}/")
    try:
        trees = _nested_image_trees(data_dir)
    except OSError:
        trees = []
    if len(trees) > 1:
        names = ", ".join(f"{tree.name}/" for tree in trees)
        return DataError(f"{message}: it holds {len(trees)} image trees ({names}) and dlbox "
                         "does not pick one",
                         hint=f"pass --data {shell_quote(trees[0])} (or another of them)")
    try:
        class_dirs = [data_dir / name for name in find_classes(data_dir)]
    except OSError:
        class_dirs = []
    with_images = [folder.name for folder in class_dirs if _holds_images(folder)]
    if with_images and set(with_images) <= set(SPLITS):  # review: DIR/train/*.png
        shown = " and ".join(f"{name}/" for name in with_images)
        return DataError(f"{message}: {shown} hold{'s' if len(with_images) == 1 else ''} "
                         "images directly, not in class folders",
                         hint=_tree_layout(data_dir))
    if not with_images and _holds_images(data_dir):  # review: --data at a class folder
        return DataError(f"{message}: it holds images directly, not in class folders",
                         hint=_loose_images_hint(data_dir))
    if not with_images:
        from dlbox.data.fetch import data_root, fetching_now

        if held_elsewhere(data_root(data_dir)):  # its fetch would be refused (review)
            return DataError(f"{message} yet: {fetching_now(data_root(data_dir))}",
                             hint="wait for that fetch to end, then run the command again")
        begun = [name for name in SPLITS if name in {folder.name for folder in class_dirs}]
        if begun:  # an image tree begun (review: `mkdir train test` was sent to download)
            shown = " and ".join(f"{name}/" for name in begun)
            return DataError(f"no image tree found in {shown_name(data_dir)}: {shown} "
                             f"hold{'s' if len(begun) == 1 else ''} no class folders with "
                             "images", hint=_tree_layout(data_dir))
        return NoDataError(message, data_dir, hint=fetch_hint(data_dir))
    shown = listed(with_images, 3)
    message = (f"{message}: it holds class folders with images ({shown}) but no "
               f"{' or '.join(s + '/' for s in SPLITS)} split folder")
    if data_dir.name in SPLITS:
        hint = (f"pass --data {shell_quote(data_dir.parent)} (the folder that holds "
                f"{data_dir.name}/)"
                + ("" if split == data_dir.name == "test" else  # evaluate needs no train/
                   ", with the other split beside it"))
    elif split == "test":  # evaluate: test/<class>/ is all it reads (review)
        hint = ("the test images go in one folder per class under a test/ split folder: "
                f"move the class folders into {data_dir / 'test'}/")
    else:
        hint = (f"an image tree needs one folder per split: move the class folders into "
                f"{data_dir / 'train'}/ and put held-out images in "
                f"{data_dir / 'test'}/<class>/")
    return DataError(message, hint=hint)


def _missing_data_dir_error(data_dir: Path, split: str | None) -> NoDataError | None:
    """A --data that does not exist at all (a mistyped path to an image tree, most likely):
    said first, with both ways on, checking the path or fetching CIFAR-10 into it (review: it
    was only "no CIFAR-10 data found", with the hint to download it). None for a folder that
    exists, and for the one a bare command reads ($DLBOX_DATA, else the cache dir), not made
    before a first `dlbox data fetch`, unless $DLBOX_DATA names it: that one is said not to
    exist as --data is (review: a mistyped $DLBOX_DATA read as "no CIFAR-10 data found")."""
    where = data_flag(data_dir)
    try:
        if data_dir.exists() or data_dir.is_symlink():
            return None
    except OSError:
        return None
    if not where:
        return _missing_env_data_dir_error(data_dir)
    shown = shell_quote(data_dir)
    tree = (f"{shown}/test/<class>/<image>" if split == "test" else
            f"{shown}/train/<class>/<image>, with test/<class>/ beside train/")
    return NoDataError(f"--data {shown_name(data_dir)} does not exist", data_dir,
                       hint=f"check the path (an image tree is {tree}), or fetch CIFAR-10 into "
                            f"it: `dlbox data fetch{where}` (offline: {fetch_from_copy(where)})")


def _missing_env_data_dir_error(data_dir: Path) -> NoDataError | None:
    """The data dir a bare command reads, when $DLBOX_DATA names it and it does not exist;
    None for the user cache dir (not made before a first `dlbox data fetch`)."""
    env = os.environ.get(DATA_ENV_VAR, "")
    if not env.strip():
        return None
    return NoDataError(f"${DATA_ENV_VAR} ({shown_name(env)}) does not exist", data_dir,
                       hint=f"point ${DATA_ENV_VAR} at the folder that holds your data (or "
                            "unset it, for the user cache dir), or fetch CIFAR-10 into it: "
                            f"`dlbox data fetch` (offline: {fetch_from_copy('')})")


def _other_folders_with_images(folder: Path) -> bool:
    """Whether a folder beside `folder` holds images (as the other classes' folders do)."""
    try:
        return any(_holds_images(folder.parent / name) for name in find_classes(folder.parent)
                   if name != folder.name)
    except (OSError, DlboxError):
        return False


def _loose_images_hint(folder: Path) -> str:
    """Where images found directly in `folder` go: one class's folder of a tree (its parent
    a split folder, or a folder of class folders) is told to pass the tree's root."""
    parent = folder.parent
    if parent.name in SPLITS:
        return f"pass --data {shell_quote(parent.parent)} (the folder that holds {parent.name}/)"
    if folder.name in SPLITS:
        return into_class_folders(folder)
    if _other_folders_with_images(folder):
        return (f"{folder.name}/ looks like one class's folder: an image tree is "
                f"{shell_quote(parent)}/<split>/<class>/<image>, with train/ and test/ split "
                "folders")
    return _tree_layout(folder)


def into_class_folders(split_folder: Path) -> str:
    """The fix for a split folder whose images lie directly in it."""
    return ("put each image in a folder named for its class: "
            f"{shell_quote(split_folder)}/<class>/<image>")


def _tree_layout(folder: Path) -> str:
    return ("lay the images out by split and class: "
            + " and ".join(f"{shell_quote(folder / split)}/<class>/<image>" for split in SPLITS))


@contextlib.contextmanager
def reading_the_runs_data_dir(given: bool,
                              classes: Sequence[str] | None = None) -> Iterator[None]:
    """Around loading a run's data when no --data was given (evaluate, resume): the data dir
    is the one in the run's config.json, so a folder that holds no data any more (moved,
    deleted) is named as that, with --data as the first way out. `classes`: the run's; of
    other classes than CIFAR-10's, it was an image tree of the user's, which fetching
    CIFAR-10 cannot bring back."""
    try:
        yield
    except NoDataError as error:
        if given:
            raise
        where = data_flag(Path(str(error.data_dir)))
        own_tree = classes is not None and tuple(classes) != tuple(CIFAR10_CLASSES)
        if in_the_containers_data_dir(Path(str(error.data_dir))):
            raise _no_container_data_here(error, own_tree) from None
        # no --data was given: the run's folder, gone or moved, is not named as one
        # (_missing_data_dir_error's "--data DIR does not exist")
        recorded = Path(str(error.data_dir))
        message = (error.message if recorded.exists() or recorded.is_symlink()
                   else f"no CIFAR-10 data found in {shown_name(recorded)}")
        raise NoDataError(f"{message} (the data dir the run was trained on, from its "
                          "config.json)", error.data_dir,
                          hint="the run was trained on an image tree of its own: pass --data "
                               "DIR where that tree is now" if own_tree else
                               f"if the data moved, pass --data DIR where it is now; if it is "
                               f"gone, fetch it again: `dlbox data fetch{where}` (offline: "
                               f"{fetch_from_copy(where)})"
                          ) from None


def in_the_containers_data_dir(path: Path) -> bool:
    """Whether `path` is the data dir of `dlbox image run` (/data) or a folder in it."""
    from dlbox.container.spec import DATA_DIR as CONTAINER_DATA_DIR

    mount = Path(CONTAINER_DATA_DIR)
    return path == mount or mount in path.parents


def _no_container_data_here(error: NoDataError, own_tree: bool) -> NoDataError:
    """A run trained in a container, whose /data holds no data on this machine, and none
    where runs_data_dir looks instead: the error names both, and the fix is a fetch where
    dlbox looks by default (not into /data, which a root user would have made)."""
    from dlbox.data.paths import resolve_data_dir

    try:
        here = f"{resolve_data_dir(None)} ({_where_dlbox_looks()})"
    except DlboxError:
        here = "the default data dir"
    message = (f"no data for this run: it was trained in a container on {error.data_dir} "
               f"(from its config.json), which holds no data on this machine, nor does {here}")
    hint = ("the run was trained on an image tree of its own: pass --data DIR where that "
            "tree is on this machine" if own_tree else
            f"fetch CIFAR-10 here: `dlbox data fetch` (offline: {fetch_from_copy('')}), or "
            "pass --data DIR where the data is on this machine")
    return NoDataError(message, error.data_dir, hint=hint)


def _where_dlbox_looks() -> str:
    """How the data dir a command takes without --data is named: "$DLBOX_DATA" when that is
    set, else "the default data dir"."""
    import os

    from dlbox.data.paths import DATA_ENV_VAR

    return f"${DATA_ENV_VAR}" if os.environ.get(DATA_ENV_VAR, "").strip() \
        else "the default data dir"


def runs_data_dir(recorded: str | None) -> tuple[str | None, bool]:
    """Where to read a run's data when no --data is given (evaluate, resume), and whether it
    is the recorded one: the data dir in its config.json; when that is the container's /data
    or a folder in it (a run trained in `dlbox image run`) holding no data on this machine,
    and $DLBOX_DATA, else the default data dir (or the same folder in it), holds data, that
    one, with a note. (A data dir that moved is not
    guessed at: its error offers --data.) Other data than the run's is refused later (other
    classes, another number of images)."""
    from dlbox.container.spec import DATA_DIR as CONTAINER_DATA_DIR
    from dlbox.data.paths import resolved_data_dir

    if recorded is None:
        return recorded, True
    mount, path = Path(CONTAINER_DATA_DIR), Path(recorded)
    if not in_the_containers_data_dir(path):
        return recorded, True

    def holds_data(folder: Path) -> bool:
        try:
            return detect_layout(folder) is not None
        except (DlboxError, OSError):
            return False

    if holds_data(path):  # a host with a /data of its own, holding the data
        return recorded, True
    try:
        root = resolved_data_dir(None)
    except (DlboxError, OSError):
        return recorded, True
    # `image run --data ~/datasets` and `train --data /data/cifar10`: ~/datasets/cifar10
    fallback = next((folder for folder in (root / path.relative_to(mount), root)
                     if holds_data(folder)), None)
    if fallback is None:
        return recorded, True  # its error names the recorded folder, with --data
    source = _where_dlbox_looks()
    tell(f"note: the run's data dir {recorded} (from its config.json) is a container's, not "
         f"on this machine; reading {fallback} ({source}) instead (--data DIR to choose)")
    return str(fallback), False


def image_folder_classes(root: str | Path) -> tuple[str, ...]:
    """Sorted union of the class folders of every split under `root`; DataError for two
    that are one name in two Unicode forms (_unicode_twins)."""
    root = Path(root)
    where = [(split, name) for split in SPLITS
             for name in sorted(find_classes(root / split, check_names=True))]
    _refuse_unicode_twins(root, where)
    return tuple(sorted({name for _, name in where}))


def _refuse_unicode_twins(root: Path, folders: Sequence[tuple[str, str]]) -> None:
    """Class folders whose names are the same text in another Unicode form (train/café
    composed, test/café decomposed, as macOS writes names): two classes that print alike,
    each missing from the other split (review: 0 % for café, and data check said ok)."""
    import unicodedata

    seen: dict[str, tuple[str, str]] = {}
    for split, name in folders:
        first = seen.setdefault(unicodedata.normalize("NFC", name), (split, name))
        if first[1] != name:
            raise DataError(f"class folders {first[0]}/{first[1]} and {split}/{name} are one "
                            "name written in two Unicode forms (composed and decomposed, as "
                            "macOS writes names): dlbox would read two classes that print "
                            "alike",
                            hint="rename the tree's names to one form: "
                                 + convmv_command(shell_quote(root), "nfc"))


def split_class_folders(data_dir: str | Path, split: str) -> tuple[Path, tuple[str, ...]] | None:
    """An image tree's `split` folder and the class folders in it alone, sorted (names
    checked: UTF-8, one Unicode form), the other split's not looked at; None for CIFAR-10
    batches. Evaluate compares these with the run's classes (review: a class folder only in
    train/ was blamed on test/, and a train/ name that is not UTF-8 refused the evaluation)."""
    layout, split_root = _split_layout(data_dir, split)
    if layout.kind == "cifar10-batches":
        return None
    where = [(split, name) for name in sorted(find_classes(split_root, check_names=True))]
    _refuse_unicode_twins(layout.root, where)
    return split_root, tuple(name for _, name in where)


def load_dataset(data_dir: str | Path, split: str, limit: int | None = None,
                 classes: Sequence[str] | None = None) -> ImageDataset:
    """A split (`train` or `test`) in memory, from CIFAR batches or an image tree: all of it,
    or its first `limit` images (`subset(limit)`; an image tree decodes only those).
    `classes`: an image tree's split is read with these (a run's, for evaluate: label i is
    classes[i]; the split's class folders must be among them) instead of the union of the
    splits' class folders (what train reads with); CIFAR-10 batches name their own."""
    layout, split_root = _split_layout(data_dir, split)
    if layout.kind == "cifar10-batches":
        return load_cifar10(layout.root, split).subset(limit)
    return load_image_folder(split_root, classes=_tree_classes(layout.root, classes),
                             limit=limit)


def _tree_classes(root: Path, classes: Sequence[str] | None) -> tuple[str, ...]:
    return image_folder_classes(root) if classes is None else tuple(classes)


def split_size(data_dir: str | Path, split: str, classes: Sequence[str] | None = None) -> int:
    """How many images the split holds, without decoding an image tree's files (data a
    killed `data fetch --force` moved aside is put back first: _split_layout); `classes`:
    as load_dataset's."""
    layout, split_root = _split_layout(data_dir, split)
    if layout.kind == "cifar10-batches":
        return len(load_cifar10(layout.root, split))  # the decoded cache: a fraction of a s
    files, _, _ = list_image_files(split_root, _tree_classes(layout.root, classes))
    return len(files)


# skipped_entries' four lists: files without an image extension, files outside the class
# folders, folders inside class folders, image names that are no files
Skipped = tuple[list[str], list[str], list[str], list[str]]


def skipped_by_split(data_dir: str | Path, splits: Sequence[str] = SPLITS,
                     classes: Sequence[str] | None = None) -> dict[str, Skipped]:
    """What loading each of `splits` of the image tree in `data_dir` passes over
    (skipped_entries); {} for CIFAR-10 batches, which have no such files. `classes`: as
    load_dataset's."""
    layout = detect_layout(data_dir)
    if layout is None or layout.kind != "image-folder":
        return {}
    names = _tree_classes(layout.root, classes)
    return {split: skipped_entries(layout.root / split, names) for split in splits}


def skipped_note(split: str, phrase: str) -> str:
    """The note for one kind of what a split passes over (a describe_skipped phrase), as
    `dlbox data check`, train and evaluate say it."""
    return (f"{split}: skipped {phrase}; only {split}/<class>/<image> ending in "
            f"{IMAGE_EXTENSIONS_TEXT} is read")


def skipped_notes(skipped: Mapping[str, Skipped]) -> list[str]:
    """skipped_by_split's findings as notes, one per split and kind."""
    return [skipped_note(split, phrase) for split, entries in skipped.items()
            for phrase in describe_skipped(*entries)]


def _split_layout(data_dir: str | Path, split: str) -> tuple[DataLayout, Path]:
    """The layout of `data_dir` and the folder of `split` in it. Not a pure lookup, by design:
    the data a `dlbox data fetch --force` killed between its two renames moved aside is put
    back first (restore_swapped_out, with a note), so that whichever of load_dataset,
    split_size (train's --num-train check, evaluate's --num-test) reads the data first finds
    it."""
    if split not in SPLITS:
        raise DataError(f"unknown split '{split}'", hint=f"use one of {', '.join(SPLITS)}")
    restored = restore_swapped_out(batches_dir(data_dir).parent)
    if restored is not None:
        tell(f"note: {restored}")
    layout = detect_layout(data_dir)
    if layout is None:
        raise no_data_error(data_dir, split)
    split_root = layout.root / split
    if layout.kind != "cifar10-batches" and not find_classes(split_root):
        renamed = _renamed_split_error(layout.root, split)
        if renamed is not None:
            raise renamed
        if _holds_images(split_root):  # review: "has no 'train' split", of a train/ of images
            raise DataError(f"image folder {layout.root} has no '{split}' split: {split}/ "
                            "holds images directly, not in class folders",
                            hint=into_class_folders(split_root))
        raise DataError(f"image folder {layout.root} has no '{split}' split",
                        hint=f"add {split_root}/<class>/<image> ({IMAGE_EXTENSIONS_TEXT})")
    return layout, split_root


def _renamed_split_error(root: Path, split: str) -> DataError | None:
    """The error for a split folder that is there under another name (Train/, val/), with the
    `mv` that fixes it; None if there is none (review: a val/ folder was passed over without
    a word)."""
    lookalikes = {name: to for name, to in split_lookalikes(root).items() if to == split}
    if not lookalikes:
        return None
    return DataError(f"image folder {root} has no '{split}' split: it holds "
                     f"{', '.join(name + '/' for name in lookalikes)} instead",
                     hint=f"rename it: {renames(root, lookalikes)}")


# ---- `dlbox data check`: what is on disk, and does it load ---------------------------------

OFFICIAL_COUNTS = {"train": 50000, "test": 10000}
MAX_LISTED_FAILURES = 20  # unreadable images listed one per line by `dlbox data check`


@dataclass(frozen=True)
class FileReport:
    name: str
    ok: bool
    detail: str  # "10000 images", "10 classes", or what is wrong
    count: int | None = None
    hint: str | None = None  # the fix, when the check knows one for this file (or split)


@dataclass(frozen=True)
class SplitReport:
    count: int
    label_min: int | None
    label_max: int | None
    per_class: tuple[int, ...]


@dataclass(frozen=True)
class DataReport:
    data_dir: Path
    layout: DataLayout | None
    classes: tuple[str, ...]
    files: tuple[FileReport, ...]
    splits: dict[str, SplitReport]
    archive_sha256: str | None
    problems: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            # as evaluate's --json names its folders: absolute, a name that is not UTF-8
            # as $'...' (review: as typed, and as lone surrogates that jq cannot read)
            "data_dir": json_path(str(self.data_dir.absolute())),
            "layout": self.layout.kind if self.layout else None,
            "root": json_path(str(self.layout.root.absolute())) if self.layout else None,
            "classes": list(self.classes),
            "archive_sha256": self.archive_sha256,
            "files": [{"name": f.name, "ok": f.ok, "detail": f.detail, "count": f.count,
                       "hint": f.hint} for f in self.files],
            "splits": {name: {"count": s.count, "label_min": s.label_min,
                              "label_max": s.label_max, "per_class": list(s.per_class)}
                       for name, s in self.splits.items()},
            "problems": list(self.problems),
            "notes": list(self.notes),
        }


def _split_report(labels: torch.Tensor, num_classes: int) -> SplitReport:
    if labels.numel() == 0:
        return SplitReport(0, None, None, tuple([0] * num_classes))
    # Out-of-range labels are a problem of their own, counted in no class (review: clamped,
    # they swelled the first and last classes).
    in_range = labels[(labels >= 0) & (labels < num_classes)]
    per_class = torch.bincount(in_range, minlength=num_classes)
    return SplitReport(int(labels.numel()), int(labels.min()), int(labels.max()),
                       tuple(int(x) for x in per_class[:num_classes]))


def _check_cifar_batches(directory: Path, record: dict[str, Any] | None,
                         problems: list[str], notes: list[str],
                         ) -> tuple[tuple[str, ...], list[FileReport], dict[str, SplitReport]]:
    from dlbox.data.cifar10 import (
        META_FILE,
        TEST_BATCHES,
        TRAIN_BATCHES,
        read_batch,
        read_class_names,
    )
    from dlbox.data.fetch import CHECKSUMS_FILE

    recorded: dict[str, object] = (record or {}).get("files") or {}
    files: list[FileReport] = []
    classes: tuple[str, ...] = CIFAR10_CLASSES
    meta = directory / META_FILE
    if meta.is_file():
        try:
            classes = read_class_names(directory)
            ok = len(classes) == 10
            files.append(FileReport(META_FILE, ok, f"{len(classes)} classes"))
            if not ok:
                problems.append(f"{META_FILE} names {len(classes)} classes, expected 10")
        except (DataError, KeyError, TypeError) as error:
            files.append(FileReport(META_FILE, False, str(error)))
            problems.append(f"{META_FILE}: {error}")
    else:
        files.append(FileReport(META_FILE, False, "missing"))
        problems.append(f"{meta} is missing")
    # the layout's 10 classes for the labels where batches.meta names another number: that
    # file is the one problem, not every batch beside it (review)
    named = classes if not classes or len(classes) == len(CIFAR10_CLASSES) else CIFAR10_CLASSES
    labels_by_split: dict[str, list[torch.Tensor]] = {"train": [], "test": []}
    for split, names in (("train", TRAIN_BATCHES), ("test", TEST_BATCHES)):
        for name in names:
            path = directory / name
            if not path.is_file():
                files.append(FileReport(name, False, "missing"))
                problems.append(f"{path} is missing")
                continue
            try:
                _, labels = read_batch(path)
            except DataError as error:
                files.append(FileReport(name, False, error.message))
                problems.append(error.message)
                continue
            bad = labels.size and (labels.min() < 0 or labels.max() >= len(named))
            if bad:
                problems.append(f"{name} has labels outside 0..{len(named) - 1}" if named
                                else f"{name} has labels, but {META_FILE} names no classes")
            detail = f"{labels.size} images"
            if bad:
                detail += (f", labels outside 0..{len(named) - 1} (found "
                           f"{labels.min()}..{labels.max()})" if named
                           else f", but {META_FILE} names no classes")
            files.append(FileReport(name, not bad, detail, int(labels.size)))
            labels_by_split[split].append(torch.from_numpy(labels))
    for name, info in recorded.items():
        path = directory / name
        expected = info.get("sha256") if isinstance(info, dict) else None
        if not expected or not path.is_file():
            continue
        if _sha256_of(path) != expected:
            problems.append(f"{name} differs from the file extracted from the archive "
                            f"(sha256 recorded in {CHECKSUMS_FILE})")
    splits: dict[str, SplitReport] = {}
    for split, parts in labels_by_split.items():
        if parts:
            splits[split] = _split_report(torch.cat(parts), len(named))
            if splits[split].count != OFFICIAL_COUNTS[split]:
                notes.append(f"{split} has {splits[split].count} images; the full CIFAR-10 has "
                             f"{OFFICIAL_COUNTS[split]}")
    return classes, files, splits


def _sha256_of(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_image_folder(root: Path, problems: list[str], notes: list[str],
                        ) -> tuple[tuple[str, ...], list[FileReport], dict[str, SplitReport]]:
    files: list[FileReport] = []
    splits: dict[str, SplitReport] = {}
    try:
        classes = image_folder_classes(root)
    except DataError as error:  # class folders it cannot tell apart: a problem of the tree
        files.append(FileReport("class folders", False, error.message, hint=error.hint))
        problems.append(error.message)
        return (), files, splits
    for split in SPLITS:
        if (root / split).exists() and not (root / split).is_dir():
            # review: "holds no class folders", and a hint to add some, for a file
            what = "a file, not a folder" if (root / split).is_file() else "not a folder"
            files.append(FileReport(f"{split}/", False, what,
                                    hint=f"move {shell_quote(root / split)} away and make "
                                         f"{split}/ a folder of class folders "
                                         f"({split}/<class>/<image>)"))
            problems.append(f"{root / split} is {what}")
            continue
        renamed = None if (root / split).exists() else _renamed_split_error(root, split)
        if renamed is not None:  # review: "missing", and a hint to copy the data again
            files.append(FileReport(f"{split}/", False, renamed.message, hint=renamed.hint))
            problems.append(renamed.message)
            continue
        if not find_classes(root / split):
            there = (root / split).exists()
            loose = " (its images lie directly in it)" if _holds_images(root / split) else ""
            files.append(FileReport(f"{split}/", False, "no class folders" if there
                                    else "missing",
                                    hint=into_class_folders(root / split) if loose else None))
            problems.append(f"{root / split} holds no class folders{loose}" if there
                            else f"{root / split} is missing")
            continue
        failures: list[DataError] = []
        try:
            dataset = load_image_folder(root / split, classes=classes, failures=failures)
        except DataError as error:
            files.append(FileReport(f"{split}/", False, error.message, hint=error.hint))
            problems.append(error.message)
            continue
        if failures:  # every unreadable image, not just the first
            listed = failures[:MAX_LISTED_FAILURES]
            problems.extend(error.message for error in listed)
            if len(failures) > len(listed):
                problems.append(f"... and {len(failures) - len(listed)} more unreadable "
                                f"image(s) in {root / split}")
            files.append(FileReport(f"{split}/", False,
                                    f"{len(failures)} of {len(dataset)} images unreadable, "
                                    f"first: {failures[0].message}", len(dataset),
                                    hint=_failures_hint(failures, root / split)))
        notes.extend(skipped_note(split, phrase)
                     for phrase in describe_skipped(*skipped_entries(root / split, classes)))
        if failures:  # its notes above, whatever else is wrong in it
            continue
        files.append(FileReport(f"{split}/", True, f"{len(dataset)} images", len(dataset)))
        splits[split] = _split_report(dataset.labels, len(classes))
        empty = [c for c, n in zip(classes, splits[split].per_class, strict=True) if n == 0]
        if empty:
            notes.append(f"{split} has no images of class {', '.join(empty)}")
    notes.extend(_case_twins(root, classes))
    return classes, files, splits


def _case_twins(root: Path, classes: Sequence[str]) -> list[str]:
    """Class folders whose names differ only in case, one in each split (train/Cat beside
    test/cat): two classes to dlbox, each missing from the other split, so the model never
    meets its test images' class (review: data check said "ok")."""
    return [f"class folders {first} and {second} differ only in case: dlbox reads two "
            f"classes, each missing from the other split; rename one: {rename}"
            for first, second, rename, _ in case_twin_renames(root, classes)]


def case_twin_renames(root: Path, classes: Sequence[str]
                      ) -> list[tuple[str, str, str, tuple[str, str]]]:
    """Each pair of _case_twins: (its first folder as split/name, its second, the `mv` that
    renames the test split's to the training split's name, the two class names)."""
    found = []
    for index, name in enumerate(classes):
        for other in classes[index + 1:]:
            if name.casefold() != other.casefold():
                continue
            where = {folder: [split for split in SPLITS if (root / split / folder).is_dir()]
                     for folder in (name, other)}
            if len(where[name]) == 1 and len(where[other]) == 1 and where[name] != where[other]:
                keep, rename = (name, other) if where[name] == ["train"] else (other, name)
                found.append((f"{where[name][0]}/{name}", f"{where[other][0]}/{other}",
                              f"mv {shell_quote(root / where[rename][0] / rename)} "
                              f"{shell_quote(root / where[rename][0] / keep)}", (name, other)))
    return found


def _failures_hint(failures: list[DataError], split_root: Path) -> str | None:
    """The fix for a split's unreadable images: their own hint when there is one; for several,
    fix the permissions of those refused (ImageTreeAccessError) and replace the damaged."""
    if len(failures) == 1:
        return failures[0].hint
    denied = sum(isinstance(error, ImageTreeAccessError) for error in failures)
    permissions = (f"fix the permissions of the images marked 'permission denied' above: "
                   f"`chmod -R u+rX {split_root}`, or, if another user owns them (`ls -l` "
                   f"shows who), run dlbox as that user or take them over with "
                   f"`sudo chown -R $USER {split_root}`")
    if denied == len(failures):
        return permissions
    if denied:
        return (f"{permissions}; replace each other image named above with a good copy, or "
                "remove it")
    return None  # damaged images only: the caller's "replace each image" hint


def shadowed_image_tree(data_dir: str | Path) -> str | None:
    """What to say of an image tree in `data_dir` beside CIFAR-10 batches, which are read
    instead (`dlbox data check` notes it; review: train and evaluate said nothing)."""
    data_dir = Path(data_dir)
    layout = detect_layout(data_dir)
    if layout is None or layout.kind != "cifar10-batches" or data_dir == layout.root:
        return None
    shadowed = _image_folder_root(data_dir)
    if shadowed is None:
        return None
    return (f"the image tree in {shadowed} is not read: the CIFAR-10 batches in "
            f"{layout.root} come first (move that folder out to read the tree)")


def _old_copy_notes(root: Path) -> list[str]:
    """`data check`'s notes of the old copies (.cifar-10-batches-py.old.*) in `root`."""
    from dlbox.data.fetch import fetching_now

    fetching = held_elsewhere(root)  # a fetch swapping its folders in
    in_place = (root / BATCHES_DIRNAME).exists()
    notes = []
    for old_copy in old_copies(root):
        if fetching:
            notes.append(f"{fetching_now(root)}: {old_copy} may be the copy it replaces, which "
                         "it removes; if it is still there when that fetch ends, delete it by "
                         "hand")
        elif in_place:
            notes.append(f"{old_copy} is an old copy that a `dlbox data fetch --force` could "
                         "not delete; delete it by hand to get its space back")
        else:  # restore_swapped_out could not put it back (a fetch of unknown state runs)
            notes.append(f"{old_copy} is the data a `dlbox data fetch --force` moved aside, "
                         f"and no {BATCHES_DIRNAME} is in place: if no fetch runs, move it "
                         f"back: `mv {shell_quote(old_copy)} "
                         f"{shell_quote(root / BATCHES_DIRNAME)}`")
    return notes


def check_data(data_dir: str | Path) -> DataReport:
    """Inspect a data dir: which layout, every file present and loadable, counts, labels.
    First it puts back the data a `dlbox data fetch --force` killed mid-swap moved aside (a
    note says so)."""
    from dlbox.data.fetch import (
        inspect_checksums,
        kept_downloads,
        killed_fetch_folders,
    )

    data_dir = Path(data_dir)
    restored = restore_swapped_out(batches_dir(data_dir).parent)
    layout = detect_layout(data_dir)
    problems: list[str] = []
    notes: list[str] = ([] if restored is None else [restored]) + kept_downloads(data_dir) \
        + killed_fetch_folders(data_dir)
    if layout is None:
        problems.append(no_data_error(data_dir).message)
        notes.extend(_old_copy_notes(batches_dir(data_dir).parent))
        return DataReport(data_dir, None, (), (), {}, None, tuple(problems), tuple(notes))
    if layout.kind == "cifar10-batches":
        # A record that is there but damaged is a problem, never "nothing recorded": it would
        # otherwise silently turn off the per-file checksum check.
        record, record_problem = inspect_checksums(layout.root)
        if record_problem is not None:
            problems.append(record_problem)
        elif record is None:
            notes.append("no archive checksum recorded (data not extracted by `dlbox data fetch`)")
        classes, files, splits = _check_cifar_batches(layout.root, record, problems, notes)
        notes.extend(killed_cache_writes(layout.root))
        checksum = record["archive"]["sha256"] if record is not None else None
        notes.extend(_old_copy_notes(layout.root.parent))
        shadowed = shadowed_image_tree(data_dir)
        if shadowed is not None:
            notes.append(shadowed)

    else:
        classes, files, splits = _check_image_folder(layout.root, problems, notes)
        checksum = None
    return DataReport(data_dir, layout, classes, tuple(files), splits, checksum,
                      tuple(problems), tuple(notes))
