"""What dlbox's benchmarks (benchmarks/*.py) share: statistics over runs, and how they print.

    summary = {key: summarize([r.get(key) for r in runs]) for key in ("accuracy", ...)}
    print("\\n".join(summary_lines(summary, len(runs), decimals=3)))
"""

from __future__ import annotations

import contextlib
import math
import statistics
from collections.abc import Iterable, Mapping
from typing import Any


def summarize(values: Iterable[float | None]) -> dict[str, float | None]:
    """mean / std (over runs) / min / max of the values that are there (None, NaN: not), and
    n, how many there were; every figure None when there is none."""
    present = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not present:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {"mean": statistics.fmean(present),
            # one run has no spread to speak of: None ("-"), not a std of 0
            "std": statistics.stdev(present) if len(present) > 1 else None,
            "min": min(present), "max": max(present), "n": len(present)}


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def num(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def summary_lines(summary: Mapping[str, Mapping[str, float | None]], runs: int,
                  decimals: int = 3, unit: str = "") -> list[str]:
    """The mean / std / min / max table of `summary`, a line per metric that has figures;
    metrics named *acc* print in percent, the others with ` unit` after them."""
    lines = [f"over {runs} run(s):       mean        std        min        max"]
    for key, s in summary.items():
        if s["mean"] is None:
            continue
        scale = 100.0 if "acc" in key else 1.0
        cells = [s[k] for k in ("mean", "std", "min", "max")]
        lines.append(f"  {key:<18}" + "".join(
            f" {num(None if v is None else v * scale, f'10.{decimals}f'):>10}" for v in cells)
            + (" %" if scale == 100.0 else unit))
    if len(lines) == 1:  # a header over nothing read as if the table were lost
        return [f"over {runs} run(s): no figures to summarise"]
    return lines


class _StdoutThatOutlivesItsReader:
    """sys.stdout that, once its reader has gone (`benchmark | head`), drops what is printed
    and lets the measurement go on to its --json file, instead of a BrokenPipeError
    traceback that threw away every run (and, for airbench, killed the script)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def _gone(self) -> None:
        import os

        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except BrokenPipeError:
            self._gone()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._gone()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def survive_a_closed_stdout() -> None:
    """A benchmark's first call: printing to a reader that quit no longer stops it."""
    import sys

    if not isinstance(sys.stdout, _StdoutThatOutlivesItsReader):
        sys.stdout = _StdoutThatOutlivesItsReader(sys.stdout)  # type: ignore[assignment]
