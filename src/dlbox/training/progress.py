"""What `train` shows while it runs: a rich progress bar per epoch on a terminal, and one
plain summary line per epoch everywhere (logs, CI, --no-progress)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# Refresh the bar at most this often: syncing a GPU for the running loss costs time.
UPDATE_SECONDS = 0.5
REDRAWS_PER_SECOND = 10  # rich's own rate for a Progress


class TrainProgress:
    """Context manager: `start_epoch`, `update` (cheap to call every step), `end_epoch`."""

    def __init__(self, enabled: bool = True, total_epochs: int = 1) -> None:
        self.total_epochs = total_epochs
        console = Console(file=sys.stderr)
        # stderr itself a terminal: rich's is_terminal is also true for any file under
        # FORCE_COLOR=1 or TTY_COMPATIBLE=1, and the bar's redraws filled a `2> log` (review)
        # and not TERM=dumb, where rich draws no bar, and each stop of it printed a blank line
        self.enabled = enabled and _is_terminal(sys.stderr) and console.is_interactive
        self.console = console
        self.progress: Progress | None = None
        self.task: Any = None
        self.last_update = 0.0
        self.paused = False  # cleared off the terminal for a line on stdout, back at a draw
        if self.enabled:
            self.progress = self._new_progress()

    def _new_progress(self) -> Progress:
        return Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"
                       "{task.fields[phase]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f}  acc {task.fields[acc]:6.2%}  "
                       "{task.fields[ips]:,.0f} img/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            refresh_per_second=REDRAWS_PER_SECOND,
            # stdout stays stdout: `dlbox train > log` on a terminal keeps its epoch lines
            # and results in the log (rich would send them to the bar's stderr).
            redirect_stdout=False,
        )

    def __enter__(self) -> TrainProgress:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()  # a paused bar is stopped already: nothing more is written

    def start_epoch(self, epoch: int, steps: int, done: int = 0) -> None:
        self.last_update = 0.0
        if self.progress is None:
            return
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task("train", total=steps, completed=done, epoch=epoch,
                                           epochs=self.total_epochs, loss=0.0, acc=0.0, ips=0.0,
                                           phase="")

    def phase(self, text: str) -> None:
        """Say on the bar what happens after the epoch's last step (testing, saving): the bar
        stood still at N/N for seconds, as if stuck."""
        if self.progress is None or self.task is None:
            return
        self.progress.update(self.task, phase=f" · {text}" if text else "")
        self._unpause()
        self.progress.refresh()

    def wants_update(self, last_step: bool = False) -> bool:
        """Whether `update` would draw now (so the caller computes its numbers only then)."""
        if self.progress is None:
            return False
        return last_step or time.monotonic() - self.last_update >= UPDATE_SECONDS

    def update(self, done: int, loss: float, accuracy: float, images_per_s: float) -> None:
        if self.progress is None:
            return
        self.last_update = time.monotonic()
        self.progress.update(self.task, completed=done, loss=loss, acc=accuracy,
                             ips=images_per_s)
        self._unpause()

    def message(self, text: str) -> None:
        """A line on stdout: printed above the bar when stdout is the bar's terminal too, else
        plainly (stdout redirected to a file or a pipe gets every epoch line, bar or not).
        Plainly with the bar cleared off the terminal first, until its next draw: `dlbox
        train | tee log` echoes the line onto the bar's terminal, where it was glued to the
        bar (review); the bar comes back at the next step, after tee has written it."""
        if self.progress is not None and _is_terminal(sys.stdout):
            self.progress.console.print(text, highlight=False, markup=False, soft_wrap=True)
            return
        if self.progress is not None and not self.paused:
            self.progress.stop()  # transient: erases the bar, the cursor at its line's start
            self.paused = True
        print(text, flush=True)

    def _unpause(self) -> None:
        """A new Progress in place of the paused one, its task carried over: the stopped
        one would first move up over the lines its bar had (a bar of several lines),
        erasing the line printed meanwhile."""
        if self.progress is None or not self.paused:
            return
        self.paused = False
        old = self.progress.tasks[0] if self.progress.tasks else None
        self.progress = self._new_progress()
        self.progress.start()
        if old is not None:
            self.task = self.progress.add_task(old.description, total=old.total,
                                               completed=int(old.completed), **old.fields)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


@contextlib.contextmanager
def spinner(quiet: bool, text: str) -> Iterator[Callable[[str], None] | None]:
    """A spinner with `text` on stderr for work of seconds that prints nothing meanwhile
    (evaluate's predictions, training's decoding of an image tree, predict's reading of the
    files), at a terminal only: logs and pipes get the result lines alone. It yields the
    function that changes its text, None where there is no spinner."""
    console = Console(stderr=True)
    if quiet or not console.is_interactive or not _is_terminal(sys.stderr):  # (TrainProgress)
        yield None
        return
    with console.status(text) as status:
        yield status.update
