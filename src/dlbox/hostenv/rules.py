"""Pure rules: HostFacts -> findings `(level, what, why, fix)`, errors first.

Each rule is a small function of (facts, matrix) returning findings; `evaluate(facts)` runs
them all. No probing and no printing here, so every rule is tested on recorded hosts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from dlbox.errors import DlboxError, HostEnvError
from dlbox.hostenv.compat import (
    arch_fit,
    build_fit,
    cuda_arch_range,
    cuda_knows_arch,
    describe_archs,
    driver_fit,
    split_arch_list,
)
from dlbox.hostenv.facts import FrameworkFacts, GpuFacts, HostFacts
from dlbox.hostenv.matrix import Matrix, load_matrix, nearest_release
from dlbox.hostenv.parse import SMI_WARNING
from dlbox.hostenv.probe import UNREACHABLE_FIXES, smi_ended_badly, unreachable_cause
from dlbox.hostenv.resolve import (
    DriverTooOld,
    ResolvedBuild,
    Target,
    cudnn_below_minimum,
    resolve_build,
    target_from_host,
)
from dlbox.hostenv.versions import (
    compute_capability_tuple,
    major_minor,
    parse_version,
    same_release,
)

Level = Literal["ok", "warn", "error"]
LEVEL_ORDER = {"error": 0, "warn": 1, "ok": 2}

SHM_MIN_MIB = 1024  # below this, DataLoader workers with large batches hit "bus error"
DISK_MIN_MIB = 10 * 1024  # a CUDA wheel set or image needs several GB


@dataclass(frozen=True)
class Finding:
    level: Level
    code: str  # stable id, e.g. "driver-too-old"
    what: str
    why: str = ""
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Rule = Callable[[HostFacts, Matrix], list[Finding]]


# ------------------------------------------------------------------------------------------
# helpers


def _sm(cc: str | None) -> str:
    return f"sm_{cc.replace('.', '')}" if cc else "sm_?"


def mib_text(value: int | None) -> str:
    """A size in MiB as people read it, the same in the facts table and the findings:
    "11.2 GiB", "512 MiB"."""
    if value is None:
        return "?"
    return f"{value / 1024:.1f} GiB" if value >= 1024 else f"{value} MiB"


def _gpu_label(gpu: GpuFacts) -> str:
    return f"GPU {gpu.index} {gpu.name} ({_sm(gpu.compute_capability)})"


def _subject(gpus: tuple[GpuFacts, ...], one: str, many: str) -> str:
    """GPUs of one compute capability and the verb that agrees with them, `one` for a GPU,
    `many` for several: "GPU 0 Tesla T4 (sm_75) is", "GPUs 0, 1 Tesla K80 (sm_37) are"."""
    if len(gpus) == 1:
        return f"{_gpu_label(gpus[0])} {one}"
    names = " / ".join(dict.fromkeys(gpu.name for gpu in gpus))
    return (f"GPUs {', '.join(str(gpu.index) for gpu in gpus)} {names} "
            f"({_sm(gpus[0].compute_capability)}) {many}")


def _by_arch(gpus: tuple[GpuFacts, ...]) -> list[tuple[GpuFacts, ...]]:
    """The GPUs grouped by compute capability, in order: identical GPUs (a K80 board's two)
    get one finding, not one each."""
    groups: dict[str | None, list[GpuFacts]] = {}
    for gpu in gpus:
        groups.setdefault(gpu.compute_capability, []).append(gpu)
    return [tuple(group) for group in groups.values()]


def _without_driver_advice(findings: list[Finding]) -> list[Finding]:
    """A build that an arch-not-in-build error replaces gets no advice about the driver its
    CUDA would like (review: "update the driver when convenient" beside "replace it")."""
    if not any(f.code == "arch-not-in-build" for f in findings):
        return findings
    return [f for f in findings if f.code != "driver-below-ga"]


def _usable_gpus(facts: HostFacts) -> tuple[GpuFacts, ...]:
    nvidia = facts.nvidia
    if nvidia.error or not nvidia.driver_version:
        return ()
    return nvidia.gpus


def _pip_line(build: ResolvedBuild) -> str:
    line = "pip install " + " ".join(f"'{r}'" if "[" in r else r for r in build.requirements)
    if build.wheel_index:
        line += f" --index-url {build.wheel_index}"
    return line


def _torch_install(fw: FrameworkFacts, build: ResolvedBuild) -> str:
    """The command that swaps the installed torch for `build`. torch goes first (pip keeps an
    installed torch of the same version from another index), and with it the torchvision /
    torchaudio beside it, which pin one torch each: unpinned, from the same index, pip picks
    the ones made for the new torch."""
    return (f"pip uninstall -y {' '.join(('torch', *fw.companions))} && "
            + _pip_line(replace(build, requirements=(*build.requirements, *fw.companions))))


def _install(fw: FrameworkFacts, build: ResolvedBuild, matrix: Matrix) -> str:
    """The command that swaps the installed `fw` for `build`: torch with its companions, jax
    without the CUDA plugin it had (pip leaves it, and jax loads it still)."""
    if fw.name == "torch":
        return _torch_install(fw, build)
    plugin = _jax_plugin(fw, matrix) if fw.name == "jax" else None
    if plugin is not None:
        return (f"pip uninstall -y jax-{plugin.name}-plugin jax-{plugin.name}-pjrt && "
                f"{_pip_line(build)}")
    return _pip_line(build)


def _resolved(framework: str, facts: HostFacts, matrix: Matrix) -> ResolvedBuild | None:
    return _build(_resolution(framework, facts, matrix))


def _build(outcome: ResolvedBuild | DlboxError) -> ResolvedBuild | None:
    return outcome if isinstance(outcome, ResolvedBuild) else None


def _resolution(framework: str, facts: HostFacts, matrix: Matrix) -> ResolvedBuild | DlboxError:
    return _resolution_for(framework, target_from_host(facts), matrix)


def _resolution_for(framework: str, target: Target,
                    matrix: Matrix) -> ResolvedBuild | DlboxError:
    try:
        return resolve_build(framework, target, matrix)
    except DlboxError as error:
        return error


def _replace_fix(fw: FrameworkFacts, facts: HostFacts, matrix: Matrix) -> str | None:
    """The command that replaces `fw` with the build the resolver picks for this host; where
    no build runs on this driver, the driver update the resolver names (in the GPU's last
    branch) and, after it, the build the resolver picks for that driver (review: a K80 on
    driver 418 was told "install ... one made with an older CUDA"); None where neither."""
    outcome = _resolution(fw.name, facts, matrix)
    if isinstance(outcome, ResolvedBuild):
        return _install(fw, outcome, matrix)
    if not isinstance(outcome, DriverTooOld):
        return None
    target = replace(target_from_host(facts), driver=outcome.needed)
    build = _build(_resolution_for(fw.name, target, matrix))
    if build is None:
        return None
    ceiling = _driver_ceiling(facts, matrix)
    branch = str(ceiling.branch) if ceiling else _driver_branch(outcome.needed)
    return (f"update the NVIDIA driver to >= {outcome.needed} (Ubuntu: sudo apt install "
            f"nvidia-driver-{branch}, then reboot), then install a build it runs: "
            f"{_install(fw, build, matrix)}")


def _cpu_build_fix(framework: str, outcome: ResolvedBuild | DlboxError,
                   install: Callable[[ResolvedBuild], str]) -> str:
    """The fix for a CPU build on a GPU host: `install(build)` where a GPU build resolves
    (`outcome`); where none runs (a driver too old, GPUs no one build covers), keep the CPU
    build, with the resolver's reason and way out: swapping a working CPU build for nothing
    helps no one."""
    if isinstance(outcome, ResolvedBuild):
        return install(outcome)
    way_out = f"; {outcome.hint}" if outcome.hint else ""
    return (f"keep this CPU build: no CUDA build of {framework} runs on this host as it is "
            f"({outcome}){way_out}")


def _driver_branch(driver: str | None) -> str:
    parts = parse_version(driver)
    return str(parts[0]) if parts else "NNN"


def _framework_label(fw: FrameworkFacts) -> str:
    cuda = f"CUDA {fw.cuda}" if fw.cuda else "CPU-only build"
    return f"{fw.name} {fw.version or '?'} ({cuda})"


# ------------------------------------------------------------------------------------------
# NVIDIA driver and GPUs

_SMI_EXPLAIN = (
    (("driver/library version mismatch", "nvml/rm version mismatch"),  # nvidia-smi's, NVML's
     "the NVIDIA kernel module that is loaded and the user-space driver libraries are "
     "different versions, usually after a driver update without a reboot",
     "reboot (or unload and reload the nvidia kernel modules); if it persists, remove the "
     "extra driver packages so one driver version is installed"),
    (("couldn't communicate with the nvidia driver", "driver not loaded"),  # NVML's words
     "the NVIDIA kernel module is not loaded (driver not installed for this kernel, or "
     "blocked by Secure Boot)",
     "install the driver for the running kernel (Ubuntu: sudo ubuntu-drivers install) and "
     "reboot; with Secure Boot, enrol the module signing key"),
    (("gpu is lost",),
     "a GPU stopped answering the driver (fell off the bus: Xid 79 in the kernel log), usually "
     "from overheating, power or a PCIe fault",
     "reboot to recover it; check sudo dmesg | grep -i xid, and the GPU's power, cooling and "
     "seating if it recurs"),
    (("unable to determine the device handle",),
     "the driver cannot reach one of the GPUs (it fell off the bus or failed: look for Xid "
     "errors in the kernel log)",
     "check sudo dmesg | grep -i xid; reboot (or reset it with sudo nvidia-smi -r -i <index>); "
     "if it recurs, check the GPU's power, cooling and seating"),
    (("no devices were found",),
     "the driver is loaded but sees no GPU (GPU not passed through to this VM/container, or "
     "fallen off the bus)",
     "check lspci | grep -i nvidia and the VM/container GPU passthrough; see dmesg for Xid"),
    (("couldn't find libnvidia-ml.so",),
     "nvidia-smi is there but the driver's NVML library (libnvidia-ml.so) is not: the "
     "driver's user-space libraries are missing (a half-removed driver, or a container "
     "started without the NVIDIA runtime)",
     "reinstall the NVIDIA driver (Ubuntu: sudo ubuntu-drivers install) and reboot; in a "
     "container, start it with --gpus all (NVIDIA Container Toolkit)"),
)


def rule_nvidia_probe(facts: HostFacts, matrix: Matrix) -> list[Finding]:
    nvidia = facts.nvidia
    if not nvidia.error:
        return []
    lowered = nvidia.error.lower()
    # NVML without nvidia-smi beside it to ask instead
    tool = "NVML" if nvidia.source == "nvml" else "nvidia-smi"
    what = f"probe {tool} failed: {nvidia.error}"
    for needles, why, fix in _SMI_EXPLAIN:
        if any(needle in lowered for needle in needles):
            return [Finding("error", "nvidia-driver-broken", what, why, fix)]
    if tool == "nvidia-smi" and smi_ended_badly(nvidia.error):
        return [Finding("error", "nvidia-driver-broken", what,
                        "nvidia-smi did not finish normally (no answer in time, a crash, or a "
                        "failure without words): the driver is usually hung or crashed, often "
                        "after a GPU fault (Xid errors in the kernel log)",
                        "reboot (or unload and reload the nvidia kernel modules) after reading "
                        "the cause in the kernel log: sudo dmesg | grep -i -e xid -e nvrm")]
    if tool == "NVML":
        return [Finding("warn", "nvidia-probe-failed", what,
                        "the driver's NVML library is installed but failed, and there is no "
                        "nvidia-smi to ask instead, so GPU checks were skipped; an NVML that "
                        "does not answer is often a hung driver",
                        "reboot if NVML hangs, else reinstall the NVIDIA driver (which "
                        "brings nvidia-smi back); the kernel log says which: "
                        "sudo dmesg | grep -i -e nvrm -e xid")]
    return [Finding("warn", "nvidia-probe-failed", what,
                    "nvidia-smi is installed but its output could not be read, so GPU checks "
                    "were skipped",
                    "run nvidia-smi by hand; report its output if it looks normal")]


def rule_gpus(facts: HostFacts, matrix: Matrix) -> list[Finding]:
    nvidia = facts.nvidia
    gpus = _usable_gpus(facts)
    if nvidia.error:
        return []
    if not gpus:
        if nvidia.driver_version:
            return [Finding("warn", "no-gpu-visible",
                            f"NVIDIA driver {nvidia.driver_version} is installed but no GPU is "
                            "visible", "CUDA_VISIBLE_DEVICES or the container may hide them",
                            "check nvidia-smi -L and CUDA_VISIBLE_DEVICES")]
        runs = [f"{fw.name} {fw.version}" for fw in facts.frameworks
                if fw.installed and not fw.error]
        what = "no NVIDIA GPU: everything runs on the CPU"
        if runs:
            what += f" ({', '.join(runs)})"
        return [Finding("ok", "no-gpu", what,
                        "no NVIDIA driver or GPU was found (NVML and nvidia-smi absent)",
                        "dlbox train picks --device cpu; use a tiny model or few epochs")]
    names = "; ".join(
        f"{_gpu_label(g)}"
        + (f", {mib_text(g.memory_total_mib)}" if g.memory_total_mib else "")
        for g in gpus
    )
    cuda = f", supports CUDA <= {nvidia.cuda_driver_version}" if nvidia.cuda_driver_version else ""
    findings = [Finding("ok", "gpu", f"{len(gpus)} NVIDIA GPU{'s' if len(gpus) > 1 else ''}: "
                        f"{names}; driver {nvidia.driver_version}{cuda}")]
    unknown = [g for g in gpus if not g.compute_capability]
    if unknown:
        findings.append(Finding(
            "warn", "gpu-arch-unknown",
            f"compute capability unknown for {', '.join(g.name for g in unknown)}",
            "this driver's nvidia-smi has no compute_cap field and the name is not in dlbox's "
            "table, so architecture checks are skipped for it",
            "look it up on https://developer.nvidia.com/cuda-gpus and pass "
            "--compute-capability to dlbox doctor --resolve"))
    kinds = {g.compute_capability for g in gpus if g.compute_capability}
    if len(kinds) > 1:
        # by compute capability, not as text (review: "sm_120, sm_70, sm_90")
        ordered = sorted(kinds, key=lambda cc: compute_capability_tuple(cc) or (0, 0))
        findings.append(Finding(
            "ok", "gpus-mixed",
            f"GPUs of {len(kinds)} architectures ({', '.join(_sm(k) for k in ordered)})",
            "a build must carry kernels for every one of them; dlbox checks each",
            "pin a job to one kind with CUDA_VISIBLE_DEVICES=<index> for even speed"))
    return findings


# ------------------------------------------------------------------------------------------
# frameworks vs driver and GPU


def _version_row_warning(fw: FrameworkFacts, rows: tuple[Any, ...], checked: str) -> Finding | None:
    nearest = nearest_release(rows, fw.version)
    if nearest is None or same_release(fw.version, nearest.release):
        return None
    if (parse_version(fw.version) or ()) < (parse_version(rows[-1].release) or ()):
        # review: "update dlbox" cannot help a version older than all of its data
        return Finding(
            "warn", "framework-version-unknown",
            f"{fw.name} {fw.version} is older than dlbox's compatibility data (checked "
            f"{checked}), which starts at {fw.name} {rows[-1].release}",
            f"checks use the oldest known row, {fw.name} {nearest.release}",
            f"results for this version may be off; a {fw.name} of {rows[-1].release} or newer "
            "is checked as it is")
    return Finding(
        "warn", "framework-version-unknown",
        f"{fw.name} {fw.version} is not in dlbox's compatibility data (checked {checked})",
        f"checks use the nearest known row, {fw.name} {nearest.release}",
        "update dlbox for newer data; results for this version may be off")


@dataclass(frozen=True)
class _DriverCeiling:
    branch: int  # the last driver branch that supports `gpu`
    architecture: str
    gpu: GpuFacts

    def below(self, driver: str | None) -> bool:
        """True when `driver` lies beyond this branch (no driver for the GPU reaches it)."""
        parts = parse_version(driver)
        return parts is not None and parts[0] > self.branch

    def why(self) -> str:
        return (f"R{self.branch} is the last driver branch for {self.architecture} GPUs such as "
                f"{_gpu_label(self.gpu)}")


def _driver_ceiling(facts: HostFacts, matrix: Matrix) -> _DriverCeiling | None:
    """The lowest 'last driver branch' among the host's GPUs (Kepler: R470, Maxwell to
    Volta: R580), or None when current drivers support every GPU."""
    best: _DriverCeiling | None = None
    for gpu in _usable_gpus(facts):
        cap = matrix.last_driver_branch(gpu.compute_capability)
        if cap and (best is None or cap[0] < best.branch):
            best = _DriverCeiling(cap[0], cap[1], gpu)
    return best


def _driver_findings(fw: FrameworkFacts, facts: HostFacts, matrix: Matrix) -> list[Finding]:
    driver = facts.nvidia.driver_version
    if not fw.cuda or not driver or not _usable_gpus(facts):
        return []
    ceiling = _driver_ceiling(facts, matrix)
    findings: list[Finding] = []
    fit = driver_fit(matrix, driver, fw.cuda)
    major_only = len(parse_version(fw.cuda) or ()) == 1  # jax plugins: "12", "13"
    if major_only:
        fit = replace(fit, ga_ok=None, known_cuda=True)
    if not fit.known_cuda:
        nearest = matrix.nearest_cuda_release(fw.cuda)
        findings.append(Finding(
            "warn", "cuda-version-unknown",
            f"CUDA {fw.cuda} of {fw.name} is not in dlbox's driver table",
            f"checked against the nearest known row, CUDA {nearest.cuda if nearest else '?'}",
            "update dlbox for newer data"))
    if fit.ok is False:
        better = _resolved(fw.name, facts, matrix)
        wanted: str | None = fit.ga_driver or fit.min_driver
        branch = _driver_branch(wanted)
        if ceiling and ceiling.below(wanted):
            # no driver for this GPU reaches the GA driver: the minimum, if any, in its branch
            wanted = None if ceiling.below(fit.min_driver) else fit.min_driver
            branch = str(ceiling.branch)
        if wanted is None:
            replacement = _replace_fix(fw, facts, matrix)
            fix = (f"no driver runs CUDA {fw.cuda} on this GPU ({ceiling.why() if ceiling else ''}"
                   "): " + (f"install a build this driver runs: {replacement}" if better else
                            replacement or "install a build made with an older CUDA"))
        else:
            fix = (f"update the NVIDIA driver to >= {wanted} (Ubuntu: sudo apt install "
                   f"nvidia-driver-{branch}, then reboot)")
            if ceiling and ceiling.below(fit.ga_driver or fit.min_driver):
                fix += f"; {ceiling.why()}"
            if better is not None:
                fix += f", or install a build this driver runs: {_install(fw, better, matrix)}"
        findings.append(Finding(
            "error", "driver-too-old",
            f"driver {driver} is too old for {_framework_label(fw)}",
            f"CUDA {fw.cuda} needs driver >= {fit.min_driver} even with minor-version "
            f"compatibility; {fw.name} will report no GPU or fail with 'driver is too old'",
            fix))
    elif fit.ga_ok is False:
        fix = f"update the driver to >= {fit.ga_driver} when convenient"
        if ceiling and ceiling.below(fit.ga_driver):
            fix = (f"keep the R{ceiling.branch} driver: {ceiling.why()}, so no driver reaches "
                   f"{fit.ga_driver}; pip wheels run fine this way, only avoid JIT-compiling "
                   "PTX newer than the driver's CUDA")
        findings.append(Finding(
            "warn", "driver-below-ga",
            f"driver {driver} is older than CUDA {fw.cuda}'s own driver {fit.ga_driver}",
            f"{fw.name} runs through minor-version compatibility (driver >= {fit.min_driver}); "
            "code that JIT-compiles newer PTX can fail with 'unsupported toolchain'",
            fix))
    return findings


def cudnn_from_torch(value: str | None) -> str | None:
    """torch.backends.cudnn.version() as "major.minor": 8500 -> "8.5", 90100 -> "9.1",
    91002 -> "9.10"; a dotted version ("9.1.0.70") keeps its first two parts."""
    if not value:
        return None
    if "." in value:
        return major_minor(value)
    if not value.isdigit():
        return None
    number = int(value)
    if number >= 10000:  # cuDNN 9+: major * 10000 + minor * 100 + patch
        return f"{number // 10000}.{number % 10000 // 100}"
    return f"{number // 1000}.{number % 1000 // 100}"  # cuDNN 8: major * 1000 + minor * 100


def _torch_cudnn(fw: FrameworkFacts, matrix: Matrix) -> str | None:
    """The cuDNN torch uses: what it reported, else its nvidia-cudnn package, else the data."""
    found = cudnn_from_torch(fw.cudnn) or major_minor(fw.cudnn_installed)
    if found:
        return found
    release = matrix.torch_release(fw.version) or nearest_release(matrix.torch, fw.version)
    for variant in release.variants if release else ():
        if same_release(fw.cuda, variant.cuda):
            return variant.cudnn
    return None


def _torch_archs(
    fw: FrameworkFacts, matrix: Matrix
) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """SASS and PTX targets of the installed torch: its own arch list, else the matrix's."""
    if fw.arch_list:
        sass, ptx = split_arch_list(fw.arch_list)
        return sass, ptx, "torch.cuda.get_arch_list()"
    release = matrix.torch_release(fw.version) or nearest_release(matrix.torch, fw.version)
    if release is None:
        return (), (), ""
    for variant in release.variants:
        if same_release(fw.cuda, variant.cuda):
            where = f"dlbox matrix (torch {release.release} {variant.name})"
            return variant.archs, variant.ptx, where
    return (), (), ""


