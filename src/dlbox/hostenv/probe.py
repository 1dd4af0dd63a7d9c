"""Probe the host, read-only and quick: collect raw outputs, then turn them into HostFacts.

Two steps, so every parser runs on recorded real outputs in tests:
1. `collect_raw()` does the side effects (NVML, nvidia-smi, docker, files), each behind a
   timeout, and keeps what the tools printed in a `RawHost`;
2. `facts_from_raw(raw)` is pure and builds `HostFacts` from it.
`save_raw` / `load_raw` write and read a RawHost as a folder of plain files (the fixture
format of tests/fixtures/hosts/*). A probe that fails becomes a ProbeFailure, never an
exception out of `probe_host()`.

Framework facts come first from files (dist metadata, torch/version.py, TensorFlow's
build_info.py): importing torch takes 1-2 s and TensorFlow far longer. Only on a host with an
NVIDIA GPU (or when asked) does a subprocess import the framework for `cuda.is_available()`
and the compiled arch list, with a timeout.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from dlbox.hostenv.facts import (
    FRAMEWORKS,
    DockerFacts,
    FrameworkFacts,
    HostFacts,
    NvidiaFacts,
    ProbeFailure,
    SystemFacts,
    running_in_container,
)
from dlbox.hostenv.matrix import load_matrix
from dlbox.hostenv.parse import (
    INFOROM_EXIT,
    SMI_QUERY_FIELDS,
    SMI_QUERY_FIELDS_OLD,
    SMI_WARNING,
    SmiResult,
    framework_from_probe_json,
    nvidia_from_nvml_record,
    parse_docker_info,
    parse_nvidia_smi_csv,
    parse_nvidia_smi_q,
    parse_shm_size,
    parse_tf_build_info,
    parse_torch_version_py,
    smi_failure,
    smi_warnings,
)
from dlbox.hostenv.recording import (
    HOST_JSON,
    RecordingError,
    check_host_json,
    check_nvml_record,
    check_probe_output,
    kind,
    read_json,
    read_text,
)
from dlbox.text import redact_url_credentials

T = TypeVar("T")

SMI_TIMEOUT_S = 10.0
DOCKER_TIMEOUT_S = 3.0
NVML_TIMEOUT_S = 5.0
DEEP_TIMEOUT_S = {"torch": 60.0, "tensorflow": 120.0, "jax": 60.0}
NVML_NOT_INSTALLED = "nvidia-ml-py (pynvml) is not installed"
NVML_LIBRARY_NOT_FOUND = "NVML Shared Library Not Found"  # pynvml's words: no driver library
OUTPUT_LIMIT_BYTES = 1024 * 1024  # what is read of a command's output (nvidia-smi's is KBs)
DOCKER_DEFAULT_SHM_MIB = 64  # dockerd's default --default-shm-size
CDI_DEFAULT_DIRS = ("/etc/cdi", "/var/run/cdi")
NVIDIA_HOOK = "nvidia-container-runtime-hook"  # NVIDIA Container Toolkit's OCI hook


@dataclass(frozen=True)
class CommandOutput:
    """What a command printed (stdout then stderr) and how it ended."""

    argv: tuple[str, ...]
    output: str = ""
    returncode: int | None = None
    error: str | None = None  # "not found", "timed out after 10 s", OSError text


@dataclass(frozen=True)
class RawFramework:
    name: str
    installed: bool = False
    dist_version: str | None = None  # from the dist metadata
    build_cuda: str | None = None  # torch/version.py `cuda`, TF build_info cuda_version
    build_cudnn: str | None = None
    packages: dict[str, str] = field(default_factory=dict)  # nvidia-* / plugin dists
    deep_output: str | None = None  # stdout of the import probe (JSON)
    deep_error: str | None = None


@dataclass(frozen=True)
class RawHost:
    system: SystemFacts = field(default_factory=SystemFacts)
    system_error: str | None = None
    nvml: dict[str, Any] | None = None
    nvml_error: str | None = None
    nvidia_error: str | None = None  # the NVIDIA probe itself raised (a bug, out of memory)
    smi_path: str | None = None
    smi_query: CommandOutput | None = None
    smi_q: CommandOutput | None = None
    docker_info: str | None = None  # `docker info --format '{{json .}}'` / SDK info as JSON
    docker_error: str | None = None
    docker_daemon_json: str | None = None
    cdi_nvidia_specs: tuple[str, ...] = ()
    nvidia_hook_path: str | None = None  # where nvidia-container-runtime-hook is (docker --gpus)
    frameworks: tuple[RawFramework, ...] = ()
    seconds: float | None = None


# ------------------------------------------------------------------------------------------
# helpers


def _with_timeout(fn: Callable[[], T], seconds: float, what: str) -> T:
    """Run `fn` in a daemon thread; TimeoutError if it does not return in time."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as error:  # noqa: BLE001 - handed back to the caller
            box["error"] = error

    thread = threading.Thread(target=target, name=f"dlbox-probe-{what}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"{what} did not answer within {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def run_command(argv: list[str], timeout: float,
                limit: int = OUTPUT_LIMIT_BYTES) -> CommandOutput:
    """Run a command read-only with a timeout; never raises. Its output (stdout, then
    stderr) is read up to `limit` bytes: a tool that prints more is stopped there."""
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    except FileNotFoundError:
        return CommandOutput(tuple(argv), error="not found")
    except OSError as error:
        return CommandOutput(tuple(argv), error=str(error))
    outputs: dict[int, bytearray] = {}  # by file descriptor: stdout, stderr
    deadline = time.monotonic() + timeout
    timed_out = too_much = False
    with proc, selectors.DefaultSelector() as selector:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                selector.register(stream, selectors.EVENT_READ)
                outputs[stream.fileno()] = bytearray()
        while selector.get_map() and not (timed_out or too_much):
            left = deadline - time.monotonic()
            ready = selector.select(left) if left > 0 else []
            timed_out = not ready
            for key, _ in ready:
                chunk = os.read(key.fd, 65536)
                if chunk:
                    outputs[key.fd] += chunk
                else:
                    selector.unregister(key.fileobj)
            too_much = sum(map(len, outputs.values())) > limit
        if not (timed_out or too_much):
            try:
                proc.wait(max(deadline - time.monotonic(), 0))
            except subprocess.TimeoutExpired:  # closed its output, still running
                timed_out = True
        if timed_out or too_much:
            proc.kill()
            proc.wait()
    if timed_out:
        return CommandOutput(tuple(argv), error=f"timed out after {timeout:g} s")
    text = b"".join(outputs.values())[:limit].decode("utf-8", errors="replace")
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # as text mode reads it
    if too_much:
        return CommandOutput(tuple(argv), output=text, error=f"printed more than "
                             f"{limit / (1024 * 1024):g} MiB (stopped reading)")
    return CommandOutput(tuple(argv), output=text, returncode=proc.returncode)


def _exit_text(returncode: int | None) -> str:
    """How a command ended, in words: "exit code 9", "killed by signal 11 (SIGSEGV)"."""
    if returncode is not None and returncode < 0:
        try:
            return f"killed by signal {-returncode} ({signal.Signals(-returncode).name})"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


# how a command ended, as run_command and _exit_text word it
_ENDED_BADLY = re.compile(r"(^|\s)timed out after |(^|; )(exit code -?\d+|killed by signal \d+)")


def smi_ended_badly(error: str) -> bool:
    """Whether nvidia-smi's failure (NvidiaFacts.error) is how it ended, not what it printed:
    no answer within its time limit, killed by a signal, or a non-zero exit without words
    that say what failed."""
    return bool(_ENDED_BADLY.search(error))


def _one_line(error: BaseException | str) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())[:300]


# ------------------------------------------------------------------------------------------
# system


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _os_name() -> str:
    text = _read("/etc/os-release") or ""
    match = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', text, re.MULTILINE)
    if match:
        return match.group(1)
    return f"{platform.system()} {platform.release()}".strip()


def _cpu_model() -> str | None:
    text = _read("/proc/cpuinfo") or ""
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else (platform.processor() or None)


def _ram_mib() -> int | None:
    text = _read("/proc/meminfo") or ""
    match = re.search(r"^MemTotal:\s*(\d+)\s*kB", text, re.MULTILINE)
    if match:
        return int(match.group(1)) // 1024
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError, AttributeError):
        return None


