"""Find the folder that holds first_pytorch_classifier.ipynb for `dlbox notebook` to serve."""

from __future__ import annotations

import json
import re
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import platformdirs

import dlbox
from dlbox.errors import UsageError
from dlbox.jupyter.settings import NOTEBOOK_NAME
from dlbox.text import use_wording


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
        user_dir = user_notebooks_dir()
        user_dir.mkdir(parents=True, exist_ok=True)
        if not (user_dir / NOTEBOOK_NAME).exists():
            shutil.copyfile(packaged, user_dir / NOTEBOOK_NAME)
        return user_dir
    raise UsageError(f"cannot find {NOTEBOOK_NAME} (looked in ./notebooks and "
                     f"{checkout_notebooks_dir()})",
                     hint="run from the dlbox checkout, or pass --notebook-dir DIR")


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


def check_settings(**settings: object) -> None:
    """The notebook's settings cell, checked before anything uses it: a bad value is one
    error naming the setting (as the notebook spells it) and the value to give instead, not
    a traceback from deep in numpy or matplotlib, nor a silent surprise (NUM_TRAIN = -5 kept
    all but 5 images). Takes NUM_TRAIN, NUM_TEST, EPOCHS and SEED."""
    def whole(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    for name in ("NUM_TRAIN", "NUM_TEST"):
        value = settings.get(name)
        if value is not None and (not whole(value) or int(value) < 1):  # type: ignore[call-overload]
            raise UsageError(f"{name} = {value!r} is not a number of images",
                             hint=f"set {name} to a whole number, 1 or more, or to None for "
                                  "all of them")
    epochs = settings.get("EPOCHS")
    if "EPOCHS" in settings and (not whole(epochs) or int(epochs) < 1):  # type: ignore[call-overload]
        raise UsageError(f"EPOCHS = {epochs!r} is not a number of passes",
                         hint="set EPOCHS to a whole number, 1 or more")
    seed = settings.get("SEED")
    if "SEED" in settings and not whole(seed):
        raise UsageError(f"SEED = {seed!r} is not a whole number",
                         hint="set SEED to a whole number such as 0 (the same seed gives the "
                              "same run on the same machine)")


# The command line's flags and the notebook's settings that do the same: a hint written for
# `dlbox train` ("pass --epochs 1 or more") is read in the notebook in its own words.
SETTING_OF_FLAG = {"--epochs": "EPOCHS", "--num-train": "NUM_TRAIN", "--num-test": "NUM_TEST",
                   "--device": "DEVICE", "--seed": "SEED", "--model": "MODEL",
                   "--data": "DATA_DIR", "--run-dir": "RUN_DIR"}


def in_setting_terms(line: str) -> str:
    """`line` with the flags the notebook has settings for named as those settings ("--data
    DIR" as DATA_DIR); a command in backticks (`dlbox data fetch --data X`) is left whole."""
    def setting(match: re.Match[str]) -> str:
        return SETTING_OF_FLAG.get(match.group(1), match.group(0))

    parts = line.split("`")
    for index in range(0, len(parts), 2):  # outside backticks
        parts[index] = re.sub(r"(?<![\w-])(--[a-z][a-z-]*)(?: (?:DIR|N)\b)?", setting,
                              parts[index])
    return "`".join(parts)


def name_settings_in_errors() -> None:
    """In a notebook (IPython), show dlbox's errors, warnings and notes with the settings'
    names for the flags (see in_setting_terms); elsewhere, nothing changes."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    from dlbox.errors import DlboxError

    def show(shell: Any, etype: type, value: BaseException, tb: Any,
             tb_offset: int | None = None) -> list[str]:
        render = getattr(value, "_render_traceback_", None)
        lines = [in_setting_terms(line) for line in (render() if render else [str(value)])]
        shell._showtraceback(etype, value, lines)  # how IPython shows a rendered traceback
        return lines

    shell.set_custom_exc((DlboxError,), show)
    use_wording(in_setting_terms)

