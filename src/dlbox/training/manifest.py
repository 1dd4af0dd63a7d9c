"""manifest.json: where and with what a run was made (versions, hardware, code, data).

Each probe is guarded: a fact that cannot be found is recorded as null, never an error.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

import dlbox
from dlbox.data import fetch
from dlbox.training.device import available_cpus, device_name

MANIFEST_FILE = "manifest.json"  # a run's provenance, beside its config.json


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def nvidia_driver_version() -> str | None:
    """The NVIDIA driver version via NVML, or None without one."""
    try:
        import pynvml  # from nvidia-ml-py
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...: no driver here
        return None
    try:
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def git_commit(start: Path | None = None) -> dict[str, Any] | None:
    """The commit (and whether the tree is dirty) of the dlbox checkout, if it is one."""
    where = start or Path(dlbox.__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=5, check=False)
        if commit.returncode != 0:
            return None
        # --no-optional-locks: no refresh of the index, whose .git/index.lock could fail the
        # user's own git commands in the checkout meanwhile (review)
        status = subprocess.run(["git", "--no-optional-locks", "-C", str(where), "status",
                                 "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(),
            "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


def data_checksum(data_dir: str | Path | None) -> str | None:
    """dlbox.data.fetch.data_checksum(data_dir), None when it cannot be had."""
    if data_dir is None:
        return None
    try:
        value = fetch.data_checksum(Path(data_dir))
    except Exception:  # a checksum is provenance, not a reason to stop training
        return None
    return None if value is None else str(value)


def software_versions(device: torch.device) -> dict[str, Any]:
    """The versions a result depends on (dlbox, torch, CUDA, cuDNN, driver, Python) and the
    device it came from: the provenance of every artifact, a run's or an evaluation's."""
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "dlbox": dlbox.__version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
        "nvidia_driver": nvidia_driver_version() if torch.version.cuda else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "device": str(device),
        "device_name": device_name(device),
    }


def build_manifest(device: torch.device, data_dir: str | Path | None = None,
                   data_source: str | None = None) -> dict[str, Any]:
    """Versions, hardware, code and data of this process, as a JSON-ready dict."""
    return {
        "created": utc_now(),
        **software_versions(device),
        "cpu_threads": torch.get_num_threads(),
        "cpu_cores": available_cpus(),
        "git": git_commit(),
        "data_dir": str(data_dir) if data_dir is not None else None,
        "data_source": data_source,
        "data_checksum": data_checksum(data_dir),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv else None,
    }