def _probe_failed(fw: FrameworkFacts, label: str, facts: HostFacts) -> Finding:
    """The import probe of `fw` failed: why and fix by how (an error it printed, a crash by
    signal, an exit, a hang past its time limit). Its GPU checks use its files alone then,
    and it gets no "fits this host"."""
    error = fw.error or ""
    what = f"probe {fw.name} failed: {error}"
    if "(SIGILL)" in error:
        return Finding(
            "warn", "probe-failed", what,
            f"{label} stopped on an illegal instruction while loading: this build was made "
            "for newer CPU instructions (or another platform) than this host's CPU runs",
            f"install a build made for this host's CPU: dlbox doctor --resolve {fw.name}")
    if "(SIGKILL)" in error:
        return Finding(
            "warn", "probe-failed", what,
            f"{label} was killed from outside while loading, usually for memory: the kernel's "
            "OOM killer or a container's memory limit",
            "free memory or raise the limit, and check the kernel log for the kill: "
            "sudo dmesg | grep -i -e oom -e killed")
    if "killed by signal" in error:  # SIGSEGV, SIGBUS, ...
        return Finding(
            "warn", "probe-failed", what,
            f"{label} crashed while loading: this build cannot run on this host (its files "
            "are damaged, or it is incompatible with this host's libraries)",
            "reinstall it with the pip command it came from, adding --force-reinstall "
            "--no-cache-dir; if it still crashes, install a build made for this host: "
            f"dlbox doctor --resolve {fw.name}")
    if "timed out" in error:
        if not _usable_gpus(facts):
            return Finding("warn", "probe-failed", what,
                           f"importing {label} did not finish in time",
                           f"import it by hand to see where it stops: "
                           f"python -c 'import {fw.name}'")
        return Finding(
            "warn", "probe-failed", what,
            f"importing {label} did not finish in time; on a GPU host that is often a wedged "
            "NVIDIA driver, which CUDA's start-up waits on",
            f"if nvidia-smi or python -c 'import {fw.name}' hangs too, reboot to clear a "
            "wedged driver; the kernel log shows it: sudo dmesg | grep -i -e xid -e nvrm")
    return Finding("warn", "probe-failed", what,
                   f"{label} is installed but could not be imported",
                   f"run python -c 'import {fw.name}' to see the full error")


