"""A training progress bar for notebooks, drawn in the cell's output and updated in place.

`dlbox.training.loop.train` asks its `stop(epoch, step)` callback after every optimizer step
whether to stop; `NotebookProgress.update` is such a callback that draws the bar and always
answers "go on". It needs no ipywidgets: it updates one display (HTML, with a plain-text
form for consoles and saved notebooks).
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import Any

from dlbox.text import plural  # the notebook imports it from here


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressView:
    """What the bar shows at one moment (an object IPython can render as HTML or text)."""

    def __init__(self, done: int, total: int, epoch: int, epochs: int, elapsed_s: float,
                 finished: bool = False, stopped: bool = False,
                 not_started: bool = False, remaining_s: float | None = None) -> None:
        self.done, self.total = done, max(1, total)
        self.epoch, self.epochs = epoch, epochs
        self.elapsed_s = elapsed_s
        self.finished = finished
        self.stopped = stopped
        self.not_started = not_started  # failed or stopped before its first step
        self.remaining_s = remaining_s  # None: no estimate yet (see NotebookProgress)

    def _caption(self) -> str:
        fraction = self.done / self.total
        if self.finished:
            return (f"done: {plural(self.epochs, 'epoch')}, {plural(self.total, 'step')} in "
                    f"{format_seconds(self.elapsed_s)}")
        if self.not_started:  # the error below says why (review: "stopped ... at step 0")
            return "training did not start"
        if self.stopped:
            return (f"stopped in epoch {self.epoch}/{self.epochs}, at step {self.done}/"
                    f"{self.total}, after {format_seconds(self.elapsed_s)}")
        caption = (f"epoch {self.epoch}/{self.epochs}, step {self.done}/{self.total} "
                   f"({100 * fraction:.0f} %), {format_seconds(self.elapsed_s)} elapsed")
        if self.remaining_s is None:  # too few steps timed: no guess (review: "0:00 left")
            return caption
        return f"{caption}, about {format_seconds(self.remaining_s)} left"

    def __repr__(self) -> str:
        width = 30
        filled = int(width * self.done / self.total)
        return f"[{'#' * filled}{'.' * (width - filled)}] {self._caption()}"

    def _repr_html_(self) -> str:
        return (f'<div><progress value="{self.done}" max="{self.total}" '
                f'style="width: 50%; vertical-align: middle"></progress> '
                f"<span>{html.escape(self._caption())}</span></div>")


class NotebookProgress:
    """Usage: `with NotebookProgress(epochs, steps) as bar: train(config, progress=False,
    stop=bar.update)`; the bar ends as "done", or as "stopped" where training was (the stop
    button), or as "did not start" (refused, or stopped before its first step), not frozen
    with a time left (or call `bar.finish()` after the training)."""

    # The time left is guessed from the steps after the first one (the time before it, for
    # reading the data and building the network, was spread over every step: review), once
    # this many have run and for this long.
    ESTIMATE_AFTER_STEPS = 2
    ESTIMATE_AFTER_S = 1.0

    def __init__(self, epochs: int, steps_per_epoch: int, min_interval_s: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.total = epochs * steps_per_epoch
        self.min_interval_s = min_interval_s
        self.clock = clock
        self.started = clock()
        self.first: tuple[float, int] | None = None  # the time of the first update, its steps
        self.last_draw = 0.0
        self.handle: Any = None
        self.at = (1, 0)  # the last (epoch, step) training reached
        self.began = False  # whether training reached its first step
        self._show(ProgressView(0, self.total, 1, epochs, 0.0))

    def _show(self, view: ProgressView) -> None:
        try:
            from IPython.display import display
        except ImportError:  # not in IPython: print a line now and then
            print(repr(view), flush=True)
            return
        if self.handle is None:
            self.handle = display(view, display_id=True)
        else:
            self.handle.update(view)

    def update(self, epoch: int, step: int) -> bool:
        """Called by `train` after each step; redraws at most every `min_interval_s`.

        Returns False: never asks training to stop."""
        now = self.clock()
        self.at = (epoch, step)
        self.began = True
        done = self._done()
        if self.first is None:
            self.first = (now, done)
        if now - self.last_draw >= self.min_interval_s:
            self.last_draw = now
            self._show(ProgressView(done, self.total, epoch, self.epochs, now - self.started,
                                    remaining_s=self._remaining(now, done)))
        return False

    def _remaining(self, now: float, done: int) -> float | None:
        """The seconds left at the pace of the steps since the first update, or None while
        too few of them are timed."""
        assert self.first is not None
        since, first_done = self.first
        timed = done - first_done
        if timed < self.ESTIMATE_AFTER_STEPS or now - since < self.ESTIMATE_AFTER_S:
            return None
        return (now - since) / timed * (self.total - done)

    def _done(self) -> int:
        epoch, step = self.at
        return min((epoch - 1) * self.steps_per_epoch + step, self.total)

    def finish(self) -> None:
        self._show(ProgressView(self.total, self.total, self.epochs, self.epochs,
                                self.clock() - self.started, finished=True))

    def stopped(self) -> None:
        self._show(ProgressView(self._done(), self.total, self.at[0], self.epochs,
                                self.clock() - self.started, stopped=self.began,
                                not_started=not self.began))

    def __enter__(self) -> NotebookProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.finish()
        else:
            self.stopped()
