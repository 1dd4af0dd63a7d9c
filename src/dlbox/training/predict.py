"""Predict the class of the user's own images with a trained run.

    results = predict_images(Path("runs/tutorial-0"), ["cat.jpg", "plane.png"])
    for r in results:
        print(r.path, r.label if isinstance(r, PredictionResult) else r.one_line())

Any file Pillow opens works, of any size and mode: dlbox.data.images.read_image turns it into
8-bit RGB (alpha composited on white, 16-bit and 32-bit grey scaled down to 8 bits, EXIF
rotation applied), cropped to its centre square (or stretched, fit="stretch") and resized to
32x32, exactly as training on an image folder reads its files; then it goes through the
same preprocessing as in training. A file that cannot be read (not an image,
truncated, too many pixels, permission denied) becomes a PredictionFailure with a one-line
reason and, where there is one, its fix; the other files still get their predictions.
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dlbox.data.images import (
    FITS,
    IMAGE_SIZE,
    Fit,
    ImageLoadError,
    quiet_pillow_warnings,
    read_image,
)
from dlbox.data.layout import IMAGE_EXTENSIONS, IMAGE_EXTENSIONS_TEXT
from dlbox.errors import DlboxError, RunDirError, UsageError, first_line
from dlbox.text import json_path, plural, reason_and_fix, shell_quote, tell
from dlbox.training.checkpoint import check_tta
from dlbox.training.evaluate import (
    build_model_fn,
    load_run_model,
    out_of_memory_is_an_error,
    predict_logits,
    resolve_tta,
    run_amp_dtype,
)

PREDICT_BATCH_SIZE = 256


@dataclass(frozen=True)
class PredictionResult:
    """The model's answer for one image: the label and the top-k (label, probability) pairs."""

    path: str
    label: str
    confidence: float
    top_k: tuple[tuple[str, float], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"path": json_path(self.path), "ok": True, "label": self.label,
                "confidence": self.confidence,
                "top_k": [{"label": name, "probability": p} for name, p in self.top_k]}


@dataclass(frozen=True)
class PredictionFailure:
    """A file that got no prediction: the one-line reason and, where there is one, its fix."""

    path: str
    error: str
    fix: str = ""

    def one_line(self) -> str:
        """The reason and its fix on one line, "reason; fix": what `dlbox predict` prints."""
        return reason_and_fix(self.error, self.fix)

    def to_dict(self) -> dict[str, Any]:
        return {"path": json_path(self.path), "ok": False, "error": self.error,
                "fix": self.fix or None}


def load_image(path: str | Path, size: int = IMAGE_SIZE, fit: Fit = "crop") -> torch.Tensor:
    """One image file as uint8 [3, size, size] RGB (dlbox.data.images.read_image, the reading
    training on an image folder uses too); ImageLoadError with the reason otherwise. Pillow's
    warnings (damaged EXIF, ...) stay off stderr: the reason is the message."""
    with quiet_pillow_warnings():
        return torch.from_numpy(read_image(path, size, fit))


# --- predicting --------------------------------------------------------------------------------


def top_k_pairs(probabilities: torch.Tensor, classes: Sequence[str],
                k: int) -> tuple[tuple[str, float], ...]:
    """The k most likely (class, probability) pairs of one probability row, most likely first."""
    k = min(k, len(classes))
    values, indexes = probabilities.topk(k)
    return tuple((classes[int(i)], float(v)) for v, i in zip(values, indexes, strict=True))


# What predict_images and predict_with_model_fn take: one image file (a str or a Path), or any
# iterable of them (a list, a generator).
ImagePaths = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]


def one_or_many(paths: ImagePaths) -> list[str]:
    """`paths` as a list of str: one path (a str or a Path) is one image, not its characters
    (review: "photo.png" was nine files) nor a TypeError (a Path has no len()); a generator
    is read once."""
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    return [os.fspath(path) for path in paths]


