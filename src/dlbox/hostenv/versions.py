"""Version strings as comparable tuples: driver versions, CUDA versions, package versions.

Pure helpers; nothing here raises on odd input: an unparsable string becomes `None`.
"""

from __future__ import annotations

import re

_NUMERIC_PREFIX = re.compile(r"^\s*v?(\d+(?:\.\d+)*)")


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """`"535.104.05"` -> `(535, 104, 5)`; `"2.9.1+cu128"` -> `(2, 9, 1)`; junk -> None."""
    if not text:
        return None
    match = _NUMERIC_PREFIX.match(str(text))
    if not match:
        return None
    return tuple(int(part) for part in match.group(1).split("."))


def version_at_least(version: str | None, minimum: str | None) -> bool | None:
    """True/False when both parse; None when either is unknown.

    Missing trailing parts count as zero, so `"580"` <= `"580.65.06"`.
    """
    left, right = parse_version(version), parse_version(minimum)
    if left is None or right is None:
        return None
    width = max(len(left), len(right))
    return left + (0,) * (width - len(left)) >= right + (0,) * (width - len(right))


def major_minor(text: str | None) -> str | None:
    """`"12.8.1"` -> `"12.8"`; `"12"` -> `"12"`; junk -> None."""
    parts = parse_version(text)
    if parts is None:
        return None
    return ".".join(str(part) for part in parts[:2])


def same_release(version: str | None, prefix: str | None) -> bool:
    """True when `version` starts with the parts of `prefix`: `"12.8.1"` is in `"12.8"`."""
    left, right = parse_version(version), parse_version(prefix)
    if left is None or right is None:
        return False
    return left[: len(right)] == right


def cuda_from_int(value: int | None) -> str | None:
    """NVML / cudaDriverGetVersion integers: 12020 -> "12.2", 13000 -> "13.0"."""
    if value is None or value <= 0:
        return None
    return f"{value // 1000}.{(value % 1000) // 10}"


def compute_capability_tuple(text: str | None) -> tuple[int, int] | None:
    """`"8.6"`, `"sm_86"`, `"86"`, `"compute_90"`, `"sm_90a"` -> (major, minor); junk -> None."""
    if not text:
        return None
    value = str(text).strip().lower()
    for prefix in ("sm_", "compute_"):
        if value.startswith(prefix):
            value = value[len(prefix) :]
    value = re.sub(r"(\+ptx|[af])$", "", value)
    if "." in value:
        head, _, tail = value.partition(".")
        if head.isdigit() and tail.isdigit() and len(tail) == 1:
            return int(head), int(tail)
        return None
    if value.isdigit() and len(value) in (2, 3):
        return int(value[:-1]), int(value[-1])
    return None


def format_cc(cc: tuple[int, int]) -> str:
    return f"{cc[0]}.{cc[1]}"