def rule_torch(facts: HostFacts, matrix: Matrix) -> list[Finding]:
    fw = facts.framework("torch")
    if fw is None:
        return []
    findings: list[Finding] = []
    if fw.error:
        findings.append(_probe_failed(fw, "torch", facts))
    unknown = _version_row_warning(fw, matrix.torch, matrix.checked)
    if unknown:
        findings.append(unknown)
    gpus = _usable_gpus(facts)
    if not gpus:
        return findings
    if not fw.cuda:
        findings.append(Finding(
            "warn", "cpu-build-on-gpu-host",
            f"{_framework_label(fw)} on a host with a usable NVIDIA GPU",
            "this torch has no CUDA support: torch.cuda.is_available() is False and training "
            "runs on the CPU",
            _cpu_build_fix("torch", _resolution("torch", facts, matrix),
                           lambda build: _torch_install(fw, build))))
        return findings
    driver_findings = _driver_findings(fw, facts, matrix)
    findings += driver_findings
    sass, ptx, arch_source = _torch_archs(fw, matrix)
    arch_error = False
    if sass or ptx:
        for group in _by_arch(gpus):
            cc = group[0].compute_capability
            how = build_fit(matrix, cc, sass, ptx, fw.cuda)
            if how == "none":
                arch_error = True
                fix = (_replace_fix(fw, facts, matrix) or
                       f"install a torch build compiled for {_sm(cc)}")
                findings.append(Finding(
                    "error", "arch-not-in-build",
                    f"{_subject(group, 'is', 'are')} not in {_framework_label(fw)}'s "
                    "arch list",
                    f"the build has kernels for {describe_archs(sass, ptx)} ({arch_source}); "
                    "CUDA calls fail with 'no kernel image is available for execution on the "
                    "device'",
                    fix))
            elif how == "ptx":
                findings.append(Finding(
                    "warn", "arch-ptx-only",
                    f"{_subject(group, 'runs', 'run')} {_framework_label(fw)} only through "
                    "PTX JIT",
                    "no native kernels for this GPU: the first start compiles them (minutes) "
                    "and some kernels may be slower",
                    "install a build with native kernels when one exists"))
    cudnn = _torch_cudnn(fw, matrix)
    for group in _by_arch(gpus) if not arch_error else ():  # no kernels say it first
        below = cudnn_below_minimum(matrix, cudnn, group[0].compute_capability)
        if below:
            better = _resolved("torch", facts, matrix)
            findings.append(Finding(
                "error", "arch-not-in-build",
                f"{_subject(group, 'is', 'are')} not supported by the cuDNN of "
                f"{_framework_label(fw)}",
                f"torch has kernels for it, but {below}: cuDNN reports an architecture "
                "mismatch",
                _torch_install(fw, better) if better else
                "set torch.backends.cudnn.enabled = False (slow), or use another GPU"))
    if fw.gpu_available is False and not any(f.code == "driver-too-old" for f in driver_findings):
        findings.append(Finding(
            "error", "framework-gpu-unavailable",
            f"torch.cuda.is_available() is False with {_framework_label(fw)}",
            "the driver and build fit, yet torch sees no GPU: CUDA_VISIBLE_DEVICES may be "
            "empty, or the process lacks access to /dev/nvidia*",
            "check echo $CUDA_VISIBLE_DEVICES and ls -l /dev/nvidia*; in a container use "
            "--gpus all"))
    if not any(f.level != "ok" for f in findings):
        findings.append(Finding("ok", "framework-ok",
                                f"{_framework_label(fw)} runs on every GPU"
                                + (f" (arch list: {describe_archs(sass, ptx)})" if sass else "")))
    return _without_driver_advice(findings)