def check_top_k(top_k: object) -> int:
    """`top_k` as predict takes it: a whole number of at least 1 (`dlbox predict` checks its
    --top-k itself, in the flag's words)."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:  # 2.5: torch's error
        raise UsageError(f"top_k must be a whole number of at least 1, got {top_k!r}",
                         hint="e.g. top_k=3 (the default), or top_k=1 for the label alone")
    return top_k


def predict_with_model_fn(model_fn: Any, classes: Sequence[str], paths: ImagePaths,
                          device: torch.device | str = "cpu", top_k: int = 3,
                          size: int = IMAGE_SIZE, fit: Fit = "crop",
                          amp_dtype: torch.dtype | None = torch.float16,
                          on_image: Callable[[int, int], None] | None = None,
                          ) -> list[PredictionResult | PredictionFailure]:
    """Predict each file with `model_fn` (uint8 batch -> logits); one result per path, in order.
    `on_image(done, total)` after each file is read (large photos: seconds each); one path
    (a str or a Path) is one image."""
    paths = one_or_many(paths)
    top_k = check_top_k(top_k)
    results: list[PredictionResult | PredictionFailure | None] = [None] * len(paths)
    images: list[torch.Tensor] = []
    positions: list[int] = []
    for position, path in enumerate(paths):
        try:
            images.append(load_image(path, size, fit))
            positions.append(position)
        except ImageLoadError as error:
            results[position] = PredictionFailure(path, error.message, error.hint or "")
        if on_image is not None:
            on_image(position + 1, len(paths))
    if images:
        logits = predict_logits(model_fn, torch.stack(images), PREDICT_BATCH_SIZE, device,
                                amp_dtype)
        bad = int((~torch.isfinite(logits)).any(dim=1).sum())
        if bad:  # the model's fault, not the files' (review: each image "failed", no fix)
            raise DlboxError(f"the model produced NaN or infinite outputs for {bad} of "
                             f"{plural(len(images), 'image')} (did training diverge?)",
                             hint="retrain with a lower --lr, or predict with an earlier "
                                  "checkpoint (--checkpoint)")
        probabilities = torch.softmax(logits.double(), dim=1)
        for position, row in zip(positions, probabilities, strict=True):
            pairs = top_k_pairs(row, classes, top_k)
            results[position] = PredictionResult(paths[position], pairs[0][0],
                                                 pairs[0][1], pairs)
    return [r for r in results if r is not None]


# What a folder given to predict is searched for: the formats an image tree is read in
# (any other file, given by name, is still tried).
FOLDER_IMAGE_EXTENSIONS = IMAGE_EXTENSIONS


FIX_FOLDER_PERMISSIONS = ("make it readable for you (chmod u+rx), or run dlbox as the user "
                          "that owns it (ls -ld shows who)")


def folder_failure(folder: Path, error: OSError, listed: bool = False) -> PredictionFailure:
    """The folder `folder` as one failure: it could not be listed, or (`listed`) it could,
    but the files in it may not be reached (read permission without search permission)."""
    if isinstance(error, PermissionError):
        what = "open the files in" if listed else "list"
        return PredictionFailure(str(folder), f"permission denied: cannot {what} this folder",
                                 FIX_FOLDER_PERMISSIONS)
    return PredictionFailure(str(folder),
                             f"cannot list this folder ({error.strerror or first_line(error)})")


def images_in_folder(folder: Path, skipped: list[str] | None = None,
                     ) -> list[Path | PredictionFailure]:
    """The image files under `folder`, its sub-folders too, sorted by path; what an image
    tree leaves out is left out here too (dlbox.data.imagefolder.is_hidden: .DS_Store,
    ._x.jpg, .ipynb_checkpoints, __MACOSX), and links to folders are not followed. A folder
    that cannot be listed, or whose files cannot be reached (no search permission), takes
    its place in that order as a PredictionFailure: the readable rest is still found.
    `skipped` collects the files passed over for their extension, relative to `folder`."""
    from dlbox.data.imagefolder import is_hidden

    found: list[Path | PredictionFailure] = []
    # Depth first, each folder's entries in name order (the order of sorted paths), with a
    # stack rather than recursion, which a tree deep enough would exhaust: (path, is a folder)
    pending: list[tuple[Path, bool]] = [(folder, True)]
    while pending:
        current, is_folder = pending.pop()
        if not is_folder:
            found.append(current)
            continue
        try:
            with os.scandir(current) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as error:
            found.append(folder_failure(current, error))
            continue
        try:  # listed, but may what is in it be reached? (read without search permission)
            if entries:
                os.stat(entries[0].path, follow_symlinks=False)
        except PermissionError as error:
            found.append(folder_failure(current, error, listed=True))
            continue
        except OSError:
            pass  # gone since the listing, say: each entry is tried below
        children: list[tuple[Path, bool]] = []
        for entry in entries:
            if is_hidden(Path(entry.name)):
                continue
            path = current / entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    children.append((path, True))
                    continue
                # a link to a file counts, as the file; a link to nothing too, so that it is
                # reported, not skipped (reading it says what is wrong)
                is_file = entry.is_file() or (entry.is_symlink() and not path.exists())
            except OSError:
                is_file = True  # a file out of reach: reading it says why
            if is_file and path.suffix.lower() in FOLDER_IMAGE_EXTENSIONS:
                children.append((path, False))
            elif is_file and skipped is not None:
                skipped.append(str(path.relative_to(folder)))
        pending.extend(reversed(children))
    return found


# A shell passes a pattern that matched no file on as it was (bash without nullglob):
# "photos/*.jpg: no such file" did not say why (review). One quoted is expanded here.
GLOB_CHARACTERS = "*?["
UNMATCHED_PATTERN = ("no file matches this pattern (the shell passed it on as it was)",
                     "check the pattern (case counts: *.JPG is not *.jpg), or pass the folder "
                     "itself (predict reads the images in a folder)")


def expand_pattern(path: str) -> list[str | PredictionFailure]:
    """A pattern the shell left alone (quoted, "$DIR/*.png" in a script) expanded as the shell
    would, sorted, folders included; one that matches nothing is a failure in its place. A
    path that is there (a file named "shot[1].png") is itself."""
    if not any(c in path for c in GLOB_CHARACTERS) or os.path.lexists(path):
        return [path]
    folder, name = os.path.split(path)
    pattern = path
    if folder and os.path.isdir(folder):  # "$DIR/*.png", DIR named "shots [1]"
        pattern = os.path.join(glob.escape(folder), name)
    matched: list[str | PredictionFailure] = [*sorted(glob.glob(pattern))]
    return matched or [PredictionFailure(path, *UNMATCHED_PATTERN)]


def is_folder(path: str) -> bool:
    """Whether `path` is a folder (or a link to one); False when it cannot be told (a name
    too long, a folder above it without search permission): the path is then read as a
    file, and that read fails for it alone with the reason."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


