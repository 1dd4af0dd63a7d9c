"""Placing an evaluation's report: its files are written into a staging folder beside where
they go (`.evaluation.<owner>.XXXXXXXX.tmp`), and moved into place at the end, in an instant,
once a `moving` file lists them. A command that finds the staging folder of an evaluation
killed during those moves (SIGKILL, a power cut) finishes them, so a report is all new or all
old, never half of each.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path

from dlbox.errors import FileWriteError, write_error
from dlbox.fileio import atomic_open
from dlbox.text import tell

# and the owner id, ".", 8 random characters and ".tmp": an atomic-temp name
STAGING_PREFIX = ".evaluation."
# in a staging folder, once its report is whole: the files to move out, in order, one a line
MOVING_FILE = "moving"


def finish_placing(staging: Path) -> None:
    """Move into place what is left of the report in `staging`, the staging folder of an
    evaluation killed (SIGKILL, a power cut) while it moved the report in, so that the report
    is all new, not half: in the order the evaluation moved them, the metrics last. A folder
    without MOVING_FILE (its report was not whole yet) is left as it is; the caller removes
    the folder after. Another command may finish the same folder at once: a file it moved
    first counts as placed."""
    try:
        names = (staging / MOVING_FILE).read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError):
        return
    left = [name for name in names
            if Path(name).name == name and (staging / name).is_file()
            and not (staging / name).is_symlink()]
    placed = 0
    for name in left:
        try:
            move_into_place(staging / name, staging.parent / name)
        except FileWriteError:
            # gone from the folder: another command finishing it at once moved it first
            # (review: the one behind lost its own finished report to this error)
            if os.path.lexists(staging / name):
                raise
        else:
            placed += 1
    if placed:
        tell("note: finished placing the report an interrupted evaluation left in "
             f"{staging.parent}")


def finish_killed_placements(folder: Path) -> None:
    """finish_placing for every evaluation staging folder in `folder` (a run dir whose lock
    is held: any such folder is a killed evaluation's)."""
    with contextlib.suppress(OSError):
        for staging in sorted(folder.glob(f"{STAGING_PREFIX}*.tmp")):
            if staging.is_dir() and not staging.is_symlink():
                finish_placing(staging)


def move_into_place(staged: Path, final_path: Path) -> None:
    """Put a staged file where it goes: a link there is followed, as every write of dlbox
    does (its file is replaced, not the link); a folder there is named as the file."""
    try:
        if final_path.is_symlink():  # resolved: a link to no file yet makes its file
            with open(staged, "rb") as source, atomic_open(final_path.resolve()) as handle:
                shutil.copyfileobj(source, handle)
            return
        if final_path.is_file():  # the file it replaces keeps its mode (review: 600 -> 644)
            os.chmod(staged, stat.S_IMODE(final_path.stat().st_mode))
        os.replace(staged, final_path)
    except OSError as error:
        raise write_error(final_path, error) from None
