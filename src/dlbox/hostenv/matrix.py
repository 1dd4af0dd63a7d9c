"""The versioned compatibility data shipped in `dlbox/hostenv/matrix/*.json`, as typed rows.

Each JSON row names its source and the date it was checked. Loading is cached; the rows are
frozen dataclasses so rules and the resolver stay pure functions of (facts, matrix).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from dlbox.errors import HostEnvError
from dlbox.hostenv.versions import compute_capability_tuple, parse_version, same_release


@dataclass(frozen=True)
class CudaRelease:
    cuda: str  # "12.8"
    ga_driver: str  # driver shipped with the toolkit's GA release
    update_drivers: tuple[tuple[str, str], ...]  # (("12.8.1", "570.124.06"),)
    archs: tuple[str, ...]  # compute capabilities nvcc of this release compiles for
    source: str
    checked: str
    uncertain: bool = False
    note: str = ""

    @property
    def major(self) -> str:
        return self.cuda.split(".")[0]


@dataclass(frozen=True)
class TorchVariant:
    name: str  # "cu128" | "cpu"
    cuda: str | None
    cudnn: str | None
    archs: tuple[str, ...]  # SASS targets ("8.0", "8.6", ...)
    ptx: tuple[str, ...]  # PTX targets, JIT-compiled on newer GPUs


@dataclass(frozen=True)
class TorchRelease:
    release: str  # "2.9"
    versions: tuple[str, ...]  # ("2.9.0", "2.9.1")
    released: str
    python: tuple[str, ...]
    pypi_default: str | None
    variants: tuple[TorchVariant, ...]  # GPU variants, newest CUDA first
    source: str
    checked: str
    uncertain: bool = False
    note: str = ""

    @property
    def latest(self) -> str:
        return self.versions[-1]


@dataclass(frozen=True)
class TensorflowRelease:
    release: str
    versions: tuple[str, ...]
    python: tuple[str, ...]
    cuda: str
    cudnn: str
    pip_cuda_extra: bool  # tensorflow[and-cuda] exists (2.14+)
    source: str
    checked: str
    uncertain: bool = False
    note: str = ""
    gpu_package: str = "tensorflow"  # the GPU wheel: tensorflow-gpu up to 2.0
    cpu_package: str = "tensorflow-cpu"  # the CPU-only wheel: tensorflow up to 2.0
    # SASS and PTX targets of the official Linux GPU wheels ("6.0", ...; "9.0"); empty where
    # the data has none: then `Matrix.tensorflow_min_cc` of the CUDA major is all there is
    archs: tuple[str, ...] = ()
    ptx: tuple[str, ...] = ()
    # The tensorflow[and-cuda] build where it differs: the Pythons its pip extra installs on
    # (2.14's tensorrt 8.5.3.1 has no 3.11 wheels; empty: `python`), and the version to pin
    # for a patch whose extra pip cannot install (2.15.0 -> 2.15.0.post1)
    and_cuda_python: tuple[str, ...] = ()
    and_cuda_versions: tuple[tuple[str, str], ...] = ()

    @property
    def latest(self) -> str:
        return self.versions[-1]


@dataclass(frozen=True)
class JaxPlugin:
    name: str  # "cuda12" | "cuda13"
    cuda: str  # CUDA major the plugin's pip packages bring
    cudnn: str
    min_compute_capability: str
    since: str | None = None  # first jax version with this plugin, when later than the row


@dataclass(frozen=True)
class JaxRelease:
    release: str
    versions: tuple[str, ...]
    python: tuple[str, ...]
    plugins: tuple[JaxPlugin, ...]
    source: str
    checked: str
    uncertain: bool = False
    note: str = ""

    @property
    def latest(self) -> str:
        return self.versions[-1]


@dataclass(frozen=True)
class Matrix:
    cuda_releases: tuple[CudaRelease, ...]  # oldest first
    minor_compat: tuple[tuple[str, str], ...]  # (("12", "525.60.13"),)
    torch: tuple[TorchRelease, ...]  # newest first
    tensorflow: tuple[TensorflowRelease, ...]  # newest first
    tensorflow_min_cc: tuple[tuple[str, str], ...]
    jax: tuple[JaxRelease, ...]  # newest first
    checked: str
    torch_wheel_index: str
    # ((below compute capability, last driver branch, architecture),), lowest capability first
    last_driver_branches: tuple[tuple[str, str, str], ...] = ()
    # (("9", "5.0"), ("8.9", "5.0")): the lowest compute capability a cuDNN release supports
    cudnn_min_compute_capability: tuple[tuple[str, str], ...] = ()

    # ---- CUDA / driver -------------------------------------------------------------
    def minor_compat_driver(self, cuda: str | None) -> str | None:
        """Minimum driver for any CUDA `major.x` under minor-version compatibility."""
        parts = parse_version(cuda)
        if not parts:
            return None
        return dict(self.minor_compat).get(str(parts[0]))

    def cuda_release(self, cuda: str | None) -> CudaRelease | None:
        """The row for `12.8` or `12.8.1`; None when unknown."""
        for row in self.cuda_releases:
            if same_release(cuda, row.cuda):
                return row
        return None

    def nearest_cuda_release(self, cuda: str | None) -> CudaRelease | None:
        """The known row closest below `cuda` (or the oldest), for versions newer than the data."""
        wanted = parse_version(cuda)
        if wanted is None:
            return None
        best = None
        for row in self.cuda_releases:
            if (parse_version(row.cuda) or ()) <= wanted[:2]:
                best = row
        return best or self.cuda_releases[0]

    def ga_driver(self, cuda: str | None) -> str | None:
        """Driver of the GA release (or the named update, `12.8.1`) of `cuda`."""
        row = self.cuda_release(cuda)
        if row is None:
            return None
        parts = parse_version(cuda) or ()
        if len(parts) >= 3:
            exact = ".".join(str(p) for p in parts[:3])
            for name, driver in row.update_drivers:
                if name == exact:
                    return driver
        return row.ga_driver

    def max_cuda_for_driver(self, driver: str | None) -> str | None:
        """Highest CUDA whose GA driver minimum `driver` meets (what nvidia-smi shows)."""
        from dlbox.hostenv.versions import version_at_least

        best = None
        for row in self.cuda_releases:
            if version_at_least(driver, row.ga_driver):
                best = row.cuda
        return best

    def last_driver_branch(self, cc: str | None) -> tuple[int, str] | None:
        """(branch, architecture) of the last driver branch for a GPU of capability `cc`:
        (470, "Kepler") for sm_37; None when current drivers still support it (or unknown)."""
        gpu = compute_capability_tuple(cc)
        if gpu is None:
            return None
        for below, branch, architecture in self.last_driver_branches:
            if gpu < (compute_capability_tuple(below) or (0, 0)):
                return int(branch), architecture
        return None

    def cudnn_min_cc(self, cudnn: str | None) -> str | None:
        """Lowest compute capability cuDNN `cudnn` ("9.1", "8.9.2") supports; None if unknown."""
        parts = parse_version(cudnn)
        if not parts:
            return None
        table = dict(self.cudnn_min_compute_capability)
        for key in (".".join(map(str, parts[:2])), str(parts[0])):
            if key in table:
                return table[key]
        return None

    def cuda_archs(self, cuda: str | None) -> tuple[str, ...]:
        row = self.cuda_release(cuda) or self.nearest_cuda_release(cuda)
        return row.archs if row else ()

    # ---- frameworks ----------------------------------------------------------------
    def torch_release(self, version: str | None) -> TorchRelease | None:
        for row in self.torch:
            if same_release(version, row.release):
                return row
        return None

    def tensorflow_release(self, version: str | None) -> TensorflowRelease | None:
        for row in self.tensorflow:
            if same_release(version, row.release):
                return row
        return None

    def jax_release(self, version: str | None) -> JaxRelease | None:
        for row in self.jax:
            if version in row.versions:
                return row
        for row in self.jax:
            if same_release(version, row.release):
                return row
        return None


def nearest_release(rows: tuple[Any, ...], version: str | None) -> Any | None:
    """The newest row not newer than `version`, else the oldest row (rows newest first)."""
    wanted = parse_version(version)
    if wanted is None or not rows:
        return None
    for row in rows:
        if (parse_version(row.release) or ()) <= wanted:
            return row
    return rows[-1]


def _resource_json(name: str) -> dict[str, Any]:
    try:
        text = resources.files("dlbox.hostenv").joinpath("matrix").joinpath(name).read_text("utf-8")
        return json.loads(text)
    except (OSError, ValueError) as error:  # a broken install, not a host problem
        raise HostEnvError(
            f"compatibility data {name} is missing or unreadable: {error}",
            hint="reinstall dlbox (pip install --force-reinstall dlbox)",
        ) from error


def _check_cc(values: list[str], where: str) -> tuple[str, ...]:
    for value in values:
        if compute_capability_tuple(value) is None:
            raise HostEnvError(f"bad compute capability {value!r} in {where}")
    return tuple(values)


@lru_cache(maxsize=1)
def load_matrix() -> Matrix:
    cuda_doc = _resource_json("cuda.json")
    torch_doc = _resource_json("torch.json")
    tf_doc = _resource_json("tensorflow.json")
    jax_doc = _resource_json("jax.json")

    cuda_rows = tuple(
        CudaRelease(
            cuda=row["cuda"],
            ga_driver=row["ga_driver"],
            update_drivers=tuple(sorted(row.get("update_drivers", {}).items())),
            archs=_check_cc(row["archs"], f"cuda.json {row['cuda']}"),
            source=row["source"],
            checked=row["checked"],
            uncertain=row.get("uncertain", False),
            note=row.get("note", ""),
        )
        for row in cuda_doc["releases"]
    )
    minor_compat = tuple(
        (major, entry["min_driver"]) for major, entry in cuda_doc["minor_version_compat"].items()
    )
    arch_sets = torch_doc["arch_sets"]
    torch_rows = tuple(
        TorchRelease(
            release=row["release"],
            versions=tuple(row["versions"]),
            released=row["released"],
            python=tuple(row["python"]),
            pypi_default=row.get("pypi_default"),
            variants=tuple(
                TorchVariant(
                    name=variant["name"],
                    cuda=variant["cuda"],
                    cudnn=variant.get("cudnn"),
                    archs=_check_cc(arch_sets[variant["arch_set"]]["archs"], variant["arch_set"]),
                    ptx=_check_cc(arch_sets[variant["arch_set"]]["ptx"], variant["arch_set"]),
                )
                for variant in row["variants"]
            ),
            source=row["source"],
            checked=row["checked"],
            uncertain=row.get("uncertain", False),
            note=row.get("note", ""),
        )
        for row in torch_doc["releases"]
    )
    tf_rows = tuple(
        TensorflowRelease(
            release=row["release"],
            versions=tuple(row["versions"]),
            python=tuple(row["python"]),
            cuda=row["cuda"],
            cudnn=row["cudnn"],
            pip_cuda_extra=bool(row["pip_cuda_extra"]),
            source=row["source"],
            checked=row["checked"],
            uncertain=row.get("uncertain", False),
            note=row.get("note", ""),
            gpu_package=row.get("gpu_package", "tensorflow"),
            cpu_package=row.get("cpu_package", "tensorflow-cpu"),
            archs=_check_cc(row.get("archs", []), f"tensorflow.json {row['release']}"),
            ptx=_check_cc(row.get("ptx", []), f"tensorflow.json {row['release']}"),
            and_cuda_python=tuple(row.get("and_cuda_python", ())),
            and_cuda_versions=tuple(sorted(row.get("and_cuda_versions", {}).items())),
        )
        for row in tf_doc["releases"]
    )
    jax_rows = tuple(
        JaxRelease(
            release=row["release"],
            versions=tuple(row["versions"]),
            python=tuple(row["python"]),
            plugins=tuple(JaxPlugin(**plugin) for plugin in row["plugins"]),
            source=row["source"],
            checked=row["checked"],
            uncertain=row.get("uncertain", False),
            note=row.get("note", ""),
        )
        for row in jax_doc["releases"]
    )
    return Matrix(
        cuda_releases=cuda_rows,
        minor_compat=minor_compat,
        torch=torch_rows,
        tensorflow=tf_rows,
        tensorflow_min_cc=tuple(tf_doc["min_compute_capability"].items()),
        jax=jax_rows,
        checked=cuda_doc["checked"],
        torch_wheel_index=torch_doc["wheel_index"],
        cudnn_min_compute_capability=tuple(
            torch_doc.get("cudnn_min_compute_capability", {}).get("minimums", {}).items()),
        last_driver_branches=tuple(
            (entry["below_compute_capability"], entry["branch"], entry["architecture"])
            for entry in sorted(
                cuda_doc.get("last_driver_branch", {}).get("branches", ()),
                key=lambda e: compute_capability_tuple(e["below_compute_capability"]) or (0, 0),
            )
        ),
    )