def _free_mib(path: str) -> int | None:
    try:
        return shutil.disk_usage(path).free // (1024 * 1024)
    except OSError:
        return None


def _total_mib(path: str) -> int | None:
    try:
        return shutil.disk_usage(path).total // (1024 * 1024)
    except OSError:
        return None


def probe_system(disk_path: str | None = None) -> SystemFacts:
    disk = disk_path or os.getcwd()
    cpus: int | None
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count()
    return SystemFacts(
        os=_os_name(),
        kernel=platform.release() or None,
        machine=platform.machine() or None,
        python=platform.python_version(),
        cpu_model=_cpu_model(),
        cpu_count=cpus,
        ram_total_mib=_ram_mib(),
        disk_free_mib=_free_mib(disk),
        disk_path=disk,
        shm_total_mib=_total_mib("/dev/shm") if os.path.isdir("/dev/shm") else None,
        in_container=running_in_container(),
    )


# ------------------------------------------------------------------------------------------
# NVIDIA


def _nvml_record() -> dict[str, Any]:
    import pynvml  # nvidia-ml-py

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    pynvml.nvmlInit()
    try:
        record: dict[str, Any] = {
            "driver_version": text(pynvml.nvmlSystemGetDriverVersion()),
            "cuda_driver_version": int(pynvml.nvmlSystemGetCudaDriverVersion_v2()),
            "gpus": [],
        }
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            gpu: dict[str, Any] = {"name": text(pynvml.nvmlDeviceGetName(handle))}
            try:
                gpu["compute_capability"] = list(pynvml.nvmlDeviceGetCudaComputeCapability(handle))
            except pynvml.NVMLError:
                gpu["compute_capability"] = None
            try:
                gpu["memory_total_bytes"] = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)
            except pynvml.NVMLError:
                gpu["memory_total_bytes"] = None
            try:
                gpu["uuid"] = text(pynvml.nvmlDeviceGetUUID(handle))
                gpu["pci_bus_id"] = text(pynvml.nvmlDeviceGetPciInfo(handle).busId)
            except pynvml.NVMLError:
                pass
            record["gpus"].append(gpu)
        return record
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001 - shutting down is best effort
            pass


