"""Parsers for what the host tools print: nvidia-smi (CSV query and `-q`), NVML values,
`docker info` JSON, torch/version.py, TensorFlow build_info, and the framework probe script.

Every parser is pure and total: whatever text comes in, it returns a result, and a result
that could not be read carries `error` ("unparsable nvidia-smi output: ..."), never raises.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import re
from dataclasses import dataclass
from itertools import islice
from typing import Any

from dlbox.hostenv.facts import DockerFacts, FrameworkFacts, GpuFacts, NvidiaFacts
from dlbox.hostenv.versions import (
    compute_capability_tuple,
    cuda_from_int,
    format_cc,
    parse_version,
)

# Field list the probe queries; the order the CSV parser expects.
SMI_QUERY_FIELDS = ("name", "compute_cap", "memory.total", "driver_version")
SMI_QUERY_FIELDS_OLD = ("name", "memory.total", "driver_version")  # drivers before compute_cap

_SMI_FAILURE_MARKERS = (
    "failed to initialize nvml",
    "nvidia-smi has failed",
    "couldn't communicate with the nvidia driver",
    "no devices were found",
    "unable to determine the device handle",
    "is not a valid field to query",
    "unknown error",
    "gpu is lost",
    "insufficient permissions",
    "couldn't find libnvidia-ml.so",  # nvidia-smi without the driver's NVML library
)
MAX_GPUS = 256  # GPU lines read of nvidia-smi's output: more is not a host's list of GPUs

_NA = {"", "[n/a]", "n/a", "[not supported]", "not supported", "[unknown error]",
       "[insufficient permissions]", "[gpu is lost]",
       "[requested functionality has been deprecated]"}


@dataclass(frozen=True)
class SmiResult:
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    gpus: tuple[GpuFacts, ...] = ()
    error: str | None = None


def _clean(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return None if text.lower() in _NA else text


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def smi_failure(text: str) -> str | None:
    """The failure line of a failing nvidia-smi ("Failed to initialize NVML: ..."), or None.

    One field that nvidia-smi could not read does not count: "[Unknown Error]" as a value in
    a CSV row or in a `-q` line ("Power Draw : [Unknown Error]"; common in containers and
    under MIG). "[GPU is lost]" or "[Insufficient Permissions]" still do, wherever they
    stand: the GPU or the caller's rights are the problem then."""
    for line in text.splitlines():
        lowered = line.strip().lower()
        if not any(marker in lowered for marker in _SMI_FAILURE_MARKERS):
            continue
        without_unread = lowered.replace("[unknown error]", "")
        if without_unread != lowered and (":" in lowered or "," in lowered) and not any(
                marker in without_unread for marker in _SMI_FAILURE_MARKERS):
            continue  # only unreadable fields
        return line.strip()
    return None


def _memory_mib(value: str | None) -> int | None:
    if not value:
        return None
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*(MiB|GiB|KiB|B)?\s*$", value, re.IGNORECASE)
    if not match:
        return None
    number = float(match.group(1))
    unit = (match.group(2) or "MiB").lower()
    scale = {"b": 1 / (1024 * 1024), "kib": 1 / 1024, "mib": 1, "gib": 1024}[unit]
    return int(round(number * scale))


def _driver(value: str | None) -> str | None:
    value = _clean(value)
    if value and re.fullmatch(r"\d+(\.\d+){1,3}", value):
        return value
    return None


def _cc(value: str | None) -> str | None:
    cc = compute_capability_tuple(_clean(value))
    return format_cc(cc) if cc else None


def parse_nvidia_smi_csv(text: str, fields: tuple[str, ...] = SMI_QUERY_FIELDS) -> SmiResult:
    """Parse `nvidia-smi --query-gpu=<fields> --format=csv,noheader` output (one GPU a line)."""
    try:
        return _parse_nvidia_smi_csv(text, fields)
    except Exception as error:  # noqa: BLE001 - a parser must never raise
        return SmiResult(error=f"unparsable nvidia-smi output: {type(error).__name__}: {error}")


