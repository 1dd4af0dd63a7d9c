"""What several commands share: refusing empty path flags, and SIGTERM (SIGHUP) as a clean
exit."""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dlbox.errors import UsageError
from dlbox.fileio import expand_user
from dlbox.processes import Terminated, detach_from_terminal, handling, hangup

EXIT_SIGTERM = 128 + signal.SIGTERM  # 143, what a shell reports for a process SIGTERM ended


def reject_empty_paths(args: argparse.Namespace, names: tuple[str, ...],
                       kind: str = "path", required: bool = False) -> None:
    """A path flag given an empty value (`--resume "$RUN"` with RUN unset) is an error, not
    the flag left out: `--resume ""` would otherwise start a new run with the default model,
    and `--data ""` train on (or fetch into) the default data dir. Every command checks its
    path flags here, so the message is the same everywhere; `kind` "value" for another
    flag (`--device ""` read as auto); `required` for flags that have no default."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and not str(value).strip():
            flag = f"--{name.replace('_', '-')}"
            raise UsageError(f"{flag} was given an empty {kind}",
                             hint=f"pass a {kind} after {flag} (is the shell variable you used "
                                  "set?)" + ("" if required else
                                             ", or leave the flag out"))


def reject_empty_positional(value: object, metavar: str, what: str, otherwise: str = "") -> None:
    """A path argument given as "" (`dlbox evaluate "$RUN"` with RUN unset) is an error: as a
    Path it is ".", so run from inside a run dir `evaluate` would silently use that one, and
    `image build` the current folder. `what` says what to pass instead, `otherwise` the
    other way out."""
    if value is not None and not str(value).strip():
        raise UsageError(f"{metavar} was given as an empty path",
                         hint=f"pass {what} (is the shell variable you used set?){otherwise}")


def reject_empty_run_dir(args: argparse.Namespace) -> None:
    """RUN_DIR of `evaluate` and `predict` (reject_empty_positional)."""
    reject_empty_positional(getattr(args, "run_dir", None), "RUN_DIR",
                            "the directory `dlbox train` wrote")


def path_flag(value: str) -> Path | str:
    """argparse `type` for a path flag: a Path, `~` expanded (the shell leaves the one of
    `--output=~/x` as it is: review found a folder named `~` made), except that an empty
    value stays "" for reject_empty_paths to refuse (`Path("")` is ".", silently)."""
    return expand_user(value) if value.strip() else value


@contextlib.contextmanager
def sigterm_stops_cleanly() -> Iterator[None]:
    """SIGTERM (`docker stop`, a batch scheduler) and SIGHUP (a closed terminal) raise
    Terminated instead of ending the process at once: the default action skips every cleanup
    and leaves `.NAME.XXXX.tmp` files, half-extracted folders and an image build's context
    behind. Handlers installed inside (the training loop's "finish the step and save",
    `notebook` and `image run` stopping what they started) replace this one while they run
    and put it back when done.

    A signal repeated while the first one unwinds is ignored, so it cannot cut the cleanup
    short (a scheduler that means it sends SIGKILL)."""
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        if hangup(signum):
            detach_from_terminal()  # its messages would fail on the closed terminal
        if stopping:
            return
        stopping = True
        raise Terminated(signum)

    with handling(stop, "SIGTERM", "SIGHUP"):  # SIGHUP: an SSH session dropped
        yield