# An empty path ("$IMG" unset) and `-` fail on their own, with a reason that says so rather
# than "no such file" (the other images still get predictions).
EMPTY_IMAGE_PATH = ("an empty path, not an image file (is the shell variable you used set?)",
                    "pass the image file's path")
STDIN_IMAGE = ("images are read from files, not from stdin (-)",
               "save the image to a file and pass its path (a file named - is ./-)")


URL_SCHEMES = ("http://", "https://", "ftp://")
NOT_A_URL = "dlbox predict reads local image files, not URLs"


def url_failure(path: str, run_dir: str | os.PathLike[str] | None = None,
                ) -> PredictionFailure | None:
    """An http(s) or ftp URL that is no local path (review: it read "no such file; check the
    path"): a failure with the download to make first, into a file named for the URL's last
    part, and the predict command to run on it; a password in the URL shown as ***. None
    for anything else."""
    import urllib.parse

    from dlbox.data.fetch import redact_url

    if not path.lower().startswith(URL_SCHEMES) or os.path.lexists(path):
        return None
    shown = redact_url(path)
    try:
        name = urllib.parse.unquote(urllib.parse.urlsplit(path).path).rsplit("/", 1)[-1]
    except ValueError:  # a malformed URL (an unclosed [ in its host)
        name = ""
    name = name if name.strip() and name not in (".", "..") else "image.jpg"
    if name.startswith("-"):  # not to be read as a flag (re-review)
        name = f"./{name}"
    run = "RUN_DIR" if run_dir is None else shell_quote(run_dir)
    # a password shown as *** would be sent as *** (re-review): the URL is the user's to fill in
    url = shell_quote(shown) if shown == path else "URL"
    return PredictionFailure(shown, NOT_A_URL,
                             f"download it first: curl -L -o {shell_quote(name)} {url}, then "
                             f"dlbox predict {run} {shell_quote(name)}")


NAMED_FILES_ARE_TRIED = "a file named itself is tried whatever its extension"
NO_IMAGES_IN_FOLDER = f"pass image files, or a folder that holds some ({NAMED_FILES_ARE_TRIED})"


def skipped_in_folder(skipped: Sequence[str]) -> str:
    """The files a folder passed over for their extension, in the words `dlbox data check`
    uses: "2 files without an image extension (a.avif, b.heic)"."""
    from dlbox.data.imagefolder import describe_skipped

    return describe_skipped(skipped, (), ())[0]