INFOROM_EXIT = 14  # nvidia-smi's exit code for "infoROM is corrupted" (its man page)
SMI_WARNING = "nvidia-smi warning"  # the probe name its warnings are kept under


def smi_warnings(text: str) -> list[str]:
    """nvidia-smi's "WARNING: ..." lines, without the prefix ("infoROM is corrupted at gpu
    0000:B3:00.0": printed before the answer, which still follows, with exit code 14)."""
    return [line.strip()[len("WARNING:"):].strip() for line in text.splitlines()
            if line.strip().upper().startswith("WARNING:")]


def _parse_nvidia_smi_csv(text: str, fields: tuple[str, ...]) -> SmiResult:
    if not isinstance(text, str):
        return SmiResult(error="unparsable nvidia-smi output: not text")
    failure = smi_failure(text)
    if failure:
        return SmiResult(error=failure)
    text = "\n".join(line for line in text.splitlines()
                     if not line.strip().upper().startswith("WARNING:"))
    rows = list(islice((row for row in csv.reader(io.StringIO(text), skipinitialspace=True)
                        if row), MAX_GPUS + 1))
    if len(rows) > MAX_GPUS:
        return SmiResult(error=f"unparsable nvidia-smi output: more than {MAX_GPUS} GPU lines")
    if not rows:
        return SmiResult(error="nvidia-smi printed no GPU")
    gpus: list[GpuFacts] = []
    drivers: set[str] = set()
    for index, row in enumerate(rows):
        if len(row) != len(fields):
            return SmiResult(error=f"unparsable nvidia-smi output: line {index + 1} has "
                                   f"{len(row)} fields, expected {len(fields)}: "
                                   f"{','.join(row)[:120]!r}")
        values = dict(zip(fields, (cell.strip() for cell in row), strict=True))
        name = _clean(values.get("name"))
        driver = _driver(values.get("driver_version"))
        if not name or driver is None:
            return SmiResult(error=f"unparsable nvidia-smi output: line {index + 1}: "
                                   f"{','.join(row)[:120]!r}")
        drivers.add(driver)
        cc = _cc(values.get("compute_cap")) if "compute_cap" in values else None
        gpus.append(GpuFacts(
            index=index,
            name=name,
            compute_capability=cc or gpu_name_compute_capability(name),
            memory_total_mib=_memory_mib(_clean(values.get("memory.total"))),
        ))
    if len(drivers) != 1:
        return SmiResult(error=f"nvidia-smi reported several driver versions: {sorted(drivers)}")
    return SmiResult(driver_version=drivers.pop(), gpus=tuple(gpus))


_Q_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[^:]+?)\s*:\s*(?P<value>.*?)\s*$")


def parse_nvidia_smi_q(text: str) -> SmiResult:
    """Parse the text of `nvidia-smi -q`: driver, CUDA version, and per GPU name + memory."""
    try:
        return _parse_nvidia_smi_q(text)
    except Exception as error:  # noqa: BLE001
        return SmiResult(error=f"unparsable nvidia-smi -q output: {type(error).__name__}: {error}")


