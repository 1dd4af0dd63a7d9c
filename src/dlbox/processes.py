"""Which process left a thing behind (a container, a temp folder): an owner id of host, pid
and process start time, and whether that process has ended.

The start time tells a reused pid apart; the host keeps a machine from judging another's
processes (a shared Docker engine, a data dir on a network drive): those are never gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any


class Terminated(SystemExit):
    """Raised in the main thread when SIGTERM (or SIGHUP) arrives. A SystemExit, so `except
    Exception` lets it through while `finally` blocks and the atomic writes' cleanup still
    run; the CLI catches it to print `stopped (SIGTERM)` (printing inside the handler could
    interrupt a print already in progress on stderr). Its code is 128 + the signal."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(128 + signum)
        self.signal_name = signal.Signals(signum).name


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name: [state, ppid, ...]; [] if unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _process_start(pid: int) -> str:
    """The kernel's start time of process `pid` (tells a reused pid apart); "" if unknown."""
    fields = _stat_fields(pid)
    return fields[19] if len(fields) > 19 else ""


def _pid_namespace(pid: int | str = "self") -> str:
    """Where a pid means something: the inode of the process's pid namespace, and this
    machine's id ("4026531836-3d1219c7c4c5404a"); "" if unknown. Two containers sharing the
    host's name (`--network host`) still have their own pids, and every machine's first pid
    namespace has the same inode (cloned VMs sharing a data dir over NFS may share a name
    too): a pid missing here may be alive there."""
    try:
        link = os.readlink(f"/proc/{pid}/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return ""
    namespace = "".join(ch for ch in link if ch.isdigit())
    return f"{namespace}-{_machine_id()}" if _machine_id() else namespace


def _machine_id() -> str:
    """The first 16 hex digits of /etc/machine-id (systemd's, or D-Bus's); "" where none."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            text = Path(path).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if text and all(ch in "0123456789abcdef" for ch in text):
            return text[:16]
    return ""


def owner_id(pid: int | None = None, *, namespace: bool = False) -> str:
    """"HOST:PID:START" of process `pid` (this one by default), with ":PIDNS" when
    `namespace`. Container labels and token folders keep the three parts: an older dlbox
    reads everything after the pid as the start time, so a fourth part would make it judge a
    live owner gone (and remove its notebook container). Names only this dlbox reads (a
    fetch's temp folder) carry the namespace."""
    pid = os.getpid() if pid is None else pid
    owner = f"{socket.gethostname()}:{pid}:{_process_start(pid)}"
    return f"{owner}:{_pid_namespace(pid)}" if namespace else owner


def owner_gone(owner: str) -> bool:
    """Whether the process an owner id names has ended. One of another machine (a shared
    engine, a shared folder) or of another pid namespace, or an id that cannot be read, is
    never judged gone. (Ids written before the namespace was part of them have three parts.)"""
    host, pid_text, start, namespace = (owner.split(":", 3) + ["", "", ""])[:4]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    if namespace and namespace != _pid_namespace():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    fields = _stat_fields(pid)
    if fields[:1] == ["Z"]:  # killed, not yet reaped by its parent: ended all the same
        return True
    return bool(start) and _process_start(pid) not in ("", start)


def stop_signals(*names: str) -> tuple[int, ...]:
    """The signals of `names` ("SIGTERM", "SIGHUP", ...) to install a stop handler for: those
    this platform has, less SIGHUP when it is ignored (`nohup dlbox ...`: a closed terminal
    must not stop what the user meant to outlive it) and SIGINT when it is ignored (`dlbox
    ... &` in a script: the shell keeps Ctrl-C for the job in the foreground). Asked when
    the handler is installed."""
    wanted = []
    for name in names:
        number = getattr(signal, name, None)
        if number is None:
            continue
        if name in ("SIGHUP", "SIGINT") and signal.getsignal(number) is signal.SIG_IGN:
            continue
        wanted.append(number)
    return tuple(wanted)


def hangup(signum: int) -> bool:
    """Whether `signum` is SIGHUP: the terminal closed. It comes twice when it does (the
    shell passes it on, and the kernel sends its own), so it never counts as a signal "asked
    twice", which stops at once."""
    return signum == getattr(signal, "SIGHUP", None)


def detach_from_terminal() -> None:
    """After SIGHUP: stdout and stderr that were the terminal go to /dev/null, as under nohup,
    since every write to a closed terminal fails (EIO), and a progress bar's next update
    would otherwise end the work before it saves."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        for fd in (1, 2):
            try:
                if stat.S_ISCHR(os.fstat(fd).st_mode):  # a terminal (or /dev/null already)
                    os.dup2(devnull, fd)
            except OSError:
                continue
    finally:
        os.close(devnull)


@contextlib.contextmanager
def handling(handler: Callable[[int, FrameType | None], Any], *names: str) -> Iterator[None]:
    """Install `handler` for the signals of `names` (as `stop_signals` picks them) while the
    block runs, and put the previous handlers back after it. Outside the main thread, where
    Python allows no handler, the signals are left alone (an embedding program's thread)."""
    previous: dict[int, Any] = {}
    try:
        for wanted in stop_signals(*names):
            previous[wanted] = signal.signal(wanted, handler)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield
    finally:
        for installed, old in previous.items():
            signal.signal(installed, old)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP back while the block runs (a few renames that must
    all happen, or none), and raise them after it, to the handlers that were there: a
    report cut between two renames was half new, half old (review). Outside the main
    thread nothing is held."""
    caught: list[int] = []
    with handling(lambda signum, frame: caught.append(signum), "SIGINT", "SIGTERM", "SIGHUP"):
        yield
    for signum in caught:
        signal.raise_signal(signum)


OWNER_FILENAME = "owner"  # in a folder a process works in: its owner_id


def remove_abandoned_folders(parent: Path, pattern: str,
                             finish: Callable[[Path], object] | None = None) -> list[Path]:
    """Remove the folders in `parent` matching `pattern` that processes killed before they
    could remove their own left (a notebook launch's, an evaluation's staging); the folders
    removed. Only folders of this user whose owner is gone, as their `owner` file names it,
    or else their name (PREFIX + OWNER + "." + mkdtemp's random characters, for one killed
    before it wrote that file): a live one's folder, or any other that matches the pattern,
    is left alone. `finish` is called on each such folder before it goes (what its owner
    left half done, done)."""
    removed = []
    try:
        candidates = list(parent.glob(pattern))
    except OSError:
        return []
    prefix = pattern.split("*", 1)[0]
    for folder in candidates:
        try:
            if (folder.is_symlink() or not folder.is_dir()
                    or (hasattr(os, "geteuid") and folder.stat().st_uid != os.geteuid())):
                continue
            owner = (folder / OWNER_FILENAME).read_text(encoding="utf-8").strip()
        except FileNotFoundError:  # killed before it wrote that file
            owner = ""
        except (OSError, UnicodeDecodeError):
            continue
        owner = owner or owner_in_name(folder.name, prefix) or ""
        if owner and owner_gone(owner):
            if finish is not None:
                finish(folder)
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def owner_in_name(name: str, prefix: str) -> str | None:
    """The owner id in the name of a temp folder or file made with PREFIX + OWNER + "." before
    its random characters: mkdtemp(prefix=...)'s folders, and the files of
    fileio.atomic_open(tag=OWNER) ("PREFIX" OWNER "." random characters, perhaps ".tmp"
    after them); None for a name without one (not starting with `prefix`, or an older
    dlbox's, from before owners were named)."""
    if not name.startswith(prefix):
        return None
    owner, dot, _ = name[len(prefix):].removesuffix(".tmp").rpartition(".")
    return owner if dot and owner.count(":") >= 2 else None


# A temp file or folder older than this was left by a writer that was killed (SIGKILL, power
# loss: no chance to clean up), whoever its owner: a writer still at work refreshes its mtime
# with every file or chunk it writes, each within seconds.
STALE_AFTER_S = 3600


def left_by_dead_writer(path: Path, prefix: str, max_age_s: float = STALE_AFTER_S) -> bool:
    """Whether a temp folder or file (named as owner_in_name reads, with `prefix`) was left
    by a killed writer, to delete: the owner its name gives ran on this machine and has
    ended, or, whoever its owner (another machine's, in a shared folder; none named; even
    one still running here), it is over `max_age_s` old. OSError if it cannot be looked at
    (its mtime is not read when the owner has ended)."""
    owner = owner_in_name(path.name, prefix)
    return (owner is not None and owner_gone(owner)) \
        or time.time() - path.stat().st_mtime > max_age_s
