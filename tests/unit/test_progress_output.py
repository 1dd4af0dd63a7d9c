"""What `dlbox train` draws while it runs: the live bar on stderr only where stderr is a real
terminal, and the epoch lines on stdout never glued to the bar (`dlbox train | tee log` at a
terminal, where tee echoes stdout onto the bar's terminal)."""

from __future__ import annotations

import io
import re
import sys

import pytest

from dlbox.training import progress as progress_module
from dlbox.training.progress import TrainProgress

EPOCH_LINE = "epoch 1/2  train loss 1.6476  train acc  75.57%  test acc  60.20%  525 img/s  5.4 s"


class Terminal:
    """One terminal screen that stderr (the bar) and tee's copy of stdout both write to: `\\r`,
    `\\n`, cursor up, erase line, and text; other escape codes (colours, cursor on/off) are
    ignored."""

    def __init__(self) -> None:
        self.lines: list[str] = [""]
        self.row = 0
        self.col = 0

    def write(self, text: str) -> None:
        for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]+", text):
            if token == "\r":
                self.col = 0
            elif token == "\n":  # the tty's onlcr: a new line starts at column 0
                self.row += 1
                self.col = 0
                while len(self.lines) <= self.row:
                    self.lines.append("")
            elif token.startswith("\x1b["):
                if token.endswith("A"):
                    self.row = max(0, self.row - int(token[2:-1] or 1))
                elif token == "\x1b[2K":
                    self.lines[self.row] = ""
            else:
                line = self.lines[self.row].ljust(self.col)
                self.lines[self.row] = line[:self.col] + token + line[self.col + len(token):]
                self.col += len(token)

    def shown(self) -> list[str]:
        return [line.rstrip() for line in self.lines if line.strip()]


class TtyStream(io.StringIO):
    """A stream that writes to `terminal` and says it is a terminal (stderr at a terminal)."""

    def __init__(self, terminal: Terminal, tty: bool = True) -> None:
        super().__init__()
        self.terminal = terminal
        self.tty = tty

    def write(self, text: str) -> int:
        self.terminal.write(text)
        return super().write(text)

    def isatty(self) -> bool:
        return self.tty


@pytest.fixture
def plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


def test_an_epoch_line_through_tee_sits_on_its_own_line_above_the_bar(
        plain_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    stderr = TtyStream(terminal)  # the bar's terminal
    stdout = TtyStream(terminal, tty=False)  # a pipe to tee, which echoes it to the terminal
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setattr(sys, "stdout", stdout)
    with TrainProgress(True, total_epochs=2) as bar:
        assert bar.progress is not None
        bar.start_epoch(1, 10)
        bar.update(10, 1.6, 0.75, 525.0)
        bar.phase("testing on 500 images")
        bar.message(EPOCH_LINE)
        bar.start_epoch(2, 10)
        assert bar.wants_update()
        bar.update(3, 1.0, 0.9, 500.0)
        bar.progress.refresh()
        assert any(line.startswith("epoch 2/2") for line in terminal.shown()), \
            "the bar comes back for the next epoch"
    assert stdout.getvalue() == EPOCH_LINE + "\n"  # tt.log: one plain line per epoch
    assert EPOCH_LINE not in stderr.getvalue()  # not twice on the terminal
    assert terminal.shown() == [EPOCH_LINE]  # the bar (transient) gone, the line whole


def test_an_epoch_line_on_the_terminal_itself_still_prints_above_the_bar(
        plain_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", TtyStream(terminal))
    monkeypatch.setattr(sys, "stdout", TtyStream(terminal))
    with TrainProgress(True, total_epochs=2) as bar:
        bar.start_epoch(1, 10)
        bar.update(10, 1.6, 0.75, 525.0)
        bar.message(EPOCH_LINE)
    assert terminal.shown() == [EPOCH_LINE]


@pytest.mark.parametrize("env", ["FORCE_COLOR", "TTY_COMPATIBLE"])
def test_no_live_bar_into_a_file_even_with_forced_colour(
        plain_env: None, monkeypatch: pytest.MonkeyPatch, env: str) -> None:
    """FORCE_COLOR=1 (or TTY_COMPATIBLE=1) makes rich call any file a terminal: the bar's
    redraws filled a redirected stderr (6 MB an hour)."""
    monkeypatch.setenv(env, "1")
    stderr = io.StringIO()  # `2> train.err`
    stdout = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setattr(sys, "stdout", stdout)
    with TrainProgress(True, total_epochs=1) as bar:
        assert bar.progress is None
        bar.start_epoch(1, 10)
        bar.update(10, 1.6, 0.75, 525.0)
        bar.message(EPOCH_LINE)
    assert stderr.getvalue() == ""
    assert stdout.getvalue() == EPOCH_LINE + "\n"
    with progress_module.spinner(False, "reading the data") as update:
        assert update is None
    assert stderr.getvalue() == ""


def test_no_blank_lines_on_a_dumb_terminal(plain_env: None,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by re-review: on TERM=dumb (Emacs' shell), where rich draws no live bar, each
    epoch line under `| tee` came with an empty line above it (the bar's stop prints one on
    a terminal that is not interactive)."""
    monkeypatch.setenv("TERM", "dumb")
    terminal = Terminal()
    stderr = TtyStream(terminal)
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setattr(sys, "stdout", TtyStream(terminal, tty=False))
    with TrainProgress(True, total_epochs=2) as bar:
        for epoch in (1, 2):
            bar.start_epoch(epoch, 10)
            bar.update(10, 1.6, 0.75, 525.0)
            bar.message(EPOCH_LINE)
    assert stderr.getvalue() == ""
    assert terminal.lines == [EPOCH_LINE, EPOCH_LINE, ""]


def test_an_epoch_line_through_tee_stays_whole_under_a_bar_of_two_lines(
        plain_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bar drawn on several lines (here a phase of two): the bar after the pause must not
    first move up over the lines the one before had, erasing the epoch line tee wrote."""
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", TtyStream(terminal))
    monkeypatch.setattr(sys, "stdout", TtyStream(terminal, tty=False))
    with TrainProgress(True, total_epochs=2) as bar:
        bar.start_epoch(1, 10)
        bar.update(10, 1.6, 0.75, 525.0)
        bar.phase("testing\nsaving")
        assert len(terminal.shown()) == 2, "the bar has two lines"
        bar.message(EPOCH_LINE)
        bar.start_epoch(2, 10)
        bar.update(3, 1.0, 0.9, 500.0)
        assert bar.progress is not None
        bar.progress.refresh()
        shown = terminal.shown()
        assert shown[0] == EPOCH_LINE, "the epoch line whole above the bar"
        assert shown[1].startswith("epoch 2/2"), "the bar is back"
    assert terminal.shown() == [EPOCH_LINE]


def test_no_spinner_on_a_dumb_terminal(plain_env: None,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """TERM=dumb: no live drawing, as for TrainProgress's bar."""
    monkeypatch.setenv("TERM", "dumb")
    terminal = Terminal()
    stderr = TtyStream(terminal)
    monkeypatch.setattr(sys, "stderr", stderr)
    with progress_module.spinner(False, "reading the data") as update:
        assert update is None
    assert stderr.getvalue() == ""