def _parse_nvidia_smi_q(text: str) -> SmiResult:
    if not isinstance(text, str):
        return SmiResult(error="unparsable nvidia-smi -q output: not text")
    failure = smi_failure(text)
    if failure:
        return SmiResult(error=failure)
    driver = cuda = None
    gpus: list[dict[str, Any]] = []
    section: list[str] = []  # stack of open section names (e.g. "FB Memory Usage")
    for raw in text.splitlines():
        if not raw.strip() or raw.strip().startswith("="):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        stripped = raw.strip()
        header = re.match(r"^GPU\s+([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f])$",
                          stripped)
        if header and indent == 0:
            if len(gpus) == MAX_GPUS:
                return SmiResult(error=f"unparsable nvidia-smi -q output: more than {MAX_GPUS} "
                                       "GPUs")
            gpus.append({"pci_bus_id": header.group(1)})
            section = []
            continue
        match = _Q_LINE.match(raw)
        if not match:
            # a section title ("    FB Memory Usage") opens a nested block
            depth = max(0, (indent - 4) // 4) if gpus else 0
            section = section[:depth] + [stripped]
            continue
        key, value = match.group("key").strip(), match.group("value").strip()
        depth = max(0, (indent - 4) // 4) if gpus else 0
        section = section[:depth]
        if not gpus:
            if key == "Driver Version":
                driver = _driver(value)
            elif key == "CUDA Version":
                cuda = _clean(value)
            continue
        gpu = gpus[-1]
        if depth == 0 and key == "Product Name":
            gpu["name"] = _clean(value)
        elif depth == 0 and key == "GPU UUID":
            gpu["uuid"] = _clean(value)
        elif depth == 0 and key in ("Compute Capability", "CUDA Compute Capability"):
            gpu["cc"] = _cc(value)
        elif section == ["FB Memory Usage"] and key == "Total":
            gpu["memory"] = _memory_mib(_clean(value))
    if driver is None:
        return SmiResult(error="unparsable nvidia-smi -q output: no 'Driver Version' line")
    if not gpus:
        return SmiResult(error="nvidia-smi -q listed no GPU", driver_version=driver,
                         cuda_driver_version=cuda)
    facts = []
    for index, gpu in enumerate(gpus):
        name = gpu.get("name")
        if not name:
            return SmiResult(error=f"unparsable nvidia-smi -q output: GPU {index} has no name")
        facts.append(GpuFacts(
            index=index,
            name=name,
            compute_capability=gpu.get("cc") or gpu_name_compute_capability(name),
            memory_total_mib=gpu.get("memory"),
            uuid=gpu.get("uuid"),
            pci_bus_id=gpu.get("pci_bus_id"),
        ))
    cuda_ok = cuda if parse_version(cuda) else None
    return SmiResult(driver_version=driver, cuda_driver_version=cuda_ok, gpus=tuple(facts))


# -------------------------------------------------------------------------------------------
# NVML values (the probe reads them with pynvml into this plain record; fixtures store it)


def nvidia_from_nvml_record(record: Any) -> NvidiaFacts:
    """NvidiaFacts from `{"driver_version", "cuda_driver_version" (int), "gpus": [...]}`.

    Each GPU: `{"name", "compute_capability": [major, minor], "memory_total_bytes", "uuid",
    "pci_bus_id"}`. A record that does not look like that yields an `error`.
    """
    try:
        driver = _driver(record.get("driver_version"))
        if driver is None:
            return NvidiaFacts(source="nvml", error="NVML gave no driver version")
        cuda_int = record.get("cuda_driver_version")
        cuda = cuda_from_int(int(cuda_int)) if cuda_int is not None else None
        gpus = []
        for index, gpu in enumerate(record.get("gpus") or ()):
            cc_raw = gpu.get("compute_capability")
            cc = None
            if isinstance(cc_raw, (list, tuple)) and len(cc_raw) == 2:
                cc = f"{int(cc_raw[0])}.{int(cc_raw[1])}"
            elif cc_raw is not None:
                cc = _cc(str(cc_raw))
            memory = gpu.get("memory_total_bytes")
            gpus.append(GpuFacts(
                index=index,
                name=str(gpu.get("name") or f"GPU {index}"),
                compute_capability=cc,
                memory_total_mib=int(memory) // (1024 * 1024) if memory is not None else None,
                uuid=gpu.get("uuid"),
                pci_bus_id=gpu.get("pci_bus_id"),
            ))
        return NvidiaFacts(source="nvml", driver_version=driver, cuda_driver_version=cuda,
                           gpus=tuple(gpus))
    except Exception as error:  # noqa: BLE001
        return NvidiaFacts(source="nvml", error=f"unreadable NVML values: {error}")


# -------------------------------------------------------------------------------------------
# docker info


def parse_docker_info(data: Any) -> DockerFacts:
    """DockerFacts from `docker info --format '{{json .}}'` text or the SDK's `client.info()`."""
    try:
        return _parse_docker_info(data)
    except Exception as error:  # noqa: BLE001
        return DockerFacts(error=f"unparsable docker info: {type(error).__name__}: {error}")


def _parse_docker_info(data: Any) -> DockerFacts:
    if isinstance(data, (str, bytes)):
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        try:
            data = json.loads(text)
        except ValueError:
            first = _first_line(text)
            return DockerFacts(error=f"unparsable docker info: {first[:160] or 'empty output'}")
    if not isinstance(data, dict):
        return DockerFacts(error=f"unparsable docker info: expected an object, got "
                                 f"{type(data).__name__}")
    server_errors = data.get("ServerErrors")
    version = data.get("ServerVersion")
    if not version:
        if server_errors:
            return DockerFacts(error=str(server_errors[0]) if isinstance(server_errors, list)
                               else str(server_errors))
        return DockerFacts(error="docker info has no ServerVersion: engine not reachable")
    runtimes = data.get("Runtimes") or {}
    if not isinstance(runtimes, dict):
        return DockerFacts(error="unparsable docker info: Runtimes is not an object")
    cdi = data.get("CDISpecDirs") or ()
    if not isinstance(cdi, (list, tuple)):
        cdi = ()
    default_runtime = data.get("DefaultRuntime")
    return DockerFacts(
        reachable=True,
        server_version=str(version),
        runtimes=tuple(sorted(str(name) for name in runtimes)),
        default_runtime=str(default_runtime) if default_runtime else None,
        cdi_spec_dirs=tuple(str(d) for d in cdi),
    )


def parse_shm_size(value: Any) -> int | None:
    """Docker's size strings ("64m", "2g", "1073741824") -> MiB; junk -> None."""
    if value is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmg]?)i?b?\s*", str(value), re.IGNORECASE)
    if not match:
        return None
    number = float(match.group(1))
    scale = {"": 1 / (1024 * 1024), "b": 1 / (1024 * 1024), "k": 1 / 1024, "m": 1, "g": 1024}
    return int(number * scale[match.group(2).lower()])


