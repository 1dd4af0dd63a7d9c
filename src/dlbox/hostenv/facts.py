"""What the probe found on a host, as plain frozen dataclasses (JSON-ready).

Facts are data only: no probing, no judging. The probe fills them (`probe.py`), the rules read
them (`rules.py`), the resolver derives a `Target` from them (`resolve.py`). A probe that failed
leaves a `ProbeFailure` here instead of raising.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

FRAMEWORKS = ("torch", "tensorflow", "jax")


@dataclass(frozen=True)
class ProbeFailure:
    probe: str  # "nvidia-smi", "docker", "torch", ...
    why: str  # one line: what failed, as the tool said it

    def __str__(self) -> str:
        return f"probe {self.probe} failed: {self.why}"


@dataclass(frozen=True)
class SystemFacts:
    os: str | None = None  # "Debian GNU/Linux 12 (bookworm)"
    kernel: str | None = None  # "6.8.0-45-generic"
    machine: str | None = None  # "x86_64"
    python: str | None = None  # "3.11.2"
    cpu_model: str | None = None
    cpu_count: int | None = None
    ram_total_mib: int | None = None
    disk_free_mib: int | None = None
    disk_path: str | None = None
    shm_total_mib: int | None = None  # size of /dev/shm (DataLoader workers pass tensors there)
    in_container: bool = False


@dataclass(frozen=True)
class GpuFacts:
    index: int
    name: str
    compute_capability: str | None = None  # "8.6"
    memory_total_mib: int | None = None
    uuid: str | None = None
    pci_bus_id: str | None = None


@dataclass(frozen=True)
class NvidiaFacts:
    source: str = "none"  # "nvml" | "nvidia-smi" | "nvidia-smi -q" | "none"
    driver_version: str | None = None  # "535.104.05"
    cuda_driver_version: str | None = None  # highest CUDA the driver supports: "12.2"
    gpus: tuple[GpuFacts, ...] = ()
    nvidia_smi: str | None = None  # path of nvidia-smi when on PATH
    error: str | None = None  # "Failed to initialize NVML: Driver/library version mismatch"

    @property
    def compute_capabilities(self) -> tuple[str, ...]:
        seen: list[str] = []
        for gpu in self.gpus:
            if gpu.compute_capability and gpu.compute_capability not in seen:
                seen.append(gpu.compute_capability)
        return tuple(seen)


@dataclass(frozen=True)
class FrameworkFacts:
    name: str  # "torch" | "tensorflow" | "jax"
    installed: bool = False
    version: str | None = None  # "2.9.1+cu128"
    cuda: str | None = None  # CUDA the build was made with; None = CPU-only build
    cudnn: str | None = None  # cuDNN the build reports ("8902", "90100", TF: "8")
    cudnn_installed: str | None = None  # version of the nvidia-cudnn-cu* pip package, if any
    gpu_available: bool | None = None  # torch.cuda.is_available(), TF/JAX: any GPU visible
    visible_gpus: int | None = None
    arch_list: tuple[str, ...] = ()  # torch.cuda.get_arch_list(): ("sm_80", "sm_86", ...)
    error: str | None = None  # import/probe failure
    # torchvision / torchaudio installed beside torch, name -> version: each pins one torch
    companions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DockerFacts:
    reachable: bool = False
    server_version: str | None = None
    runtimes: tuple[str, ...] = ()
    default_runtime: str | None = None
    cdi_spec_dirs: tuple[str, ...] = ()
    cdi_nvidia: bool = False  # a CDI spec for nvidia.com/gpu exists in a spec dir
    # nvidia-container-runtime-hook is on PATH: dockerd then registers the "nvidia" device
    # driver that `docker run --gpus` uses, with or without the nvidia runtime configured
    nvidia_hook: bool = False
    default_shm_mib: int | None = None  # from daemon.json default-shm-size, else 64
    error: str | None = None

    @property
    def nvidia_runtime(self) -> bool:
        return "nvidia" in self.runtimes

    @property
    def gpu_capable(self) -> bool:
        return self.nvidia_runtime or self.cdi_nvidia or self.nvidia_hook


@dataclass(frozen=True)
class HostFacts:
    system: SystemFacts = field(default_factory=SystemFacts)
    nvidia: NvidiaFacts = field(default_factory=NvidiaFacts)
    frameworks: tuple[FrameworkFacts, ...] = ()
    docker: DockerFacts = field(default_factory=DockerFacts)
    failures: tuple[ProbeFailure, ...] = ()
    probe_seconds: float | None = None

    def framework(self, name: str) -> FrameworkFacts | None:
        for item in self.frameworks:
            if item.name == name and item.installed:
                return item
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostFacts:
        """Rebuild facts from `to_dict()` output (fixtures, saved reports)."""
        nvidia = dict(data.get("nvidia") or {})
        nvidia["gpus"] = tuple(GpuFacts(**gpu) for gpu in nvidia.get("gpus", ()))
        docker = dict(data.get("docker") or {})
        for key in ("runtimes", "cdi_spec_dirs"):
            docker[key] = tuple(docker.get(key) or ())
        frameworks = []
        for item in data.get("frameworks", ()):
            item = dict(item)
            item["arch_list"] = tuple(item.get("arch_list") or ())
            frameworks.append(FrameworkFacts(**item))
        return cls(
            system=SystemFacts(**(data.get("system") or {})),
            nvidia=NvidiaFacts(**nvidia),
            frameworks=tuple(frameworks),
            docker=DockerFacts(**docker),
            failures=tuple(ProbeFailure(**f) for f in data.get("failures", ())),
            probe_seconds=data.get("probe_seconds"),
        )


def running_in_container() -> bool:
    """Whether this process runs in a container (Docker's /.dockerenv, Podman's
    /run/.containerenv)."""
    import os

    return os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv")
