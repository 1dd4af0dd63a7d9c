"""A private folder per launch (0700) holding the token file (0600), the Jupyter config and log.

Removed when the launch ends, so the token lives on disk only while its server runs. A dlbox
killed outright (SIGKILL) cannot remove it: its `owner` file (host, pid, start time) lets the
next launch recognise the folder as abandoned and remove it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from dlbox.container.owner import owner_id
from dlbox.processes import OWNER_FILENAME, remove_abandoned_folders

TOKEN_FILENAME = "token"
CONFIG_FILENAME = "dlbox_jupyter_config.json"
LOG_FILENAME = "jupyter.log"
PREFIX = "dlbox-notebook-"


class LaunchDir:
    """The launch's private folder. Use as a context manager or call `remove()`."""

    def __init__(self, prefix: str = PREFIX) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=prefix))  # mkdtemp: mode 0700
        os.chmod(self.path, 0o700)
        (self.path / OWNER_FILENAME).write_text(owner_id() + "\n", encoding="utf-8")

    @property
    def token_file(self) -> Path:
        return self.path / TOKEN_FILENAME

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILENAME

    @property
    def log_file(self) -> Path:
        return self.path / LOG_FILENAME

    def write_token(self, token: str, owner_uid: int | None = None,
                    owner_gid: int | None = None) -> Path:
        """Write the token with mode 0600 (created so, never widened); no trailing newline,
        since Jupyter reads the file's whole text as the token."""
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(token)
        if owner_uid is not None:
            # Root hands the file to the container's non-root user; it stays 0600.
            os.chown(self.token_file, owner_uid, -1 if owner_gid is None else owner_gid)
        return self.token_file

    def write_config(self, config: dict[str, object]) -> Path:
        self.config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return self.config_file

    def log_tail(self, max_chars: int = 3000) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        if len(text) <= max_chars:
            return text
        tail = text[-max_chars:]
        start = tail.find("\n") + 1  # from a line's beginning, not the middle of one
        return tail[start:] if 0 < start < len(tail) else tail

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> LaunchDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def remove_abandoned_launch_dirs(parent: Path | None = None, prefix: str = PREFIX) -> list[Path]:
    """Remove the launch folders (in the temp folder) of dlbox launches that were killed
    before they could remove their own; the folders removed. Only folders of this user with
    an `owner` file whose dlbox is gone: a live launch's folder, or any other folder that
    shares the prefix (a notebook's `dlbox-notebook-run-*`), is left alone."""
    parent = Path(tempfile.gettempdir()) if parent is None else parent
    return remove_abandoned_folders(parent, f"{prefix}*")
