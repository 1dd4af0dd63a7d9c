"""Atomic file writes: a reader (or a crash) never sees a half-written file.

Write to a temp file in the same directory, fsync it, then os.replace over the target; a
failure removes the temp file and leaves any previous version of the target untouched.

Also `exclusive_lock`: one process at a time in a run dir or a data dir.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from dlbox.errors import DlboxError, FileWriteError, UsageError, first_line, write_error

# Below this many free bytes, a writer's failure (torch.save's "unexpected pos", say) is read
# as the disk running full.
LOW_SPACE_BYTES = 16 * 1024 * 1024


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", tag: str = "") -> Iterator[IO[Any]]:
    """Open a temp file beside `path`; on a clean exit it replaces `path`, else it vanishes.
    The temp file is named ".NAME.RANDOM.tmp", or ".NAME.TAG.RANDOM.tmp" with a `tag` (the
    writer's owner id, say, for those who clear the files of killed writers).

    An OSError on the way (no space, no permission, a read-only filesystem, a folder where the
    file should be) becomes dlbox.errors.FileWriteError naming `path`, not the temp file."""
    if mode not in ("w", "wb"):
        raise ValueError("atomic_open writes only: mode 'w' or 'wb'")
    path = Path(path)
    if path.is_symlink() and path.exists():  # the file it points to is what is meant
        path = path.resolve()
    _refuse_special_file(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{f'{tag}.' if tag else ''}",
                                        suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise write_error(path, error) from error
    try:
        # mkstemp makes the file 0600; the result gets the mode a plain open() would give:
        # the file's own when it is there (review: a 600 metrics.json came back 644).
        os.fchmod(fd, _mode_of(path))
        handle: IO[Any]
        with (os.fdopen(fd, "w", encoding="utf-8") if mode == "w"
              else os.fdopen(fd, "wb")) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException as error:
        # Measured before the partial temp file goes: deleting it gives the space back.
        disk_full = isinstance(error, RuntimeError) and _low_on_space(path.parent)
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        if isinstance(error, OSError):
            raise write_error(path, error) from error
        if disk_full:
            # torch.save reports a full disk as a RuntimeError from its zip writer.
            raise FileWriteError(path, f"no space left on the device ({first_line(error)})",
                                 hint="free some disk space, or write elsewhere",
                                 kind="no-space") from error
        raise
    fsync_dir(path.parent)


def expand_user(path: str | Path) -> Path:
    """`path` with a leading ~ or ~user expanded; as it is where ~name names no user (an
    Office lock file, ~$report.docx), which pathlib refuses with a RuntimeError."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        return Path(path)


def current_folder(hint: str = "cd to a folder that exists and run the command again") -> Path:
    """Path.cwd(); for a shell still in a folder someone removed, a UsageError saying so
    (review: "No such file or directory", and "please report it"), with `hint` as the way
    out."""
    try:
        return Path.cwd()
    except FileNotFoundError:
        raise UsageError("the current folder no longer exists (it was removed or moved)",
                         hint=hint) from None


def _mode_of(path: Path) -> int:
    """The permission bits a rewrite of `path` keeps: its own, else what open() gives."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_current_umask()


# atomic_open's temp file: "." + the target's name + "." + mkstemp's 8 random characters
_ATOMIC_TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def is_atomic_temp(name: str) -> bool:
    """Whether `name` is an atomic write's temp file (".last.pt.k3j9x_2a.tmp")."""
    return bool(_ATOMIC_TEMP.match(name))


def remove_atomic_temps(folder: Path) -> None:
    """Remove the temp files (and an evaluation's staging folders) that writes killed mid-way
    (SIGKILL, a power cut) left in `folder`. Only for a folder no other process writes to
    now: one whose lock is held."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        with contextlib.suppress(OSError):
            if not is_atomic_temp(entry.name):
                continue
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
            elif entry.is_dir(follow_symlinks=False):  # an evaluation's staging folder
                shutil.rmtree(entry.path)


@contextlib.contextmanager
def exclusive_lock(path: str | Path, busy: DlboxError, *,
                   best_effort: bool = False) -> Iterator[bool]:
    """Hold the kernel's exclusive lock (flock) on `path` for the with-block, or raise `busy`
    at once when another open of it holds the lock (another process, or another
    exclusive_lock in this one); it never waits. Yields True while the lock is held.

    `path` is a lock file, created (never through a symlink) if missing, or an existing
    folder, locked itself so that nothing is written into it. The lock ends when the block
    exits, an exception included, and with the process, SIGKILL included: a stale lock never
    blocks anyone. Where there are no locks (no fcntl on Windows, a filesystem that refuses
    flock) the block runs unlocked and gets False. A lock file that cannot be opened (its
    folder missing or not writable) is FileWriteError naming it, or with best_effort, the
    block runs unlocked too."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield False
        return
    try:
        fd = _open_lock_target(Path(path))
    except OSError as error:
        if best_effort:
            yield False
            return
        raise _lock_open_error(Path(path), error) from error
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        except OSError:
            # ENOLCK, EOPNOTSUPP, EINVAL: this filesystem (some network ones) has no flock.
            # Refusing to work there would be worse than the race the lock guards against.
            held = False
        else:
            held = True
        if held:
            _HELD_HERE.add(Path(path).absolute())
        try:
            yield held
        finally:
            if held:
                _HELD_HERE.discard(Path(path).absolute())
    finally:
        os.close(fd)  # closing the only descriptor of the open file drops its lock


_HELD_HERE: set[Path] = set()  # what exclusive_lock holds in this process now


def held_elsewhere(path: str | Path) -> bool:
    """Whether another process (a run training in it) holds exclusive_lock's lock on `path`
    now, this process's own lock aside; asked without waiting, and False wherever it cannot
    be told."""
    if Path(path).absolute() in _HELD_HERE:
        return False
    try:
        import fcntl

        fd = os.open(path, os.O_RDONLY)
    except (ImportError, OSError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # released with the close below
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def _open_lock_target(path: Path) -> int:
    # O_NOFOLLOW: a symlink planted at a lock file's name must not make dlbox create or open
    # a file elsewhere; O_RDWR fails with EISDIR on a folder, which is then locked itself
    # (a symlink to a folder, such as a data dir on shared storage, included).
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as error:
        if error.errno not in (errno.EISDIR, errno.ELOOP):
            raise
        try:
            return os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            raise error from None


def _lock_open_error(path: Path, error: OSError) -> FileWriteError:
    if error.errno == errno.ENOENT:
        return FileWriteError(path, f"its folder {path.parent} does not exist",
                              hint="create that folder first, or pass another one")
    if error.errno == errno.ELOOP:
        return FileWriteError(path, "it is a symlink (a lock file never is)",
                              hint=f"delete {path}; dlbox makes it again")
    return write_error(path, error)


def _low_on_space(directory: Path) -> bool:
    try:
        return shutil.disk_usage(directory).free < LOW_SPACE_BYTES
    except OSError:
        return False


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every filesystem allows opening a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes_atomic(path: str | Path, data: bytes | memoryview, tag: str = "") -> None:
    with atomic_open(path, "wb", tag) as handle:
        handle.write(data)


def write_through_memory(path: str | Path, writer: Callable[[IO[bytes]], None],
                         tag: str = "") -> None:
    """`writer(buffer)` into memory, then the bytes to `path` atomically (`tag`: see
    atomic_open): for torch.save.

    Written straight to a file, torch.save's C++ writer calls the file's write(), where a
    signal's handler may run (a write cut short by the signal checks for it): SIGTERM's
    Terminated or Ctrl-C's KeyboardInterrupt raised there comes out of torch as a
    RuntimeError, which a caller that forgives a failed write (the data cache) then loses,
    and the command runs on. An in-memory buffer's write runs no handler: the signal is
    raised in Python code, as itself."""
    buffer = io.BytesIO()
    writer(buffer)
    write_bytes_atomic(path, buffer.getbuffer(), tag)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write `obj` as strict JSON: NaN and +-Infinity (a diverged loss, say), which JSON
    cannot hold and strict parsers reject, are written as null."""
    text = json.dumps(finite_json(obj), indent=2, sort_keys=False, default=str,
                      allow_nan=False)
    write_text_atomic(path, text + "\n")


def finite_json(value: Any) -> Any:
    """`value` with every NaN or infinite float (in dicts, lists and tuples, at any depth)
    replaced by None; tuples become lists. Anything else is returned as it is."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item) for item in value]
    return value


def write_with_atomic(
    path: str | Path, writer: Callable[[IO[Any]], None], mode: str = "wb"
) -> None:
    """Call `writer(handle)` on a temp file, then move it into place (for savefig; torch.save
    goes through `write_through_memory`, which says why)."""
    with atomic_open(path, mode) as handle:
        writer(handle)


def file_head(path: str | Path, size: int) -> bytes:
    """The first `size` bytes of the file `path` (fewer for a shorter file); b"" when it
    cannot be read. For telling a file's kind by its magic bytes."""
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def dataclass_to_json(value: Any) -> dict[str, Any]:
    """A dataclass as a JSON-ready dict: its top-level tuples become lists."""
    import dataclasses

    data = dataclasses.asdict(value)
    return {key: list(item) if isinstance(item, tuple) else item for key, item in data.items()}


# OSError numbers about who may read a path, not about what it holds.
ACCESS_ERRNOS = (errno.EACCES, errno.EPERM)


def nearest_folder(path: Path) -> Path:
    """`path` if it is a folder, else the nearest folder above it: the one whose permission
    decides whether `path` can be made (`path` itself when none can be told)."""
    for where in (path, *path.parents):
        try:
            if where.is_dir():
                return where
        except OSError:  # in a folder without search permission
            continue
    return path


def unsearchable_folder(path: Path) -> Path | None:
    """The folder above `path` that keeps it out of reach (one without search permission: a
    stat of what is in it fails with EACCES), named as `path` is (relative stays relative);
    None when `path` itself is what may not be read, or the folder cannot be told."""
    chain = [*reversed(path.parents), path]
    for parent, child in zip(chain[:-1], chain[1:], strict=True):
        try:
            os.stat(child)
        except PermissionError:
            return parent
        except OSError:
            return None
    return None


def _refuse_special_file(path: Path) -> None:
    """A device or FIFO where a file is to be written: the write's rename would replace it
    with a regular file (as root: `--json /dev/null` replaced the system's /dev/null)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise FileWriteError(path, "it is not a regular file (a device or a FIFO), which the "
                                   "write would replace", hint="pass a regular file's path")


def check_writable(path: str | Path, flag: str = "--json") -> None:
    """Fail before any work when `path` cannot be written (a benchmark would otherwise
    train, an image build build, for minutes and only then find out): a folder there, or its
    nearest existing parent not a writable folder. The atomic write at the end makes missing
    parents."""
    hint = f"pass {flag} a file path in a folder you can write to"
    if not str(path).strip():  # `--json "$OUT"` with OUT unset: it wrote nothing, silently
        raise UsageError(f"{flag} was given an empty path", hint=hint)
    target = expand_user(path)
    if target.is_dir():
        raise FileWriteError(target, "it is a folder", hint=hint)
    _refuse_special_file(target)
    parent = target.parent.absolute()
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise FileWriteError(target, f"{parent} is not a folder", hint=hint)
    error = folder_write_error(parent)
    if error is not None:
        # /proc and /sys answer "No such file or directory" for a folder that is there
        why = ("no file can be made there" if error.errno == errno.ENOENT
               else error.strerror)
        raise FileWriteError(target, f"{parent} is not writable ({why})",
                             hint=hint) from error


def folder_write_error(folder: Path) -> OSError | None:
    """The error that making a file in `folder` meets; None when a file can be made there.
    A real file, made and removed at once: os.access says yes to root even on /proc or a
    read-only mount."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        return error
    return None
