"""Check the shape of a host recording (`dlbox doctor --record DIR`) before replaying it.

A recording is a folder: `host.json` (dlbox's own index: system facts, nvidia-smi argv and
exit codes, framework files), `nvml.json` (dlbox's record of the NVML values) and
`<framework>-probe.json` (the JSON line dlbox's import probe printed), next to the tools' own
outputs as plain text (nvidia-smi, docker info, error texts). dlbox writes the JSON files, so
a value of the wrong type (a list for an object, "4" for 4, null for a name) means the file was
edited or damaged: it is refused here with a `RecordingError` naming the file and the field,
instead of crashing somewhere in the rules. The tools' text outputs are not checked here:
whatever a tool printed is replayed as it was, and the parsers report what they cannot read
as a probe failure, exactly as on a live host.

`host.json` needs `system` and `frameworks` (`--record` always writes them). Unknown top-level
keys, and unknown entries in `commands`, are ignored (a newer dlbox may write more); unknown
keys in `system` are refused, as before: they name facts this dlbox has no field for.
"""

from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn

from dlbox.errors import first_line
from dlbox.hostenv.facts import FRAMEWORKS, SystemFacts

HOST_JSON = "host.json"
REQUIRED_KEYS = ("system", "frameworks")  # --record always writes them; the rest may be missing
RECORDED_COMMANDS = ("smi_query", "smi_q")  # the nvidia-smi calls whose argv/exit are kept

_SYSTEM_TEXT = ("os", "kernel", "machine", "python", "cpu_model", "disk_path")
_SYSTEM_COUNTS = ("cpu_count", "ram_total_mib", "disk_free_mib", "shm_total_mib")
_FRAMEWORK_TEXT = ("dist_version", "build_cuda", "build_cudnn", "deep_error")


class RecordingError(ValueError):
    """A recording file is unreadable or has the wrong shape; the message names the file."""

    def __init__(self, path: Path | str, problem: str, denied: bool = False) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem
        self.denied = denied  # the system refused the read: a permission, not the content


def read_text(path: Path) -> str:
    """A recording file's text; RecordingError when it cannot be read as UTF-8 text."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise RecordingError(path, f"not UTF-8 text (byte {error.start})") from error
    except IsADirectoryError as error:
        raise RecordingError(path, "is a folder, not a file") from error
    except OSError as error:
        raise RecordingError(path, f"cannot read it: {error.strerror or error}",
                             denied=isinstance(error, PermissionError)) from error


def read_json(path: Path) -> Any:
    """A recording file's JSON value; RecordingError when it is not JSON."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise RecordingError(path, f"not valid JSON ({error.msg} at line {error.lineno} "
                                   f"column {error.colno})") from error
    except RecursionError as error:
        raise RecordingError(path, "not valid JSON (nested too deeply)") from error
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        reason = first_line(error).split(";")[0][:120]
        raise RecordingError(path, f"not valid JSON ({reason})") from error


# ------------------------------------------------------------------------------------------
# type words for messages


def kind(value: Any) -> str:
    """How a JSON value is called in a message: "a list", "a string ("4")", "null"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:20] + "..."
        return f"a string ({json.dumps(shown)})"
    if isinstance(value, (int, float)):
        shown = repr(value) if abs(value) < 1e20 or isinstance(value, float) else "huge"
        return f"a number ({shown})"
    return type(value).__name__


class _Checker:
    """Raises RecordingError(path, "'where' must be ..., got ...") for the first bad value."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, expected: str, value: Any) -> NoReturn:
        raise RecordingError(self.path, f"'{where}' must be {expected}, got {kind(value)}")

    def obj(self, value: Any, where: str, expected: str = "an object") -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(where, expected, value)
        return value

    def text(self, value: Any, where: str, nullable: bool = True) -> None:
        if isinstance(value, str) or (nullable and value is None):
            return
        self.fail(where, "a string or null" if nullable else "a string", value)

    def count(self, value: Any, where: str, nullable: bool = True) -> None:
        """A whole number >= 0 (MiB, CPUs, bytes)."""
        if nullable and value is None:
            return
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            self.fail(where, "a whole number >= 0" + (" or null" if nullable else ""), value)

    def integer(self, value: Any, where: str) -> None:
        if value is None:
            return
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(where, "a whole number or null", value)

    def flag(self, value: Any, where: str) -> None:
        if not isinstance(value, bool):
            self.fail(where, "true or false", value)

    def text_list(self, value: Any, where: str) -> None:
        if value is None:
            return
        if not isinstance(value, list):
            self.fail(where, "a list of strings", value)
        for index, item in enumerate(value):
            self.text(item, f"{where}[{index}]", nullable=False)


# ------------------------------------------------------------------------------------------
# the files dlbox writes


