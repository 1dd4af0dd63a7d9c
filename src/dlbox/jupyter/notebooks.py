"""Find the folder that holds first_pytorch_classifier.ipynb for `dlbox notebook` to serve,
and check that Jupyter can open it.

The notebook's own imports (check_settings, synthetic_cifar10, removed_if_unsaved,
stopped_with, cell_ran, training_history, ...) live in dlbox.jupyter.kernel, and are
re-exported here, where the notebook imports them from.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib import resources
from pathlib import Path

import platformdirs

import dlbox
from dlbox.errors import UsageError
from dlbox.fileio import current_folder, expand_user
from dlbox.jupyter.kernel import (
    cell_ran,
    check_made_with,
    check_predictions_read,
    check_settings,
    check_test_images,
    how_to_get_cifar10,
    in_setting_terms,
    name_settings_in_errors,
    own_test_set_note,
    removed_if_unsaved,
    stopped_with,
    synthetic_cifar10,
    tested_stamp,
    training_history,
    unfinished_run_note,
)
from dlbox.jupyter.settings import NOTEBOOK_NAME
from dlbox.text import shell_quote, tell

__all__ = [
    "COPIED_DIGEST_FILE", "checkout_notebooks_dir", "copy_packaged_notebook",
    "damaged_notebook_hint", "notebook_problem", "resolve_notebook_dir", "user_notebooks_dir",
    # dlbox.jupyter.kernel's, imported from here by the notebook (scripts/build_notebook.py
    # writes it): a notebook saved by an older dlbox keeps working
    "cell_ran", "check_made_with", "check_predictions_read", "check_settings",
    "check_test_images", "tested_stamp",
    "how_to_get_cifar10", "in_setting_terms", "name_settings_in_errors", "own_test_set_note",
    "removed_if_unsaved", "stopped_with", "synthetic_cifar10", "training_history",
    "unfinished_run_note",
]


def checkout_notebooks_dir() -> Path:
    """<repo>/notebooks when dlbox runs from a source checkout (src layout)."""
    return Path(dlbox.__file__).resolve().parents[2] / "notebooks"


def user_notebooks_dir() -> Path:
    """Where an installed dlbox keeps the user's copy of its notebook."""
    return Path(platformdirs.user_data_dir("dlbox", appauthor=False)) / "notebooks"


def _packaged_notebook() -> Path | None:
    """The notebook shipped inside an installed wheel (dlbox/notebooks/), if any."""
    try:
        candidate = resources.files("dlbox").joinpath("notebooks").joinpath(NOTEBOOK_NAME)
    except (ModuleNotFoundError, FileNotFoundError):
        return None
    return Path(str(candidate)) if candidate.is_file() else None


# the way out of a removed current folder (`current_folder`)
_FOLDER_GONE_HINT = "cd to a folder that exists, or pass --notebook-dir an absolute path"


def resolve_notebook_dir(arg: str | Path | None, cwd: Path | None = None) -> Path:
    """The folder to serve.

    --notebook-dir DIR when given (must exist). Otherwise the first folder that holds the
    notebook: ./notebooks, the source checkout's notebooks/, or a per-user copy of the one
    shipped in the package (see copy_packaged_notebook).
    """
    if arg is not None:
        path = expand_user(arg)  # a relative one needs the current folder
        directory = (path if path.is_absolute()
                     else current_folder(_FOLDER_GONE_HINT) / path).resolve()
        if directory.is_file():  # the notebook itself, most likely (review: "create it")
            raise UsageError(f"--notebook-dir {arg} is a file, not a directory",
                             hint="pass the folder that holds it: --notebook-dir "
                                  f"{shell_quote(directory.parent)}")
        if not directory.is_dir():
            raise UsageError(f"--notebook-dir {arg} is not a directory",
                             hint="create it, or leave --notebook-dir out to serve dlbox's "
                                  "notebooks folder")
        return directory
    if cwd is None:
        cwd = current_folder(_FOLDER_GONE_HINT)
    for candidate in (cwd / "notebooks", checkout_notebooks_dir()):
        if (candidate / NOTEBOOK_NAME).is_file():
            return candidate.resolve()
    packaged = _packaged_notebook()
    if packaged is not None:
        user_dir = user_notebooks_dir()
        user_dir.mkdir(parents=True, exist_ok=True)
        try:
            newer = copy_packaged_notebook(packaged, user_dir)
        except OSError as error:  # a read-only home, say: the copy there still serves
            if not (user_dir / NOTEBOOK_NAME).is_file():
                raise
            tell(f"warning: cannot bring {user_dir / NOTEBOOK_NAME} up to date with this "
                 f"dlbox's version ({error.strerror or error}): serving it as it is")
            return user_dir
        if newer is not None:
            tell(f"note: your {user_dir / NOTEBOOK_NAME} differs from this dlbox's version "
                 f"(edited, or copied by an earlier dlbox), so it is kept; this dlbox's "
                 f"version is beside it: {newer}")
        return user_dir
    raise UsageError(f"cannot find {NOTEBOOK_NAME} (looked in ./notebooks and "
                     f"{checkout_notebooks_dir()})",
                     hint="run from the dlbox checkout, or pass --notebook-dir DIR")