def _collect_nvidia() -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        out["nvml"] = _with_timeout(_nvml_record, NVML_TIMEOUT_S, "NVML")
    except ImportError:
        out["nvml_error"] = NVML_NOT_INSTALLED
    except Exception as error:  # noqa: BLE001 - NVMLError_LibraryNotFound and friends
        out["nvml_error"] = _one_line(error)
    smi = shutil.which("nvidia-smi")
    out["smi_path"] = smi
    nvml_ok = out.get("nvml") is not None and out["nvml"].get("gpus")
    if smi and not nvml_ok:
        query = run_command([smi, f"--query-gpu={','.join(SMI_QUERY_FIELDS)}",
                             "--format=csv,noheader"], SMI_TIMEOUT_S)
        if "is not a valid field" in query.output:  # drivers older than compute_cap (~510)
            query = run_command([smi, f"--query-gpu={','.join(SMI_QUERY_FIELDS_OLD)}",
                                 "--format=csv,noheader"], SMI_TIMEOUT_S)
        out["smi_query"] = query
        if query.error is None and not smi_failure(query.output):
            # -q has the driver's CUDA version (the CSV query has none) and is the fallback
            # when the CSV cannot be read
            out["smi_q"] = run_command([smi, "-q"], SMI_TIMEOUT_S)
    return out


def _fields_of(query: CommandOutput) -> tuple[str, ...]:
    for arg in query.argv:
        if arg.startswith("--query-gpu="):
            return tuple(arg.split("=", 1)[1].split(","))
    return SMI_QUERY_FIELDS


def _nvml_absent(error: str) -> bool:
    """Whether an NVML error says there is no NVML here (no driver library, no pynvml), as
    opposed to an NVML that is there and fails ("Driver Not Loaded", a timeout)."""
    return error.strip() in (NVML_NOT_INSTALLED, NVML_LIBRARY_NOT_FOUND)


def _nvidia_facts(raw: RawHost, failures: list[ProbeFailure]) -> NvidiaFacts:
    matrix = load_matrix()
    nvml_facts: NvidiaFacts | None = None
    nvml_failed: str | None = None  # NVML is there and failed: a driver fault, not "no GPU"
    if raw.nvml is not None:
        facts = nvidia_from_nvml_record(raw.nvml)
        if facts.error is None and facts.gpus:
            return replace(facts, nvidia_smi=raw.smi_path)
        if facts.error:
            failures.append(ProbeFailure("NVML", facts.error))
            nvml_failed = facts.error
        else:
            nvml_facts = facts
    elif raw.nvml_error:
        if not _nvml_absent(raw.nvml_error):
            nvml_failed = raw.nvml_error
        if raw.smi_path or nvml_failed:
            # without nvidia-smi either, a missing NVML just means "no NVIDIA driver"
            failures.append(ProbeFailure("NVML", raw.nvml_error))
    if raw.smi_path is None:
        if nvml_facts is not None:
            # NVML answered with a driver but no GPU, and there is no nvidia-smi to ask
            return nvml_facts
        if nvml_failed is not None:
            return NvidiaFacts(source="nvml", error=nvml_failed)
        return NvidiaFacts(source="none")
    result: SmiResult | None = None
    query = raw.smi_query
    if query is not None:
        if query.error:
            failures.append(ProbeFailure("nvidia-smi", query.error))
        else:
            result = parse_nvidia_smi_csv(query.output, _fields_of(query))
            warnings = smi_warnings(query.output)
            if result.error is None and query.returncode == INFOROM_EXIT and warnings:
                # the answer is whole; the warning is a finding of its own (rule_smi_warnings)
                failures.extend(ProbeFailure(SMI_WARNING, warning) for warning in warnings)
            elif query.returncode not in (0, None) and not smi_failure(query.output):
                # how it ended, where its own words do not say what failed (a crash prints
                # nothing, garbage names nothing)
                result = SmiResult(error="; ".join(
                    filter(None, (result.error, _exit_text(query.returncode)))))
    source = "nvidia-smi"
    if (result is None or result.error) and raw.smi_q is not None and raw.smi_q.error is None:
        q_result = parse_nvidia_smi_q(raw.smi_q.output)
        if q_result.error is None:
            if result is not None and result.error:
                failures.append(ProbeFailure("nvidia-smi --query-gpu", result.error))
            result, source = q_result, "nvidia-smi -q"
    if result is None:  # why: a timeout ("timed out after 10 s") is no "did not run"
        why = query.error if query is not None and query.error else "did not run"
        return NvidiaFacts(source="none", nvidia_smi=raw.smi_path, error=f"nvidia-smi {why}")
    if result.error:
        failures.append(ProbeFailure("nvidia-smi", result.error))
        return NvidiaFacts(source=source, nvidia_smi=raw.smi_path, error=result.error)
    cuda = result.cuda_driver_version
    if cuda is None and source == "nvidia-smi" and raw.smi_q is not None and not raw.smi_q.error:
        q_result = parse_nvidia_smi_q(raw.smi_q.output)
        if q_result.error is None and q_result.driver_version == result.driver_version:
            cuda = q_result.cuda_driver_version
    cuda = cuda or matrix.max_cuda_for_driver(result.driver_version)
    return NvidiaFacts(source=source, driver_version=result.driver_version,
                       cuda_driver_version=cuda, gpus=result.gpus, nvidia_smi=raw.smi_path)