def expand_image_paths(paths: ImagePaths, notes: list[str] | None = None,
                       run_dir: str | os.PathLike[str] | None = None,
                       ) -> list[str | PredictionFailure]:
    """The image files `paths` stand for, in order, as `dlbox predict` reads its arguments:
    a folder is the images in it and its sub-folders (images_in_folder), a pattern the files
    it matches (expand_pattern), any other path itself. An empty path, `-` (the Unix
    spelling of stdin), a folder without images, one that cannot be listed, and a pattern
    that matches nothing are PredictionFailures in place. `notes` collects a note for each
    folder that passed over files for their extension (.avif, .heic, none), as `dlbox data
    check` notes what it skips. A URL (http, https, ftp) that is no local path fails with
    the download to make first (url_failure; `run_dir` for the predict command it gives)."""
    expanded: list[str | PredictionFailure] = []
    for path in one_or_many(paths):
        if not path.strip():
            expanded.append(PredictionFailure(path, *EMPTY_IMAGE_PATH))
            continue
        if path == "-":
            expanded.append(PredictionFailure(path, *STDIN_IMAGE))
            continue
        url = url_failure(path, run_dir)
        if url is not None:  # before the patterns: a URL's ? is no wildcard
            expanded.append(url)
            continue
        for found in expand_pattern(path):
            if isinstance(found, PredictionFailure) or not is_folder(found):
                expanded.append(found)
                continue
            skipped: list[str] = []
            images = images_in_folder(Path(found), skipped)
            if not images:
                held = f"it holds {skipped_in_folder(skipped)}; " if skipped else ""
                expanded.append(PredictionFailure(
                    found, f"is a folder without image files ({IMAGE_EXTENSIONS_TEXT})",
                    held + NO_IMAGES_IN_FOLDER))
                continue
            if skipped and notes is not None:
                notes.append(f"note: {found}: skipped {skipped_in_folder(skipped)}; a folder "
                             f"is read for its {IMAGE_EXTENSIONS_TEXT} files "
                             f"({NAMED_FILES_ARE_TRIED})")
            expanded += [image if isinstance(image, PredictionFailure) else str(image)
                         for image in images]
    return expanded


def predict_images(run_dir: str | os.PathLike[str], paths: ImagePaths, device: str = "auto",
                   top_k: int = 3, fit: Fit = "crop", tta: bool | None = None,
                   checkpoint: str = "last", on_image: Callable[[int, int], None] | None = None,
                   ) -> list[PredictionResult | PredictionFailure]:
    """Load the run's model and predict each image: a PredictionResult or a PredictionFailure.

    `paths`: image files, folders (the images in them and their sub-folders, in path order)
    or quoted shell patterns ("photos/*.jpg"), as `dlbox predict` takes them: one (a str or
    a Path) or any iterable of them (expand_image_paths). One result per image file, in
    order; an empty path, `-`, a folder without images or a pattern that matches nothing is
    a PredictionFailure in its place; files a folder passes over for their extension (.avif,
    .heic) get a `note:` on stderr. `on_image(done, total)` after each file is read.
    `tta`: test-time augmentation; None follows the run's config. Raises (RunDirError,
    UsageError, DlboxError) only for problems of the whole call: a missing run or checkpoint,
    a bad argument, a model that outputs NaN. A file that cannot be read fails on its own.
    """
    top_k = check_top_k(top_k)
    tta = check_tta(tta)
    if fit not in FITS:
        raise UsageError(f"unknown fit '{fit}'", hint=f"use one of {', '.join(FITS)}")
    notes: list[str] = []
    entries = expand_image_paths(paths, notes, run_dir)
    with out_of_memory_is_an_error(device, "predicting"):
        loaded, resolved = load_run_model(Path(run_dir), device, checkpoint)
        model_fn = build_model_fn(loaded, resolve_tta(tta, loaded.config))
        classes = tuple(loaded.classes)
        if not classes:  # evaluate takes them from the test data; predict has none
            raise RunDirError(f"checkpoint {loaded.checkpoint_path} has no class names, so "
                              "its predictions cannot be named",
                              hint="use a checkpoint written by `dlbox train` (it records "
                                   "them), or train the run again")
        for note in notes:  # on stderr, once the run is known to load (not in --json's stdout)
            tell(note)
        predicted = iter(predict_with_model_fn(
            model_fn, classes, [entry for entry in entries if isinstance(entry, str)],
            resolved, top_k, IMAGE_SIZE, fit, run_amp_dtype(loaded), on_image))
    return [next(predicted) if isinstance(entry, str) else entry for entry in entries]
