"""Where the data lives: `--data DIR`, else $DLBOX_DATA, else the user's cache dir."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DATA_ENV_VAR = "DLBOX_DATA"


def default_data_dir() -> Path:
    """The per-user cache location, e.g. ~/.cache/dlbox/data on Linux."""
    return Path(platformdirs.user_cache_dir("dlbox", appauthor=False)) / "data"


def resolve_data_dir(arg: str | Path | None) -> Path:
    """The data dir a command uses: the --data argument if given, else $DLBOX_DATA, else cache."""
    if arg is not None and str(arg) != "":
        return Path(arg).expanduser()
    env = os.environ.get(DATA_ENV_VAR, "")
    if env:
        return Path(env).expanduser()
    return default_data_dir()
