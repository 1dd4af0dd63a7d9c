"""What dlbox's benchmarks (benchmarks/*.py) share: statistics over runs, and how they print.

    summary = {key: summarize([r.get(key) for r in runs]) for key in ("accuracy", ...)}
    print("\\n".join(summary_lines(summary, len(runs), decimals=3)))
"""

from __future__ import annotations

import math
import statistics
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from dlbox.errors import FileWriteError, UsageError


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
    return lines


def check_writable(path: str | Path, flag: str = "--json") -> None:
    """Fail before any work when `path` cannot be written (the benchmark would otherwise
    train for minutes and only then find out): a folder there, or its nearest existing
    parent not a writable folder. The atomic write at the end makes missing parents."""
    hint = f"pass {flag} a file path in a folder you can write to"
    if not str(path).strip():  # `--json "$OUT"` with OUT unset: it wrote nothing, silently
        raise UsageError(f"{flag} was given an empty path", hint=hint)
    target = Path(path).expanduser()
    if target.is_dir():
        raise FileWriteError(target, "it is a folder", hint=hint)
    parent = target.parent.absolute()
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise FileWriteError(target, f"{parent} is not a folder", hint=hint)
    # A real file, made and removed at once: os.access says yes to root even on /proc or a
    # read-only mount.
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as error:
        raise FileWriteError(target, f"{parent} is not writable ({error.strerror})",
                             hint=hint) from error
