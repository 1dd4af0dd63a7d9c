"""Where the data lives: `--data DIR`, else $DLBOX_DATA, else the user's cache dir."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from dlbox.data.layout import BATCHES_DIRNAME
from dlbox.errors import DataError, UsageError
from dlbox.fileio import expand_user
from dlbox.text import shell_quote

DATA_ENV_VAR = "DLBOX_DATA"
FOLDER_HINT = (f"point --data DIR (or {DATA_ENV_VAR}) at a folder; "
               "`dlbox data fetch` creates it if it does not exist")


def cache_dir() -> Path:
    """dlbox's per-user cache folder, e.g. ~/.cache/dlbox on Linux."""
    return Path(platformdirs.user_cache_dir("dlbox", appauthor=False))


def default_data_dir() -> Path:
    """The per-user cache location, e.g. ~/.cache/dlbox/data on Linux."""
    return cache_dir() / "data"


def data_flag(data_dir: str | Path) -> str:
    """` --data DIR` for a command a hint suggests, so that it acts on the data dir that was
    looked at; "" for the one a bare command uses ($DLBOX_DATA, else the cache dir)."""
    def where(path: Path) -> Path:
        try:
            return expand_user(path).resolve()
        except (OSError, RuntimeError):  # a link loop, say: compared as written
            return expand_user(path).absolute()

    try:
        default = resolve_data_dir(None)
    except UsageError:  # a blank $DLBOX_DATA: a bare command would be refused, so spell it out
        default = None
    if default is not None and where(Path(data_dir)) == where(default):
        return ""
    return f" --data {shell_quote(data_dir)}"


def fetch_from_copy(where: str, sha256: str | None = None) -> str:
    """The fetch command for an archive copied here (`where`: data_flag's " --data DIR" or
    "", and any other flag to repeat): the official archive needs no checksum of its own,
    another copy its --sha256, given as `sha256` when the user named it already."""
    command = f"`dlbox data fetch{where} --from /path/to/cifar-10-python.tar.gz"
    if sha256:
        return f"{command} --sha256 {sha256}`"
    return (f"{command}`; add `--sha256 HEX` for a copy that is not byte-identical to the "
            "official one")


def fetch_hint(data_dir: str | Path) -> str:
    """Get the data into `data_dir` (the one that was looked at), or point at another."""
    where = data_flag(data_dir)
    return (f"run `dlbox data fetch{where}` (offline: {fetch_from_copy(where)}), or pass "
            f"--data DIR holding {BATCHES_DIRNAME}/ or <split>/<class>/*.png|jpg")


def resolve_data_dir(arg: str | Path | None) -> Path:
    """The data dir a command uses: the --data argument if given, else $DLBOX_DATA, else cache.

    Only None means "not given". An empty `arg` is refused (UsageError): it is what
    `--data "$DIR"` passes with DIR unset, and reading or fetching into the default data dir
    instead would be a silent surprise. An empty $DLBOX_DATA counts as unset, as an empty
    environment variable conventionally does (`DLBOX_DATA= dlbox ...` clears it); a blank
    one (spaces) is refused like a blank --data."""
    if arg is not None:
        if not str(arg).strip():
            raise UsageError("the data dir was given as an empty path",
                             hint=f"pass a folder, or None for the default (${DATA_ENV_VAR}, "
                                  "else the user cache dir)")
        return expand_user(arg)
    env = os.environ.get(DATA_ENV_VAR, "")
    if env and not env.strip():  # blank, not empty: a mistake, as a blank --data is (review)
        raise UsageError(f"${DATA_ENV_VAR} is {env!r}, a blank path",
                         hint=f"set {DATA_ENV_VAR} to a folder, or unset it (or set it empty) "
                              "for the user cache dir; or pass --data DIR")
    if env:
        return expand_user(env)
    return default_data_dir()


def resolved_data_dir(arg: str | Path | None) -> Path:
    """resolve_data_dir's folder as an absolute path without links, for the commands that
    read data (train, evaluate): checked first (check_data_dir_path), since resolving turns
    a link to nothing into the missing folder it points to, whose "no data; run dlbox data
    fetch" is a fix that fetch refuses on the link."""
    given = resolve_data_dir(arg)
    check_data_dir_path(given)
    return given.resolve()


def check_data_dir_path(data_dir: str | Path) -> None:
    """Raise DataError when `data_dir`, or the nearest part of it that exists, is not a folder
    (a regular file, say): no data can be read from it nor fetched into it. A data dir that
    does not exist yet passes (`fetch` creates it; `check` reports no data)."""
    data_dir = Path(data_dir)
    path = data_dir
    while True:
        try:
            exists = path.exists()
            is_dir = path.is_dir()
        except OSError:  # e.g. a name too long: leave it to the command to report
            return
        if exists or path.is_symlink() or path.parent == path:
            break
        path = path.parent
    if not exists and path.is_symlink():
        # `mkdir` would fail on it with a bare "File exists", and `check` would say no data.
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        where = (f"the data dir {data_dir} is" if path == data_dir
                 else f"the data dir {data_dir} lies under {path}, which is")
        raise DataError(f"{where} a symbolic link to {target}, which does not exist",
                        hint=f"create the folder it points to (`mkdir -p {path.parent / target}`)"
                             f", or {FOLDER_HINT}")
    if not exists or is_dir:
        return  # the root, or an existing folder: nothing to say here
    what = "a file, not a folder" if path.is_file() else "not a folder"
    archive_hint = ""
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        archive_hint = f" (to extract that archive: `dlbox data fetch --from {path}`)"
    if path == data_dir:
        message = f"the data dir {data_dir} is {what}"
    else:
        message = f"the data dir {data_dir} lies under {path}, which is {what}"
    raise DataError(message, hint=FOLDER_HINT + archive_hint)