def rule_tensorflow(facts: HostFacts, matrix: Matrix) -> list[Finding]:
    fw = facts.framework("tensorflow")
    if fw is None:
        return []
    findings: list[Finding] = []
    if fw.error:
        findings.append(_probe_failed(fw, "TensorFlow", facts))
    unknown = _version_row_warning(fw, matrix.tensorflow, matrix.checked)
    if unknown:
        findings.append(unknown)
    row = matrix.tensorflow_release(fw.version) or nearest_release(matrix.tensorflow, fw.version)
    gpus = _usable_gpus(facts)
    if not gpus or row is None:
        return findings
    outcome = _resolution("tensorflow", facts, matrix)
    better = _build(outcome)
    fix_install = f"pip install --force-reinstall {_pip_line(better)[12:]}" if better else ""
    if not fw.cuda:
        findings.append(Finding(
            "warn", "cpu-build-on-gpu-host",
            f"{_framework_label(fw)} on a host with a usable NVIDIA GPU",
            "this TensorFlow was built without CUDA, so it runs on the CPU",
            _cpu_build_fix("tensorflow", outcome, lambda _build: fix_install)))
        return findings
    mismatches = []
    if fw.cuda and major_minor(fw.cuda) != major_minor(row.cuda):
        mismatches.append(f"built with CUDA {fw.cuda}")
    installed = parse_version(fw.cudnn_installed)
    tested = parse_version(row.cudnn)
    if installed and tested and installed[0] != tested[0]:
        mismatches.append(f"cuDNN {fw.cudnn_installed} is installed (nvidia-cudnn pip package)")
    if mismatches:
        # where the probe saw TensorFlow list the GPU, it did find its libraries (review: an
        # error saying it "uses the CPU" on such a host)
        listed = fw.gpu_available is True
        why = ("TensorFlow lists the GPU, but work that needs the other CUDA/cuDNN (cuDNN "
               "convolutions) can fail with a version error" if listed else
               "TensorFlow loads only the CUDA/cuDNN major it was built for; with another it "
               "logs 'Cannot dlopen some GPU libraries' or a cuDNN version error and uses the "
               "CPU")
        if fix_install:  # the caveat here, so that the fix pastes as a command
            why += ("; the fix reinstalls the CUDA libraries TensorFlow wants: if torch shares "
                    "this environment and needs another cuDNN, give TensorFlow its own "
                    "virtual environment")
        findings.append(Finding(
            "warn" if listed else "error", "tf-cuda-mismatch",
            f"tensorflow {fw.version} is tested with CUDA {row.cuda} / cuDNN {row.cudnn}, "
            f"but {' and '.join(mismatches)}",
            why, fix_install or f"install CUDA {row.cuda} and cuDNN {row.cudnn}"))
    findings += _driver_findings(replace_cuda(fw, row.cuda), facts, matrix)
    # the build's own arch list, as rule_torch checks it (review: TF 2.20, sm_60+, on a GTX
    # 980 was said to lack its CUDA libraries, and told to reinstall 2.21 with the same list)
    sass, ptx = split_arch_list(fw.arch_list) if fw.arch_list else (row.archs, row.ptx)
    arch_source = ("tf.sysconfig.get_build_info()" if fw.arch_list else
                   f"dlbox matrix (tensorflow {row.release})")
    for group in _by_arch(gpus):
        cc = group[0].compute_capability
        if (sass or ptx) and arch_fit(cc, sass, ptx) == "none":
            findings.append(Finding(
                "error", "arch-not-in-build",
                f"{_subject(group, 'is', 'are')} not in {_framework_label(fw)}'s arch list",
                f"the build has kernels for {describe_archs(sass, ptx)} ({arch_source}); "
                "TensorFlow ignores a GPU it has no kernels for ('Ignoring visible gpu "
                "device') and runs on the CPU",
                fix_install if fix_install and better and better.version != fw.version
                else (None if better else _replace_fix(fw, facts, matrix))
                or f"install a TensorFlow build compiled for {_sm(cc)}, or run on CPU"))
            continue
        if cuda_knows_arch(matrix, row.cuda, cc) is False:
            rng = cuda_arch_range(matrix, row.cuda)
            if rng and parse_version(cc) < parse_version(rng[0]):  # type: ignore[operator]
                findings.append(Finding(
                    "error", "arch-not-in-build",
                    f"{_subject(group, 'is', 'are')} too old for tensorflow {fw.version} "
                    f"(CUDA {row.cuda})",
                    f"CUDA {row.cuda} supports {_sm(rng[0])} and newer",
                    f"use an older TensorFlow: {fix_install}" if fix_install
                    else _replace_fix(fw, facts, matrix)
                    or "use an older TensorFlow, or run on CPU"))
            else:
                findings.append(Finding(
                    "warn", "arch-ptx-only",
                    f"{_subject(group, 'is', 'are')} newer than CUDA {row.cuda} of "
                    f"tensorflow {fw.version}",
                    "TensorFlow runs it only through PTX JIT: slow first start, XLA may fail",
                    "watch for ptxas errors; consider torch or jax for this GPU"))
    # a GPU too old for the build's CUDA is an arch error too: not also "lists no GPU"
    arch_error = any(f.code == "arch-not-in-build" for f in findings)
    if fw.gpu_available is False and not mismatches and not arch_error:
        findings.append(Finding(
            "error", "framework-gpu-unavailable",
            f"TensorFlow {fw.version} lists no GPU",
            "tf.config.list_physical_devices('GPU') is empty although a GPU is usable; its "
            "CUDA libraries are likely missing",
            fix_install or "pip install 'tensorflow[and-cuda]'"))
    if not any(f.level != "ok" for f in findings):
        findings.append(Finding("ok", "framework-ok", f"{_framework_label(fw)} fits this host"))
    return _without_driver_advice(findings)


