"""Small text helpers shared by the CLI, training, the notebook and the image build."""

from __future__ import annotations

import re

# ANSI escape sequences (colours, cursor moves: CSI "ESC [ ... letter", OSC "ESC ] ... BEL"
# or "ESC \"), then any other control character but tab.
_TERMINAL_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
                               r"|\x1b[@-Z\\-_]|[\x00-\x08\x0b-\x1f\x7f]")


def plural(count: int, word: str, many: str | None = None) -> str:
    """"1 epoch", "2 epochs", "0 epochs" (`many`: an irregular plural)."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def plain(line: str) -> str:
    """`line` without terminal colours and control characters: a build step's output
    (apt's and pip's colours) shown in dlbox's own progress, or quoted in an error."""
    return _TERMINAL_CONTROL.sub("", line)


def reason_and_fix(reason: str, fix: str | None) -> str:
    """A failure on one line, its fix after the reason: "reason; fix" (the reason alone
    without one), as `dlbox predict` prints each file it could not read."""
    return f"{reason}; {fix}" if fix else reason


def shell_quote(path: object) -> str:
    """A path as it goes into a command a hint gives, quoted for a POSIX shell when it needs
    it (a space, a quote), so that the command pastes."""
    import shlex

    return shlex.quote(str(path))


def make_writable(folder: object) -> str:
    """The fix for a folder one may not write in, as a hint says it."""
    return f"make {folder} writable for you (`chmod u+rwx {shell_quote(folder)}`)"

