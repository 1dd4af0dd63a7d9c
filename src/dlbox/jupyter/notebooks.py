"""Find the folder that holds first_pytorch_classifier.ipynb for `dlbox notebook` to serve."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import platformdirs

import dlbox
from dlbox.errors import UsageError
from dlbox.jupyter.settings import NOTEBOOK_NAME


def checkout_notebooks_dir() -> Path:
    """<repo>/notebooks when dlbox runs from a source checkout (src layout)."""
    return Path(dlbox.__file__).resolve().parents[2] / "notebooks"


def _packaged_notebook() -> Path | None:
    """The notebook shipped inside an installed wheel (dlbox/notebooks/), if any."""
    try:
        candidate = resources.files("dlbox").joinpath("notebooks").joinpath(NOTEBOOK_NAME)
    except (ModuleNotFoundError, FileNotFoundError):
        return None
    return Path(str(candidate)) if candidate.is_file() else None


def resolve_notebook_dir(arg: str | Path | None, cwd: Path | None = None) -> Path:
    """The folder to serve.

    --notebook-dir DIR when given (must exist). Otherwise the first folder that holds the
    notebook: ./notebooks, the source checkout's notebooks/, or a per-user copy of the one
    shipped in the package (copied once, so the user's edits are kept).
    """
    if arg is not None:
        directory = Path(arg).expanduser().resolve()
        if not directory.is_dir():
            raise UsageError(f"--notebook-dir {arg} is not a directory",
                             hint="create it, or leave --notebook-dir out to serve dlbox's "
                                  "notebooks folder")
        return directory
    cwd = cwd or Path.cwd()
    for candidate in (cwd / "notebooks", checkout_notebooks_dir()):
        if (candidate / NOTEBOOK_NAME).is_file():
            return candidate.resolve()
    packaged = _packaged_notebook()
    if packaged is not None:
        user_dir = Path(platformdirs.user_data_dir("dlbox", appauthor=False)) / "notebooks"
        user_dir.mkdir(parents=True, exist_ok=True)
        if not (user_dir / NOTEBOOK_NAME).exists():
            shutil.copyfile(packaged, user_dir / NOTEBOOK_NAME)
        return user_dir
    raise UsageError(f"cannot find {NOTEBOOK_NAME} (looked in ./notebooks and "
                     f"{checkout_notebooks_dir()})",
                     hint="run from the dlbox checkout, or pass --notebook-dir DIR")