def replace_cuda(fw: FrameworkFacts, cuda: str) -> FrameworkFacts:
    return replace(fw, cuda=cuda)


def _jax_plugin(fw: FrameworkFacts, matrix: Matrix) -> Any:
    """The CUDA plugin of the installed jax (the matrix's row for its CUDA), or None."""
    row = matrix.jax_release(fw.version) or nearest_release(matrix.jax, fw.version)
    return next((p for p in (row.plugins if row else ()) if same_release(fw.cuda, p.cuda)),
                None)


def _jax_arch_findings(fw: FrameworkFacts, gpus: tuple[GpuFacts, ...], matrix: Matrix,
                       better: ResolvedBuild | None) -> list[Finding]:
    """A GPU below the installed plugin's minimum compute capability (cuda13: sm_75)."""
    plugin = _jax_plugin(fw, matrix)
    if plugin is None:
        return []
    minimum = parse_version(plugin.min_compute_capability) or (0,)
    findings = []
    for group in _by_arch(gpus):
        cc = parse_version(group[0].compute_capability)
        if cc is None or cc >= minimum:
            continue
        findings.append(Finding(
            "error", "arch-not-in-build",
            f"{_subject(group, 'is', 'are')} too old for jax's {plugin.name} plugin "
            f"(CUDA {fw.cuda})",
            f"the {plugin.name} plugin needs compute capability >= "
            f"{plugin.min_compute_capability} (JAX install guide): jax finds no usable GPU",
            (f"pip uninstall -y jax-{plugin.name}-plugin jax-{plugin.name}-pjrt && "
             f"{_pip_line(better)}") if better else
            ("no jax GPU build runs on this GPU; to run jax on the CPU, remove the plugin: "
             f"pip uninstall -y jax-{plugin.name}-plugin jax-{plugin.name}-pjrt")))
    return findings


