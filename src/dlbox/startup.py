"""A Ctrl-C while dlbox starts (its modules import): noted, and raised once the imports end.

Raised where Python handled it, one in a weakref callback of the import machinery (`<function
_get_module_lock.<locals>.cb>`) was printed as "Exception ignored" and lost: dlbox went on to
run the command (review). This module imports nothing of dlbox's, so `python -m dlbox` and
the console script can enter it before anything else loads.
"""

from __future__ import annotations

import signal


class CtrlCAfterwards:
    """A Ctrl-C within the block is a KeyboardInterrupt as it ends. A SIGINT ignored (a
    background job) stays so; off the main thread (whose signals are not its to handle)
    nothing changes."""

    def __enter__(self) -> None:
        self.noted = False
        self.previous: object = signal.SIG_IGN  # SIG_IGN: nothing to put back
        try:
            before = signal.getsignal(signal.SIGINT)
            if before is not signal.SIG_IGN:
                signal.signal(signal.SIGINT, self._note)
                # None: a handler not set from Python; Python's own is put back
                self.previous = signal.default_int_handler if before is None else before
        except ValueError:  # not the main thread
            pass

    def _note(self, signum: int, frame: object) -> None:
        self.noted = True

    def __exit__(self, *exc_info: object) -> None:
        if self.previous is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, self.previous)  # type: ignore[arg-type]
        if self.noted:
            raise KeyboardInterrupt