def check_host_json(meta: Any, path: Path) -> None:
    """Refuse a host.json whose values have the wrong type (see docs/doctor.md, Recordings)."""
    check = _Checker(path)
    if not isinstance(meta, dict):
        raise RecordingError(path, f"must hold a JSON object (system, commands, frameworks, "
                                   f"...), got {kind(meta)}")
    missing = [key for key in REQUIRED_KEYS if key not in meta]
    if missing:
        raise RecordingError(path, f"has no {' and no '.join(repr(k) for k in missing)}: not "
                                   f"a host recording as `dlbox doctor --record` writes it")
    if "system" in meta:
        system = check.obj(meta["system"], "system", "an object of system facts")
        known = {f.name for f in fields(SystemFacts)}
        unknown = sorted(set(system) - known)
        if unknown:
            raise RecordingError(path, f"'system' has unknown key(s) {', '.join(unknown)} "
                                       f"(known: {', '.join(sorted(known))})")
        for key in _SYSTEM_TEXT:
            check.text(system.get(key), f"system.{key}")
        for key in _SYSTEM_COUNTS:
            check.count(system.get(key), f"system.{key}")
        if "in_container" in system:
            check.flag(system["in_container"], "system.in_container")
    check.text(meta.get("system_error"), "system_error")
    check.text(meta.get("smi_path"), "smi_path")
    check.text(meta.get("nvidia_hook_path"), "nvidia_hook_path")
    check.text_list(meta.get("cdi_nvidia_specs"), "cdi_nvidia_specs")
    seconds = meta.get("seconds")
    if seconds is not None and (not isinstance(seconds, (int, float)) or isinstance(seconds, bool)
                                or not math.isfinite(seconds) or seconds < 0):
        check.fail("seconds", "a number of seconds >= 0 or null", seconds)
    if "commands" in meta:
        commands = check.obj(meta["commands"], "commands",
                             "an object of command -> output (e.g. {\"smi_q\": {...}})")
        for key in RECORDED_COMMANDS:
            info = commands.get(key)
            if info is None:
                continue
            where = f"commands.{key}"
            check.obj(info, where, "an object with argv, returncode and error")
            check.text_list(info.get("argv"), f"{where}.argv")
            check.integer(info.get("returncode"), f"{where}.returncode")
            check.text(info.get("error"), f"{where}.error")
    if "frameworks" in meta:
        entries = meta["frameworks"]
        if not isinstance(entries, list):
            check.fail("frameworks", "a list of framework objects", entries)
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            where = f"frameworks[{index}]"
            check.obj(entry, where, "an object with name, installed, dist_version, ...")
            name = entry.get("name")
            if name not in FRAMEWORKS:
                check.fail(f"{where}.name", " or ".join(json.dumps(n) for n in FRAMEWORKS),
                           name)
            if name in seen:
                raise RecordingError(path, f"'{where}.name' repeats \"{name}\" (each "
                                           f"framework is listed once)")
            seen.add(name)
            if "installed" in entry:
                check.flag(entry["installed"], f"{where}.installed")
            for key in _FRAMEWORK_TEXT:
                check.text(entry.get(key), f"{where}.{key}")
            packages = entry.get("packages")
            if packages is not None:
                check.obj(packages, f"{where}.packages", "an object of package -> version")
                for dist, version in packages.items():
                    check.text(version, f"{where}.packages.{dist}", nullable=False)


def check_nvml_record(record: Any, path: Path) -> None:
    """Refuse an nvml.json that is not the record `collect_raw` writes."""
    check = _Checker(path)
    if not isinstance(record, dict):
        raise RecordingError(path, f"must hold a JSON object (driver_version, "
                                   f"cuda_driver_version, gpus), got {kind(record)}")
    check.text(record.get("driver_version"), "driver_version", nullable=False)
    check.count(record.get("cuda_driver_version"), "cuda_driver_version")
    gpus = record.get("gpus")
    if gpus is None:
        return
    if not isinstance(gpus, list):
        check.fail("gpus", "a list of GPU objects", gpus)
    for index, gpu in enumerate(gpus):
        where = f"gpus[{index}]"
        check.obj(gpu, where, "an object with name, compute_capability, memory_total_bytes")
        check.text(gpu.get("name"), f"{where}.name", nullable=False)
        cc = gpu.get("compute_capability")
        if cc is not None and not (
            isinstance(cc, list) and len(cc) == 2
            and all(isinstance(part, int) and not isinstance(part, bool) and part >= 0
                    for part in cc)
        ):
            check.fail(f"{where}.compute_capability", "[major, minor] (e.g. [8, 6]) or null", cc)
        check.count(gpu.get("memory_total_bytes"), f"{where}.memory_total_bytes")
        check.text(gpu.get("uuid"), f"{where}.uuid")
        check.text(gpu.get("pci_bus_id"), f"{where}.pci_bus_id")


def check_probe_output(text: str, path: Path) -> None:
    """Refuse a `<framework>-probe.json` whose JSON object has values of the wrong type.

    Output that is not JSON at all is left alone: replaying it gives the same
    "unreadable ... probe output" finding that the live probe gave.
    """
    lines = text.strip().splitlines()
    if not lines:
        return
    try:
        data = json.loads(lines[-1])
    except (ValueError, RecursionError):
        return
    check = _Checker(path)
    if not isinstance(data, dict):
        raise RecordingError(path, f"must hold the probe's JSON object (version, cuda, "
                                   f"gpu_available, ...), got {kind(data)}")
    for key in ("version", "cuda", "error"):
        check.text(data.get(key), key)
    cudnn = data.get("cudnn")
    if cudnn is not None and not isinstance(cudnn, str) and (
        isinstance(cudnn, bool) or not isinstance(cudnn, int) or cudnn < 0
    ):
        check.fail("cudnn", "a version (string or whole number) or null", cudnn)
    gpu_available = data.get("gpu_available")
    if gpu_available is not None:
        check.flag(gpu_available, "gpu_available")
    check.count(data.get("visible_gpus"), "visible_gpus")
    check.text_list(data.get("arch_list"), "arch_list")