# -------------------------------------------------------------------------------------------
# framework files and the framework probe script


def parse_torch_version_py(text: str) -> dict[str, str | None]:
    """`__version__` and `cuda` from torch/version.py, read as text (no torch import)."""
    result: dict[str, str | None] = {"version": None, "cuda": None}
    try:
        for line in text.splitlines():
            match = re.match(r"^(__version__|cuda)\s*(?::[^=]*)?=\s*(.+?)\s*$", line)
            if match:
                value = ast.literal_eval(match.group(2))
                key = "version" if match.group(1) == "__version__" else "cuda"
                result[key] = str(value) if value is not None else None
    except (ValueError, SyntaxError):
        pass
    return result


_TF_MODULE_NAMES = {  # TF 1.x-2.2 wrote module-level names instead of a build_info dict
    "is_cuda_build": "is_cuda_build",
    "cuda_version_number": "cuda_version",
    "cudnn_version_number": "cudnn_version",
}


def _dict_value(node: ast.expr) -> Any:
    """A literal dict, or `collections.OrderedDict([(key, value), ...])` / `OrderedDict({...})`
    / `dict(...)` of literals, as TensorFlow's generated build_info.py writes it."""
    if isinstance(node, ast.Call) and len(node.args) <= 1 and not node.keywords:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in ("OrderedDict", "dict"):
            return dict(ast.literal_eval(node.args[0])) if node.args else {}
    return ast.literal_eval(node)


