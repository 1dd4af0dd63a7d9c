"""Errors that reach the user: a one-line message naming the problem, and a hint naming the fix.

The CLI prints `error: <message>` and `hint: <hint>` and exits with the error's `exit_code`.
Library code raises these instead of printing; nothing below the CLI calls sys.exit.
"""

from __future__ import annotations

from typing import Any

# Exit codes, shared by every command.
EXIT_OK = 0
EXIT_ERROR = 1  # a command failed (bad data, failed build, error finding)
EXIT_USAGE = 2  # bad command-line input (argparse uses 2 as well)
EXIT_PARTIAL = 3  # some inputs failed, the others succeeded (predict on several images)
EXIT_INTERNAL = 70  # an unexpected error, a bug in dlbox (sysexits.h's EX_SOFTWARE)
EXIT_INTERRUPTED = 130  # Ctrl-C


class DlboxError(Exception):
    """A failure the user can act on."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    @property
    def hint(self) -> str | None:
        return self._hint

    @hint.setter
    def hint(self, hint: str | None) -> None:
        # The hint is a note of the exception too, so that a plain traceback (a script, a
        # worker process) prints `hint: ...` under the error as the CLI and IPython do (they
        # print report_lines, never the notes); a hint reworded on its way up replaces it.
        # Python 3.10's traceback prints no notes (the exceptiongroup backport's does).
        notes = getattr(self, "__notes__", None)
        old = getattr(self, "_hint", None)
        if old and isinstance(notes, list) and f"hint: {old}" in notes:
            notes.remove(f"hint: {old}")
        self._hint = hint
        if hint:
            if not isinstance(notes, list):
                notes = []
                self.__notes__ = notes
            notes.append(f"hint: {hint}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt without calling __init__, whose arguments differ from class to class
        # (NoDataError's data_dir, FileWriteError's path): the pickle a worker process sends
        # back (ProcessPoolExecutor) unpickles as the same error, not a BrokenProcessPool.
        return _rebuild_error, (type(self), self.args, self.__dict__)

    def report_lines(self) -> list[str]:
        """What the user reads: `error: <message>`, then `hint: <hint>` when there is one."""
        return [f"error: {self.message}"] + ([f"hint: {self.hint}"] if self.hint else [])

    def _render_traceback_(self) -> list[str]:
        # IPython (a notebook, a console) shows these lines instead of a traceback, so an
        # error reads there as it does on the command line; the cell still fails.
        return self.report_lines()


def _rebuild_error(cls: type[DlboxError], args: tuple[Any, ...],
                   state: dict[str, Any]) -> DlboxError:
    """A pickled DlboxError (any subclass) as it was: its args, message, hint and notes."""
    error = cls.__new__(cls, *args)
    error.__dict__.update(state)
    if isinstance(state.get("__notes__"), list):  # a copy.copy's own, not the original's
        error.__dict__["__notes__"] = list(state["__notes__"])
    return error


class UsageError(DlboxError):
    """The command line or a config value is wrong."""

    exit_code = EXIT_USAGE


class DataError(DlboxError):
    """Data is missing, corrupt, or fails its checksum."""


class NoDataError(DataError):
    """A data dir holds no data at all (none fetched there, or it moved away)."""

    def __init__(self, message: str, data_dir: object, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.data_dir = data_dir


class RunDirError(DlboxError):
    """A run directory is missing or lacks a file a command needs."""


class HostEnvError(DlboxError):
    """The host cannot run what was asked (driver, CUDA, GPU, Docker)."""


class ContainerError(DlboxError):
    """Building or running a Docker image failed."""


class FileWriteError(DlboxError):
    """A file could not be written: no space left, no permission, a read-only filesystem."""

    def __init__(self, path: object, reason: str, hint: str | None = None,
                 kind: str | None = None) -> None:
        super().__init__(f"cannot write {path}: {reason}", hint=hint or WRITE_HINT)
        self.path = path
        self.reason = reason
        self.kind = kind  # write_failure_kind's: "no-space", "not-writable", or None


WRITE_HINT = ("free some disk space, or make the folder writable (or write elsewhere: "
              "--run-dir for runs, --data / DLBOX_DATA for data)")


def write_failure_kind(error: BaseException) -> str | None:
    """Why a write failed, as far as its errno tells: "no-space" (disk or quota full),
    "not-writable" (permissions, a read-only filesystem), or None (something else)."""
    import errno

    code = getattr(error, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "no-space"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "not-writable"
    return None


def write_error(path: object, error: BaseException) -> FileWriteError:
    """The FileWriteError for an OSError raised while writing `path` (named as the final file,
    never its temp file)."""
    import errno
    from pathlib import Path

    from dlbox.fileio import nearest_folder  # here: fileio imports this module
    from dlbox.text import make_writable, shell_quote

    reason = getattr(error, "strerror", None) or first_line(error)
    kind = write_failure_kind(error)
    folder = nearest_folder(Path(str(path)).parent)  # the one a mkdir -p failed in
    quoted = shell_quote(folder)
    # Said of the folder, not of a flag: --run-dir, --data, --record and --lock all lead here.
    if kind == "no-space":
        return FileWriteError(path, reason, hint=f"free some disk space where {folder} is "
                                                  f"(`df -h {quoted}` shows it), or write "
                                                  "elsewhere", kind=kind)
    if getattr(error, "errno", None) == errno.EROFS:
        return FileWriteError(path, reason, hint=f"{folder} is on a read-only filesystem: "
                                                  "write elsewhere", kind=kind)
    if getattr(error, "errno", None) == errno.EFBIG:  # `ulimit -f`, or FAT32's 4 GiB
        return FileWriteError(path, reason, hint="the file outgrew the size this process may "
                                                  "write: raise the limit (`ulimit -f "
                                                  "unlimited` in the shell that runs dlbox), or "
                                                  "write to a filesystem that takes larger files")
    if kind == "not-writable":
        return FileWriteError(path, reason, hint=f"{make_writable(folder)}, or write "
                                                  "elsewhere", kind=kind)
    return FileWriteError(path, reason)


def first_line(error: BaseException) -> str:
    """The first line of an error's text (its type name when it has none), for one-line
    messages. torch's "Error(s) in loading state_dict for X:" heading gets its first detail
    appended, since the heading alone says nothing."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if lines[0].endswith(":") and len(lines) > 1:
        more = " ..." if len(lines) > 2 else ""
        return f"{lines[0]} {lines[1]}{more}"
    return lines[0]