# ------------------------------------------------------------------------------------------
# Docker


def _docker_info_sdk() -> str:
    import docker  # the docker SDK

    client = docker.from_env(timeout=DOCKER_TIMEOUT_S)
    try:
        return json.dumps(client.info())
    finally:
        client.close()


def _collect_docker() -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        out["docker_info"] = _with_timeout(_docker_info_sdk, DOCKER_TIMEOUT_S + 1, "docker")
    except ImportError:
        cli = shutil.which("docker")
        if cli is None:
            out["docker_error"] = "neither the docker SDK nor the docker CLI is installed"
        else:
            result = run_command([cli, "info", "--format", "{{json .}}"], DOCKER_TIMEOUT_S)
            if result.error or result.returncode:
                out["docker_error"] = _one_line(result.error or result.output)
            else:
                out["docker_info"] = result.output
    except Exception as error:  # noqa: BLE001 - DockerException: no socket, permission
        out["docker_error"] = _docker_error_text(error)
    out["docker_daemon_json"] = _read("/etc/docker/daemon.json")
    specs: list[str] = []
    dirs = list(CDI_DEFAULT_DIRS)
    try:
        info = json.loads(out.get("docker_info") or "{}")
        dirs = list(dict.fromkeys((info.get("CDISpecDirs") or []) + dirs))
    except ValueError:
        pass
    for folder in dirs:
        try:
            for entry in sorted(os.scandir(folder), key=lambda e: e.name)[:50]:
                if entry.name.endswith((".yaml", ".yml", ".json")) and entry.is_file():
                    text = _read(entry.path) or ""
                    if "nvidia.com/gpu" in text:
                        specs.append(entry.path)
        except OSError:
            continue
    out["cdi_nvidia_specs"] = tuple(specs)
    # dockerd registers its "nvidia" device driver (docker run --gpus) when this hook is on
    # its PATH, whether or not the nvidia runtime is configured in daemon.json
    out["nvidia_hook_path"] = shutil.which(NVIDIA_HOOK) or next(
        (path for path in (f"/usr/bin/{NVIDIA_HOOK}", f"/usr/local/bin/{NVIDIA_HOOK}")
         if os.access(path, os.X_OK)), None)
    return out


DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