def rule_jax(facts: HostFacts, matrix: Matrix) -> list[Finding]:
    fw = facts.framework("jax")
    if fw is None:
        return []
    findings: list[Finding] = []
    if fw.error:
        findings.append(_probe_failed(fw, "jax", facts))
    if matrix.jax_release(fw.version) is None:
        unknown = _version_row_warning(fw, matrix.jax, matrix.checked)
        if unknown:
            findings.append(unknown)
    gpus = _usable_gpus(facts)
    if not gpus:
        return findings
    outcome = _resolution("jax", facts, matrix)
    better = _build(outcome)
    if not fw.cuda:
        findings.append(Finding(
            "warn", "cpu-build-on-gpu-host",
            f"jax {fw.version} without a CUDA plugin on a host with a usable NVIDIA GPU",
            "no jax-cuda12-plugin / jax-cuda13-plugin is installed, so jax runs on the CPU",
            _cpu_build_fix("jax", outcome, _pip_line)))
        return findings
    findings += _driver_findings(fw, facts, matrix)
    findings += _jax_arch_findings(fw, gpus, matrix, better)
    # a plugin without kernels for the GPU, or a driver too old for it, is why jax lists none
    if fw.gpu_available is False and not any(
            f.code in ("arch-not-in-build", "driver-too-old") for f in findings):
        findings.append(Finding(
            "error", "framework-gpu-unavailable", f"jax {fw.version} lists no GPU",
            "jax.devices('gpu') failed although a GPU is usable",
            "run python -c 'import jax; print(jax.devices())' for the plugin's error"))
    if not any(f.level != "ok" for f in findings):
        findings.append(Finding("ok", "framework-ok", f"{_framework_label(fw)} fits this host"))
    return _without_driver_advice(findings)


