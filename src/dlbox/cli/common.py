"""What several commands share: refusing empty path flags, and SIGTERM as a clean exit while
a command writes its files."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Iterator
from typing import Any

from dlbox.errors import UsageError


def reject_empty_paths(args: argparse.Namespace, names: tuple[str, ...]) -> None:
    """A path flag given an empty value (`--resume "$RUN"` with RUN unset) is an error, not
    the flag left out: `--resume ""` would otherwise start a new run with the default model,
    and `--data ""` train on the default data."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and not str(value).strip():
            flag = f"--{name.replace('_', '-')}"
            raise UsageError(f"{flag} was given an empty path",
                             hint=f"pass a path after {flag} (is the shell variable you used "
                                  "set?), or leave the flag out for its default")


@contextlib.contextmanager
def sigterm_stops_cleanly() -> Iterator[None]:
    """SIGTERM (`docker stop`, a batch scheduler) as a Python exception, exit 143, while a
    command writes its files: the atomic writes then remove their temp files, where the
    default action ends the process at once and leaves `.NAME.XXXX.tmp` files behind. (The
    training loop has its own handler: it finishes the step and saves.)"""
    def stop(signum: int, frame: Any) -> None:
        print("stopped (SIGTERM)", file=sys.stderr)
        raise SystemExit(128 + signal.SIGTERM)

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