def parse_tf_build_info(text: str) -> dict[str, Any]:
    """The build info of tensorflow/python/platform/build_info.py, read as text (no import).

    TF 2.4+ writes `build_info = collections.OrderedDict([('cuda_version', '12.2'), ...])`,
    2.3 a plain dict, 1.x-2.2 module-level names (`is_cuda_build = True`,
    `cuda_version_number = '10.0'`); all come back as a dict with the 2.x keys."""
    result: dict[str, Any] = {}
    try:
        tree = ast.parse(text)
        for node in tree.body:
            if not isinstance(node, ast.Assign):
                continue
            for target in node.targets:
                if not isinstance(target, ast.Name):
                    continue
                if target.id == "build_info":
                    value = _dict_value(node.value)
                    return value if isinstance(value, dict) else {}
                if target.id in _TF_MODULE_NAMES:
                    result[_TF_MODULE_NAMES[target.id]] = ast.literal_eval(node.value)
    except (ValueError, SyntaxError, TypeError, RecursionError):
        return {}
    return result


def framework_from_probe_json(name: str, text: str) -> FrameworkFacts:
    """FrameworkFacts from the JSON line the framework probe script printed."""
    try:
        data = json.loads(text.strip().splitlines()[-1]) if text.strip() else None
        if not isinstance(data, dict):
            raise ValueError("no JSON object")
    except (ValueError, IndexError) as error:
        return FrameworkFacts(name=name, installed=True,
                              error=f"unreadable {name} probe output: {error}")
    if data.get("error"):
        return FrameworkFacts(name=name, installed=True, version=data.get("version"),
                              error=str(data["error"]))
    arch = data.get("arch_list") or ()
    visible = data.get("visible_gpus")
    available = data.get("gpu_available")
    return FrameworkFacts(
        name=name,
        installed=True,
        version=data.get("version"),
        cuda=data.get("cuda") or None,
        cudnn=str(data["cudnn"]) if data.get("cudnn") not in (None, "") else None,
        gpu_available=bool(available) if available is not None else None,
        visible_gpus=int(visible) if isinstance(visible, int) else None,
        arch_list=tuple(str(a) for a in arch) if isinstance(arch, (list, tuple)) else (),
    )


# -------------------------------------------------------------------------------------------
# GPU names -> compute capability, for nvidia-smi output without a compute_cap field

_GPU_NAME_CC: tuple[tuple[str, str], ...] = (
    # order matters: more specific names first. Source: https://developer.nvidia.com/cuda-gpus
    # Turing Quadros and Ada workstation cards before the GeForce series prefixes: "Quadro RTX
    # 5000" is sm_75 (not an RTX 50), "RTX 2000 Ada Generation" sm_89 (not an RTX 20)
    ("Quadro RTX", "7.5"), ("Ada Generation", "8.9"),
    ("RTX PRO 6000 Blackwell", "12.0"), ("RTX 50", "12.0"), ("B200", "10.0"), ("B100", "10.0"),
    ("GB200", "10.0"), ("GB10", "12.1"), ("H100", "9.0"), ("H200", "9.0"), ("GH200", "9.0"),
    ("L40", "8.9"), ("L4", "8.9"), ("RTX 40", "8.9"), ("A100", "8.0"), ("A30", "8.0"),
    ("A800", "8.0"), ("A10G", "8.6"), ("A10", "8.6"), ("A40", "8.6"), ("A16", "8.6"),
    ("A2", "8.6"), ("RTX A", "8.6"), ("RTX 30", "8.6"), ("T4", "7.5"), ("RTX 20", "7.5"),
    ("GTX 16", "7.5"), ("TITAN RTX", "7.5"), ("V100", "7.0"),
    ("TITAN V", "7.0"), ("P100", "6.0"), ("P40", "6.1"), ("P4", "6.1"), ("GTX 10", "6.1"),
    ("M60", "5.2"), ("M40", "5.2"), ("GTX 9", "5.2"), ("K80", "3.7"),
)


def gpu_name_compute_capability(name: str | None) -> str | None:
    """Best-effort compute capability from a GPU's marketing name; None when not known."""
    if not name:
        return None
    upper = name.upper()
    for needle, cc in _GPU_NAME_CC:
        pattern = r"(?<![A-Z0-9])" + re.escape(needle.upper()) + r"(?![A-Z])"
        if re.search(pattern, upper):
            return cc
    return None