# The sha256 of the packaged notebook last copied to the user's folder, kept beside it: a
# copy that still has it is unedited, and is replaced when an upgrade ships another.
COPIED_DIGEST_FILE = ".first_pytorch_classifier.copied-sha256"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_packaged_notebook(packaged: Path, user_dir: Path) -> Path | None:
    """Bring the user's copy of the packaged notebook up to date (review: it was copied once
    and never again, so an upgrade kept the old notebook). A missing or unedited copy is
    replaced by the packaged one; an edited copy is kept, and the packaged one written beside
    it as first_pytorch_classifier.new.ipynb, whose path is returned (None otherwise)."""
    mine, marker = user_dir / NOTEBOOK_NAME, user_dir / COPIED_DIGEST_FILE
    shipped = _sha256(packaged)
    copied = marker.read_text(encoding="utf-8").strip() if marker.is_file() else None
    current = _sha256(mine) if mine.exists() else None
    if current is not None and shipped in (copied, current):
        if copied != shipped:  # the same bytes, from before the marker was kept
            marker.write_text(shipped + "\n", encoding="utf-8")
        return None
    if current is None or current == copied:
        shutil.copyfile(packaged, mine)
        marker.write_text(shipped + "\n", encoding="utf-8")
        return None
    newer = mine.with_name(mine.stem + ".new" + mine.suffix)  # edited: the user's is kept
    if not newer.is_file() or _sha256(newer) != shipped:
        shutil.copyfile(packaged, newer)
    return newer


def notebook_problem(path: Path) -> str | None:
    """Why Jupyter could not open the notebook at `path` (not JSON, not a notebook), or None
    when it reads it as Jupyter does: nbformat.read to version 4 (a notebook that merely
    fails validation still opens)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return "it is not UTF-8 text"
    except OSError as error:
        return f"it cannot be read: {error.strerror or error}"
    try:
        data = json.loads(text)
    except ValueError as error:
        return f"not valid JSON: {error}"
    if not isinstance(data, dict) or "nbformat" not in data:
        return "JSON, but not a Jupyter notebook (no nbformat field)"
    try:
        import nbformat
    except ImportError:  # the container mode needs no Jupyter on the host: JSON checks only
        return None
    try:
        nbformat.reads(text, as_version=4)
    except Exception as error:  # noqa: BLE001 - a version it cannot convert, missing keys...
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return f"not a notebook Jupyter can read: {first_line[:200]}"
    return None


def damaged_notebook_hint(path: Path) -> str:
    """How to get a good copy of a damaged notebook back, depending on where it lives."""
    folder = path.resolve().parent
    if folder == checkout_notebooks_dir().resolve():
        return ("rebuild it: python scripts/build_notebook.py in the dlbox checkout (or git "
                f"checkout -- notebooks/{path.name})")
    if folder == user_notebooks_dir().resolve():
        return f"delete it (rm {path}): dlbox copies a fresh one at its next launch"
    return "restore it from a good copy, or delete it; the folder's URL above still works"