def docker_host() -> str:
    """The engine address the Docker SDK uses: $DOCKER_HOST, else the default socket."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST


# The fix for an engine dlbox cannot reach, by its cause (`unreachable_cause`): `dlbox image`
# (container.engine.engine_error) and `dlbox doctor` (hostenv.rules) say the same words,
# which end in a command to paste.
UNREACHABLE_FIXES = {
    "no permission": "add yourself to the docker group (or run as root), then log in again: "
                     "sudo usermod -aG docker $USER",
    "not running": "point DOCKER_HOST at a running engine, or start this one: "
                   "sudo systemctl start docker",
    "other": "check that dockerd is running and that DOCKER_HOST (if set) names it; see what "
             "the engine says: docker info",
}


def unreachable_cause(text: str) -> str:
    """Why the engine could not be reached, from its error's text (the SDK's, the docker
    CLI's, or the probe's words for them): a key of UNREACHABLE_FIXES."""
    said = text.lower()
    if "permission denied" in said or "permissionerror" in said:
        return "no permission"
    if any(words in said for words in ("filenotfounderror", "no such file", "no socket",
                                       "cannot connect to the docker daemon",
                                       "is the docker daemon running")):
        return "not running"
    return "other"


def _docker_error_text(error: BaseException) -> str:
    text = _one_line(error)
    host = docker_host()
    where = host.removeprefix("unix://")
    cause = unreachable_cause(text)
    if cause == "not running":
        return f"Docker engine not reachable: no socket at {where} (is dockerd running?)"
    if cause == "no permission":
        return f"Docker engine not reachable: permission denied on {where}"
    return f"Docker engine not reachable at {host}: {text}"


def _docker_facts(raw: RawHost, failures: list[ProbeFailure]) -> DockerFacts:
    if raw.docker_info is None:
        why = raw.docker_error or "no docker info"
        failures.append(ProbeFailure("docker", why))
        return DockerFacts(error=why)
    facts = parse_docker_info(raw.docker_info)
    if facts.error:
        failures.append(ProbeFailure("docker", facts.error))
        return facts
    shm = DOCKER_DEFAULT_SHM_MIB
    if raw.docker_daemon_json:
        try:
            config = json.loads(raw.docker_daemon_json)
            shm = parse_shm_size(config.get("default-shm-size")) or shm
        except (ValueError, AttributeError):
            failures.append(ProbeFailure("docker", "/etc/docker/daemon.json is not valid JSON"))
    return replace(facts, default_shm_mib=shm, cdi_nvidia=bool(raw.cdi_nvidia_specs),
                   nvidia_hook=bool(raw.nvidia_hook_path))


# ------------------------------------------------------------------------------------------
# frameworks

_DIST_NAMES = {
    "torch": ("torch",),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly"),
    "jax": ("jax",),
}
# Each release of these pins one torch release exactly: a torch fix takes them along.
TORCH_COMPANIONS = ("torchvision", "torchaudio")
_SIDE_PACKAGES = {
    "torch": ("nvidia-cudnn-cu12", "nvidia-cudnn-cu13", "nvidia-cudnn-cu11",
              "nvidia-cuda-runtime-cu12", "nvidia-cuda-runtime", "nvidia-cuda-runtime-cu11",
              *TORCH_COMPANIONS),
    "tensorflow": ("nvidia-cudnn-cu12", "nvidia-cuda-runtime-cu12"),
    "jax": ("jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin", "jax-cuda12-pjrt",
            "jax-cuda13-pjrt", "nvidia-cudnn-cu12", "nvidia-cudnn-cu13"),
}

# Run with `python -c`; prints one JSON line. Only used where a GPU makes the answer matter.
DEEP_PROBE = {
    "torch": (
        "import json\n"
        "out = {}\n"
        "try:\n"
        "    import torch\n"
        "    out['version'] = torch.__version__\n"
        "    out['cuda'] = torch.version.cuda\n"
        "    out['cudnn'] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available()"
        " else None\n"
        "    out['gpu_available'] = torch.cuda.is_available()\n"
        "    out['visible_gpus'] = torch.cuda.device_count() if out['gpu_available'] else 0\n"
        "    out['arch_list'] = torch.cuda.get_arch_list() if torch.version.cuda else []\n"
        "except Exception as e:\n"
        "    out['error'] = f'{type(e).__name__}: {e}'\n"
        "print(json.dumps(out))\n"
    ),
    "tensorflow": (
        "import json, os\n"
        "os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')\n"
        "out = {}\n"
        "try:\n"
        "    import tensorflow as tf\n"
        "    out['version'] = tf.__version__\n"
        "    try:\n"
        "        info = dict(tf.sysconfig.get_build_info())\n"
        "    except AttributeError:  # TF < 2.3: module-level names\n"
        "        from tensorflow.python.platform import build_info as b\n"
        "        info = {'cuda_version': getattr(b, 'cuda_version_number', None),\n"
        "                'cudnn_version': getattr(b, 'cudnn_version_number', None)}\n"
        "    out['cuda'] = info.get('cuda_version')\n"
        "    out['cudnn'] = info.get('cudnn_version')\n"
        "    config = getattr(tf, 'config', None)\n"
        "    listing = getattr(config, 'list_physical_devices', None) or getattr(\n"
        "        getattr(config, 'experimental', None), 'list_physical_devices', None)\n"
        "    if listing is not None:  # TF >= 2.1, else tf.config.experimental (1.14+)\n"
        "        gpus = listing('GPU')\n"
        "    else:\n"
        "        from tensorflow.python.client import device_lib\n"
        "        gpus = [d for d in device_lib.list_local_devices() if d.device_type == 'GPU']\n"
        "    out['visible_gpus'] = len(gpus)\n"
        "    out['gpu_available'] = bool(gpus)\n"
        "    out['arch_list'] = list(info.get('cuda_compute_capabilities') or [])\n"
        "except Exception as e:\n"
        "    out['error'] = f'{type(e).__name__}: {e}'\n"
        "print(json.dumps(out))\n"
    ),
    "jax": (
        "import json\n"
        "out = {}\n"
        "try:\n"
        "    import jax\n"
        "    out['version'] = jax.__version__\n"
        "    try:\n"
        "        gpus = jax.devices('gpu')\n"
        "    except RuntimeError:\n"
        "        gpus = []\n"
        "    out['visible_gpus'] = len(gpus)\n"
        "    out['gpu_available'] = bool(gpus)\n"
        "except Exception as e:\n"
        "    out['error'] = f'{type(e).__name__}: {e}'\n"
        "print(json.dumps(out))\n"
    ),
}


def _dist_version(names: tuple[str, ...]) -> str | None:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _collect_framework_files(name: str) -> RawFramework:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return RawFramework(name=name)
    packages = {}
    for dist in _SIDE_PACKAGES[name]:
        version = _dist_version((dist,))
        if version:
            packages[dist] = version
    build_cuda = build_cudnn = None
    root = Path(spec.origin).parent if spec.origin else None
    if name == "torch" and root is not None:
        info = parse_torch_version_py(_read(str(root / "version.py")) or "")
        build_cuda = info.get("cuda")
    elif name == "tensorflow" and root is not None:
        info = parse_tf_build_info(_read(str(root / "python/platform/build_info.py")) or "")
        if info.get("is_cuda_build"):
            build_cuda = str(info.get("cuda_version") or "") or None
            build_cudnn = str(info.get("cudnn_version") or "") or None
    elif name == "jax":
        for major in ("13", "12"):
            if f"jax-cuda{major}-plugin" in packages:
                build_cuda = major
                break
        else:  # jax before the plugins (< 0.4.26): a CUDA jaxlib, "0.4.25+cuda12.cudnn89"
            local = re.search(r"\+cuda(\d+)", packages.get("jaxlib", ""))
            build_cuda = local.group(1) if local else None
    return RawFramework(name=name, installed=True, dist_version=_dist_version(_DIST_NAMES[name]),
                        build_cuda=build_cuda, build_cudnn=build_cudnn, packages=packages)


def _deep_probe(name: str) -> tuple[str | None, str | None]:
    result = run_command([sys.executable, "-c", DEEP_PROBE[name]], DEEP_TIMEOUT_S[name])
    if result.error:
        return None, f"importing {name}: {result.error}"
    lines = [line for line in result.output.splitlines() if line.startswith("{")]
    if not lines:
        # a crash (SIGSEGV, SIGILL: a build for another CPU) or sys.exit while importing
        how = "was " + _exit_text(result.returncode) if (result.returncode or 0) < 0 \
            else f"printed no result ({_exit_text(result.returncode)})"
        said = result.output[-300:].strip()
        return None, f"importing {name} {how}" + (f": {_one_line(said)}" if said else "")
    return lines[-1], None


def _framework_facts(raw: RawFramework, failures: list[ProbeFailure]) -> FrameworkFacts:
    if not raw.installed:
        return FrameworkFacts(name=raw.name)
    cudnn_installed = None
    for dist, version in sorted(raw.packages.items()):
        if dist.startswith("nvidia-cudnn"):
            cudnn_installed = version
    companions = {dist: raw.packages[dist] for dist in TORCH_COMPANIONS
                  if raw.name == "torch" and dist in raw.packages}
    fast = FrameworkFacts(name=raw.name, installed=True, version=raw.dist_version,
                          cuda=raw.build_cuda, cudnn=raw.build_cudnn,
                          cudnn_installed=cudnn_installed, companions=companions)
    if raw.deep_error:
        failures.append(ProbeFailure(raw.name, raw.deep_error))
    if raw.deep_output is None:
        # an import that crashed, exited or hung is a failed probe, not a fine framework
        return replace(fast, error=raw.deep_error) if raw.deep_error else fast
    deep = framework_from_probe_json(raw.name, raw.deep_output)
    if deep.error:
        failures.append(ProbeFailure(raw.name, deep.error))
        return replace(fast, error=deep.error)
    return replace(
        deep,
        version=deep.version or fast.version,
        cuda=deep.cuda or (fast.cuda if raw.name == "jax" else deep.cuda),
        cudnn=deep.cudnn or fast.cudnn,
        cudnn_installed=fast.cudnn_installed,
        companions=fast.companions,
    )


# ------------------------------------------------------------------------------------------
# the whole probe


def collect_raw(deep: bool | None = None, disk_path: str | None = None) -> RawHost:
    """Run every probe (side effects, each with a timeout); never raises.

    `deep`: import the installed frameworks in a subprocess (None = only when an NVIDIA
    GPU was found, where `cuda.is_available()` and the arch list matter).
    """
    start = time.monotonic()
    results: dict[str, Any] = {}

    def run_docker() -> None:
        try:
            results.update(_collect_docker())
        except Exception as error:  # noqa: BLE001
            results["docker_error"] = _one_line(error)

    docker_thread = threading.Thread(target=run_docker, name="dlbox-probe-docker", daemon=True)
    docker_thread.start()
    try:
        system = probe_system(disk_path)
    except Exception as error:  # noqa: BLE001
        system = SystemFacts(python=platform.python_version())
        results["system_error"] = _one_line(error)
    try:
        results.update(_collect_nvidia())
    except Exception as error:  # noqa: BLE001
        # a failed probe, not "no GPU": the nvidia-smi that is there stays known
        results["nvidia_error"] = _one_line(error)
        results["smi_path"] = shutil.which("nvidia-smi")
    frameworks = []
    for name in FRAMEWORKS:
        try:
            frameworks.append(_collect_framework_files(name))
        except Exception as error:  # noqa: BLE001
            frameworks.append(RawFramework(name=name, installed=True,
                                           deep_error=f"reading {name}: {_one_line(error)}"))
    # only a GPU the tools named (not whatever nvidia-smi printed) is worth the imports
    try:
        has_gpu = "nvidia_error" not in results and bool(_nvidia_facts(RawHost(
            nvml=results.get("nvml"), nvml_error=results.get("nvml_error"),
            smi_path=results.get("smi_path"), smi_query=results.get("smi_query"),
            smi_q=results.get("smi_q")), []).gpus)
    except Exception:  # noqa: BLE001 - facts_from_raw reports it
        has_gpu = False
    if deep or (deep is None and has_gpu):
        threads = []
        deep_results: dict[str, tuple[str | None, str | None]] = {}
        for item in frameworks:
            if item.installed and item.deep_error is None:
                thread = threading.Thread(
                    target=lambda n=item.name: deep_results.__setitem__(n, _deep_probe(n)),
                    daemon=True,
                )
                thread.start()
                threads.append(thread)
        for thread in threads:
            thread.join(max(DEEP_TIMEOUT_S.values()) + 5)
        frameworks = [
            replace(item, deep_output=deep_results[item.name][0],
                    deep_error=deep_results[item.name][1])
            if item.name in deep_results else item
            for item in frameworks
        ]
    docker_thread.join(DOCKER_TIMEOUT_S + 2)
    if docker_thread.is_alive():
        results["docker_error"] = f"docker did not answer within {DOCKER_TIMEOUT_S + 2:g} s"
    return RawHost(
        system=system,
        system_error=results.get("system_error"),
        nvml=results.get("nvml"),
        nvml_error=results.get("nvml_error"),
        nvidia_error=results.get("nvidia_error"),
        smi_path=results.get("smi_path"),
        smi_query=results.get("smi_query"),
        smi_q=results.get("smi_q"),
        docker_info=results.get("docker_info"),
        docker_error=results.get("docker_error"),
        docker_daemon_json=results.get("docker_daemon_json"),
        cdi_nvidia_specs=tuple(results.get("cdi_nvidia_specs") or ()),
        nvidia_hook_path=results.get("nvidia_hook_path"),
        frameworks=tuple(frameworks),
        seconds=round(time.monotonic() - start, 3),
    )


def facts_from_raw(raw: RawHost) -> HostFacts:
    """Pure: HostFacts (with ProbeFailures) from what the probes printed."""
    failures: list[ProbeFailure] = []
    if raw.system_error:
        failures.append(ProbeFailure("system", raw.system_error))
    nvidia_error = raw.nvidia_error
    if nvidia_error is None:
        try:
            nvidia = _nvidia_facts(raw, failures)
        except Exception as error:  # noqa: BLE001 - defensive: a parser bug must not crash
            nvidia_error = _one_line(error)
    if nvidia_error is not None:
        failures.append(ProbeFailure("nvidia", nvidia_error))
        nvidia = NvidiaFacts(nvidia_smi=raw.smi_path, error=nvidia_error)
    try:
        docker = _docker_facts(raw, failures)
    except Exception as error:  # noqa: BLE001
        failures.append(ProbeFailure("docker", _one_line(error)))
        docker = DockerFacts(error=_one_line(error))
    frameworks = []
    for item in raw.frameworks:
        try:
            frameworks.append(_framework_facts(item, failures))
        except Exception as error:  # noqa: BLE001
            failures.append(ProbeFailure(item.name, _one_line(error)))
            frameworks.append(FrameworkFacts(name=item.name, installed=True,
                                             error=_one_line(error)))
    return HostFacts(system=raw.system, nvidia=nvidia, frameworks=tuple(frameworks),
                     docker=docker, failures=tuple(failures), probe_seconds=raw.seconds)


def probe_host(deep: bool | None = None, disk_path: str | None = None) -> HostFacts:
    """Probe this host: HostFacts, never an exception."""
    return facts_from_raw(collect_raw(deep=deep, disk_path=disk_path))


# ------------------------------------------------------------------------------------------
# recordings: a RawHost as a folder of the tools' own outputs

_FILES = {
    "nvml": "nvml.json",
    "nvml_error": "nvml-error.txt",
    "smi_query": "nvidia-smi-query.csv",
    "smi_q": "nvidia-smi-q.txt",
    "docker_info": "docker-info.json",
    "docker_error": "docker-error.txt",
    "docker_daemon_json": "daemon.json",
}


def is_recording_file(name: str) -> bool:
    """Whether a file name is one a recording is made of (what `save_raw` writes)."""
    return name == HOST_JSON or name in _FILES.values() or name.endswith("-probe.json")


def save_recording(raw: RawHost, folder: Path) -> None:
    """Write a recording into `folder`, in place (a mount point, `.` or a link to a folder
    work as any folder), replacing an earlier recording there whole: its host.json goes
    first, so a write cut short is no recording at all, and its files the new one does not
    write (nvml.json of a host that had a GPU, say) go before the new host.json is written.
    Other files (a fixture's SOURCE.md) are left alone."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / HOST_JSON).unlink(missing_ok=True)
    save_raw(raw, folder, drop_others=True)


def save_raw(raw: RawHost, folder: Path, drop_others: bool = False) -> None:
    """Write a recording: the tools' outputs as files, the rest in host.json (last).
    `drop_others`: remove the recording files of an earlier recording that this one does
    not write, before host.json."""
    from dlbox.fileio import write_json_atomic, write_text_atomic

    folder.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()
    meta: dict[str, Any] = {
        "system": asdict(raw.system),
        "system_error": raw.system_error,
        "nvidia_error": raw.nvidia_error,
        "smi_path": raw.smi_path,
        "cdi_nvidia_specs": list(raw.cdi_nvidia_specs),
        "nvidia_hook_path": raw.nvidia_hook_path,
        "seconds": raw.seconds,
        "commands": {},
        "frameworks": [],
    }
    if raw.nvml is not None:
        write_json_atomic(folder / _FILES["nvml"], raw.nvml)
        written.add(_FILES["nvml"])
    for key in ("nvml_error", "docker_info", "docker_error", "docker_daemon_json"):
        value = getattr(raw, key)
        if value is not None:
            # A recording is made to be shared: a proxy's or a registry mirror's password
            # (daemon.json, docker info) is left out of it.
            write_text_atomic(folder / _FILES[key], redact_url_credentials(value))
            written.add(_FILES[key])
    for key in ("smi_query", "smi_q"):
        command: CommandOutput | None = getattr(raw, key)
        if command is not None:
            write_text_atomic(folder / _FILES[key], command.output)
            written.add(_FILES[key])
            meta["commands"][key] = {"argv": list(command.argv),
                                     "returncode": command.returncode, "error": command.error}
    for item in raw.frameworks:
        entry = asdict(item)
        deep = entry.pop("deep_output")
        if deep is not None:
            write_text_atomic(folder / f"{item.name}-probe.json", deep)
            written.add(f"{item.name}-probe.json")
        meta["frameworks"].append(entry)
    if drop_others:
        for child in folder.iterdir():
            if is_recording_file(child.name) and child.name not in written \
                    and child.name != HOST_JSON and child.is_file():
                child.unlink()
    write_json_atomic(folder / HOST_JSON, meta)


def load_raw(folder: Path) -> RawHost:
    """Read a recording written by `save_raw` (or by hand, as the fixtures are).

    Every JSON file is checked first (`recording.py`): a file that cannot be read, is not
    JSON, or holds a value of the wrong type raises `RecordingError` naming the file and the
    field, never an AttributeError / TypeError from deeper down.
    """
    folder = Path(folder)
    host_json = folder / HOST_JSON
    meta = read_json(host_json)
    check_host_json(meta, host_json)

    def text(key: str) -> str | None:
        path = folder / _FILES[key]
        return read_text(path) if path.exists() else None

    nvml_path = folder / _FILES["nvml"]
    nvml = None
    if nvml_path.exists():
        nvml = read_json(nvml_path)
        check_nvml_record(nvml, nvml_path)
    nvidia_error = meta.get("nvidia_error")
    if nvidia_error is not None and not isinstance(nvidia_error, str):
        raise RecordingError(host_json, f"'nvidia_error' must be a string or null, got "
                                        f"{kind(nvidia_error)}")
    commands = meta.get("commands") or {}

    def command(key: str) -> CommandOutput | None:
        output = text(key)
        info = commands.get(key)
        if output is None and info is None:
            return None
        info = info or {}
        return CommandOutput(argv=tuple(info.get("argv") or ()), output=output or "",
                             returncode=info.get("returncode", 0), error=info.get("error"))

    frameworks = []
    for entry in meta.get("frameworks") or []:
        probe_file = folder / f"{entry['name']}-probe.json"
        deep_output = read_text(probe_file) if probe_file.exists() else None
        if deep_output is not None:
            check_probe_output(deep_output, probe_file)
        frameworks.append(RawFramework(
            name=entry["name"],
            installed=entry.get("installed", False),
            dist_version=entry.get("dist_version"),
            build_cuda=entry.get("build_cuda"),
            build_cudnn=entry.get("build_cudnn"),
            packages=dict(entry.get("packages") or {}),
            deep_output=deep_output,
            deep_error=entry.get("deep_error"),
        ))
    return RawHost(
        system=SystemFacts(**(meta.get("system") or {})),
        system_error=meta.get("system_error"),
        nvml=nvml,
        nvml_error=text("nvml_error"),
        nvidia_error=nvidia_error,
        smi_path=meta.get("smi_path"),
        smi_query=command("smi_query"),
        smi_q=command("smi_q"),
        docker_info=text("docker_info"),
        docker_error=text("docker_error"),
        docker_daemon_json=text("docker_daemon_json"),
        cdi_nvidia_specs=tuple(meta.get("cdi_nvidia_specs") or ()),
        nvidia_hook_path=meta.get("nvidia_hook_path"),
        frameworks=tuple(frameworks),
        seconds=meta.get("seconds"),
    )