# ------------------------------------------------------------------------------------------
# Docker, shared memory, disk


def _docker_fix(said: str) -> str:
    """The fix for an engine that could not be reached, by the cause in its error (`said`,
    lowered): doctor's own for an engine that does not answer or is not installed, else
    `dlbox image`'s (hostenv.probe.UNREACHABLE_FIXES), the same words for the same cause."""
    if "timed out" in said or "did not answer" in said:
        return "the engine takes connections but does not answer; restart it: " \
               "sudo systemctl restart docker"
    if "neither the docker sdk nor the docker cli" in said:
        return "install Docker Engine (https://docs.docker.com/engine/install/), then start " \
               "it: sudo systemctl start docker"
    return UNREACHABLE_FIXES[unreachable_cause(said)]


def rule_docker(facts: HostFacts, matrix: Matrix) -> list[Finding]:
    docker = facts.docker
    if not docker.reachable:
        # an engine that answered with something dlbox cannot read is there: installing it
        # again is not the fix (in a replay, the recording's file is what is damaged)
        said = (docker.error or "").lower()
        unreadable = said.startswith("unparsable docker info") and not any(
            words in said for words in ("permission denied", "cannot connect", "not found"))
        return [Finding("warn", "docker-unreachable",
                        f"probe docker failed: {docker.error or 'engine not reachable'}",
                        "dlbox image build/run and notebook --container need a Docker engine",
                        "run `docker info --format '{{json .}}'` to see what the engine "
                        "answered (replaying a recording: its docker-info.json is damaged; "
                        "record it again)" if unreadable else _docker_fix(said))]
    findings = [Finding("ok", "docker", f"Docker engine {docker.server_version}; runtimes: "
                        f"{', '.join(docker.runtimes) or 'none'}"
                        + ("; CDI spec for nvidia.com/gpu" if docker.cdi_nvidia else "")
                        + ("; nvidia-container-runtime-hook (docker run --gpus)"
                           if docker.nvidia_hook and not docker.nvidia_runtime else ""))]
    if _usable_gpus(facts) and not docker.gpu_capable:
        findings.append(Finding(
            "warn", "docker-no-nvidia-runtime",
            "the GPU is not available to Docker containers: no 'nvidia' runtime, no CDI "
            "spec for nvidia.com/gpu and no nvidia-container-runtime-hook",
            "docker run --gpus all fails with 'could not select device driver \"\" with "
            "capabilities: [[gpu]]'",
            "install the NVIDIA Container Toolkit, then: sudo nvidia-ctk runtime configure "
            "--runtime=docker && sudo systemctl restart docker"))
    shm = docker.default_shm_mib
    if shm is not None and shm < SHM_MIN_MIB:
        findings.append(Finding(
            "ok", "docker-shm",
            f"containers get {shm} MiB of /dev/shm by default",
            f"DataLoader workers pass batches through /dev/shm; {shm} MiB is too small for "
            "them (dlbox image run and dlbox notebook --container give their containers more)",
            "start other training containers with --shm-size=2g or --ipc=host"))
    return findings


def rule_shm(facts: HostFacts, matrix: Matrix) -> list[Finding]:
    shm = facts.system.shm_total_mib
    if shm is None or shm >= SHM_MIN_MIB:
        return []
    where = " (inside a container)" if facts.system.in_container else ""
    return [Finding(
        "warn", "shm-small", f"/dev/shm is {shm} MiB{where}",
        "DataLoader workers pass batches through shared memory and crash with 'bus error' or "
        "'No space left on device' when it is small",
        "restart the container with --shm-size=2g (or --ipc=host), or use DataLoader "
        "num_workers=0")]


def rule_disk(facts: HostFacts, matrix: Matrix) -> list[Finding]:
    free = facts.system.disk_free_mib
    if free is None or free >= DISK_MIN_MIB:
        return []
    return [Finding(
        "warn", "disk-low",
        f"{mib_text(free)} free on {facts.system.disk_path or 'the working disk'}",
        "CUDA wheels and images take several GB; datasets and checkpoints need room too",
        "free some space, or keep data, runs and images on a larger disk")]


def rule_smi_warnings(facts: HostFacts, matrix: Matrix) -> list[Finding]:
    """nvidia-smi's warnings with its exit code 14 (a corrupted infoROM): it answered, and the
    probe kept the answer, so nothing else says it."""
    return [Finding(
        "warn", "gpu-inforom",
        f"nvidia-smi warns: {failure.why}",
        "the GPU may still work, but what its infoROM keeps (ECC and power settings) can be "
        "wrong, and nvidia-smi exits 14 on every call, which fails scripts that check it",
        "report it to the GPU's vendor or cloud provider (an infoROM reflash or a "
        "replacement); nvidia-smi -q shows the infoROM versions")
        for failure in facts.failures if failure.probe == SMI_WARNING]


def rule_probe_failures(facts: HostFacts, matrix: Matrix) -> list[Finding]:
    """Probe failures no other rule explains (docker and nvidia ones have their own)."""
    explained = {"docker", "nvidia", "nvidia-smi", "nvidia-smi --query-gpu", "NVML", "torch",
                 "tensorflow", "jax", SMI_WARNING}
    findings = []
    for failure in facts.failures:
        if failure.probe in explained:
            continue
        findings.append(Finding("warn", "probe-failed", str(failure),
                                "this part of the host could not be checked",
                                "see the message; run the tool by hand"))
    return findings


RULES: tuple[Rule, ...] = (
    rule_nvidia_probe,
    rule_gpus,
    rule_torch,
    rule_tensorflow,
    rule_jax,
    rule_docker,
    rule_shm,
    rule_disk,
    rule_smi_warnings,
    rule_probe_failures,
)


def evaluate(facts: HostFacts, matrix: Matrix | None = None) -> list[Finding]:
    """All findings for `facts`, errors first, then warnings, then ok notes."""
    matrix = matrix or load_matrix()
    findings: list[Finding] = []
    for rule in RULES:
        try:
            findings.extend(rule(facts, matrix))
        except Exception as error:  # noqa: BLE001 - a rule bug must not hide the others
            findings.append(Finding("warn", "rule-failed",
                                    f"check {rule.__name__} failed: {error}",
                                    "a bug in dlbox; the other checks still ran",
                                    "report it with the output of dlbox doctor --json"))
    return sorted(findings, key=lambda f: LEVEL_ORDER[f.level])


def has_errors(findings: list[Finding]) -> bool:
    return any(f.level == "error" for f in findings)


__all__ = ["Finding", "RULES", "Target", "evaluate", "has_errors"]


def broken_driver_error(facts: HostFacts, framework: str = "torch") -> HostEnvError | None:
    """Why no `framework` build can be picked for a host whose NVIDIA driver is installed but
    failing (a CPU-only pick would be wrong advice there), or None."""
    if not facts.nvidia.error:
        return None
    # a whole command: flags for a given host are refused beside --replay (review: the hint
    # "or --cpu" added to a replay was refused with that replay as its hint)
    return HostEnvError(
        f"the NVIDIA driver on this host is not working ({facts.nvidia.error}), so its GPU "
        "cannot be matched to a build",
        hint=f"fix the driver first (dlbox doctor says how), or resolve for a host given by "
             f"flags instead: dlbox doctor --resolve {framework} --cpu (or --driver VERSION "
             "--compute-capability X.Y in place of --cpu)",
    )
