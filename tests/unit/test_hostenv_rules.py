"""Rules on recorded hosts (tests/fixtures/hosts/*): exact findings and the resolved builds."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from dlbox.errors import HostEnvError
from dlbox.hostenv.facts import FrameworkFacts, GpuFacts, HostFacts, NvidiaFacts, SystemFacts
from dlbox.hostenv.probe import facts_from_raw, load_raw
from dlbox.hostenv.resolve import resolve_build, target_from_host
from dlbox.hostenv.rules import LEVEL_ORDER, evaluate, has_errors

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"
SCENARIOS = sorted(p.name for p in HOSTS.iterdir() if (p / "expected.json").is_file())


def host(name: str) -> HostFacts:
    return facts_from_raw(load_raw(HOSTS / name))


def test_enough_scenarios() -> None:
    assert len(SCENARIOS) >= 10


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_findings_and_resolved_builds(name: str) -> None:
    expected = json.loads((HOSTS / name / "expected.json").read_text())
    facts = host(name)
    findings = evaluate(facts)
    assert [[f.level, f.code] for f in findings] == expected["findings"]
    for finding in findings:
        assert finding.what
        if finding.level != "ok":
            assert finding.why and finding.fix, finding
    target = target_from_host(facts)
    for framework, (version, variant) in expected["resolve"].items():
        build = resolve_build(framework, target)
        assert (build.version, build.variant) == (version, variant), framework
    assert has_errors(findings) == any(level == "error" for level, _ in expected["findings"])


def test_errors_come_first_everywhere() -> None:
    for name in SCENARIOS:
        levels = [LEVEL_ORDER[f.level] for f in evaluate(host(name))]
        assert levels == sorted(levels), name


def test_old_driver_finding_names_both_fixes() -> None:
    finding = evaluate(host("old-driver-new-cuda-build"))[0]
    assert finding.what == "driver 470.223.02 is too old for torch 2.5.1+cu124 (CUDA 12.4)"
    assert "driver >= 525.60.13" in finding.why
    assert "nvidia-driver-550" in finding.fix
    assert ("pip install torch==2.7.1 --index-url https://download.pytorch.org/whl/cu118"
            in finding.fix)


def test_new_gpu_old_torch_says_no_kernel_image() -> None:
    finding = evaluate(host("new-gpu-old-torch"))[0]
    assert finding.what.startswith("GPU 0 NVIDIA GeForce RTX 5090 (sm_120) is not in torch 2.6.0")
    assert "no kernel image is available" in finding.why
    assert finding.fix.endswith("pip install torch==2.11.0 --index-url "
                                "https://download.pytorch.org/whl/cu128")


def test_two_gpus_only_the_old_one_fails() -> None:
    findings = evaluate(host("two-gpus-mixed"))
    errors = [f for f in findings if f.level == "error"]
    assert len(errors) == 1 and "GPU 1 NVIDIA GeForce GTX 1080 Ti (sm_61)" in errors[0].what
    assert "torch==2.14.1 --index-url https://download.pytorch.org/whl/cu126" in errors[0].fix
    gpu = next(f for f in findings if f.code == "gpu")
    assert "supports CUDA <= 12.6" in gpu.what  # from nvidia-smi -q


def test_mismatch_scenario_explains_the_reboot() -> None:
    finding = evaluate(host("nvml-driver-library-mismatch"))[0]
    assert finding.what == ("probe nvidia-smi failed: Failed to initialize NVML: "
                            "Driver/library version mismatch")
    assert "reboot" in finding.fix


def test_tensorflow_mismatch_names_cudnn() -> None:
    finding = evaluate(host("tensorflow-cuda-mismatch"))[0]
    assert "tested with CUDA 12.2 / cuDNN 8.9" in finding.what
    assert "cuDNN 9.1.0.70 is installed" in finding.what
    assert "tensorflow[and-cuda]==2.21.0" in finding.fix


def test_no_container_runtime_fix() -> None:
    finding = evaluate(host("gpu-no-container-runtime"))[0]
    assert finding.code == "docker-no-nvidia-runtime"
    assert "nvidia-ctk runtime configure --runtime=docker" in finding.fix


def test_cpu_only_host_says_what_runs() -> None:
    findings = evaluate(host("cpu-only-host"))
    assert findings[0].what == "no NVIDIA GPU: everything runs on the CPU (torch 2.13.0+cpu)"


def test_unknown_newer_torch_warns_with_nearest_row() -> None:
    facts = host("healthy-gpu-rtx3090")
    newer = replace(facts, frameworks=(FrameworkFacts(
        name="torch", installed=True, version="2.99.0+cu126", cuda="12.6", gpu_available=True),))
    findings = evaluate(newer)
    unknown = [f for f in findings if f.code == "framework-version-unknown"]
    assert len(unknown) == 1
    assert unknown[0].level == "warn"
    assert "nearest known row, torch 2.15" in unknown[0].why
    assert not has_errors(findings)


def test_a_torch_older_than_the_data_is_not_told_to_update_dlbox() -> None:
    """Review: torch 1.13.1 was "not in dlbox's compatibility data" with the fix "update
    dlbox for newer data", which cannot help a version older than all of it."""
    facts = host("healthy-gpu-rtx3090")
    older = replace(facts, frameworks=(FrameworkFacts(
        name="torch", installed=True, version="1.13.1+cu117", cuda="11.7", gpu_available=True),))
    (unknown,) = [f for f in evaluate(older) if f.code == "framework-version-unknown"]
    assert unknown.what.startswith("torch 1.13.1+cu117 is older than dlbox's compatibility "
                                   "data (checked ")
    assert unknown.what.endswith("), which starts at torch 2.0")
    assert "update dlbox" not in unknown.fix and "torch of 2.0 or newer" in unknown.fix


def test_unknown_cuda_version_warns() -> None:
    facts = host("healthy-h100-cuda13")
    newer = replace(facts, frameworks=(FrameworkFacts(
        name="torch", installed=True, version="2.15.0+cu139", cuda="13.9", gpu_available=True),))
    codes = [f.code for f in evaluate(newer)]
    assert "cuda-version-unknown" in codes


def test_small_shm_and_low_disk() -> None:
    facts = HostFacts(system=SystemFacts(shm_total_mib=64, in_container=True, disk_free_mib=2048,
                                         disk_path="/data"))
    findings = {f.code: f for f in evaluate(facts)}
    assert findings["shm-small"].what == "/dev/shm is 64 MiB (inside a container)"
    assert "--shm-size" in findings["shm-small"].fix
    assert findings["disk-low"].what == "2.0 GiB free on /data"  # as the facts table says it
    nearly_full = replace(facts, system=replace(facts.system, disk_free_mib=500))
    assert next(f for f in evaluate(nearly_full) if f.code == "disk-low").what == (
        "500 MiB free on /data")  # not "0 GiB"


def test_docker_shm_names_the_daemons_size_and_what_dlbox_gives() -> None:
    # daemon.json's default-shm-size 512m: the finding named 64 MiB, dockerd's own default
    facts = host("cpu-only-host")
    facts = replace(facts, docker=replace(facts.docker, default_shm_mib=512))
    finding = next(f for f in evaluate(facts) if f.code == "docker-shm")
    assert finding.what == "containers get 512 MiB of /dev/shm by default"
    assert "512 MiB is too small" in finding.why and "64" not in finding.why
    assert "dlbox image run" in finding.why
    assert "--shm-size=2g" in finding.fix
    big = replace(facts, docker=replace(facts.docker, default_shm_mib=2048))
    assert "docker-shm" not in [f.code for f in evaluate(big)]


def test_gpu_unavailable_in_torch_despite_fitting_driver() -> None:
    facts = HostFacts(
        nvidia=NvidiaFacts(source="nvml", driver_version="550.54.15", cuda_driver_version="12.4",
                           gpus=(GpuFacts(0, "NVIDIA L4", "8.9"),)),
        frameworks=(FrameworkFacts(name="torch", installed=True, version="2.5.1+cu124",
                                   cuda="12.4", gpu_available=False, visible_gpus=0),),
    )
    codes = [f.code for f in evaluate(facts)]
    assert codes[0] == "framework-gpu-unavailable"


def test_a_failing_rule_does_not_hide_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    from dlbox.hostenv import rules

    def broken(facts: HostFacts, matrix: object) -> list:
        raise RuntimeError("boom")

    monkeypatch.setattr(rules, "RULES", (broken, *rules.RULES))
    findings = rules.evaluate(host("cpu-only-host"))
    assert findings[0].code == "rule-failed" and "boom" in findings[0].what
    assert any(f.code == "no-gpu" for f in findings)


def test_k80_is_not_told_to_update_past_r470() -> None:
    # R470 is the last driver branch for Kepler: "update to >= 515.43.04" cannot be done
    below_ga = next(f for f in evaluate(host("k80-driver470-smi-fallback"))
                    if f.code == "driver-below-ga")
    assert "515.43.04 when convenient" not in below_ga.fix
    assert below_ga.fix.startswith("keep the R470 driver: R470 is the last driver branch for "
                                   "Kepler GPUs such as GPU 0 Tesla K80 (sm_37)")


def test_k80_with_a_cuda_12_torch_gets_a_build_not_a_driver() -> None:
    facts = replace(host("k80-driver470-smi-fallback"), frameworks=(FrameworkFacts(
        name="torch", installed=True, version="2.5.1+cu124", cuda="12.4", gpu_available=False),))
    too_old = next(f for f in evaluate(facts) if f.code == "driver-too-old")
    assert "nvidia-driver-" not in too_old.fix  # no driver for a K80 runs CUDA 12
    assert too_old.fix == (
        "no driver runs CUDA 12.4 on this GPU (R470 is the last driver branch for Kepler GPUs "
        "such as GPU 0 Tesla K80 (sm_37)): install a build this driver runs: "
        "pip uninstall -y torch && pip install torch==2.3.1 --index-url "
        "https://download.pytorch.org/whl/cu118")


def test_kepler_below_the_11x_floor_is_sent_to_r470_not_beyond() -> None:
    facts = replace(
        host("k80-driver470-smi-fallback"),
        nvidia=NvidiaFacts(source="nvidia-smi", driver_version="418.87.01",
                           cuda_driver_version="10.1", gpus=(GpuFacts(0, "Tesla K80", "3.7"),)))
    too_old = next(f for f in evaluate(facts) if f.code == "driver-too-old")
    assert too_old.fix.startswith("update the NVIDIA driver to >= 450.80.02 (Ubuntu: sudo apt "
                                  "install nvidia-driver-470, then reboot); R470 is the last")


def test_volta_on_a_cuda_13_torch_is_told_the_build_it_runs_not_a_driver_update() -> None:
    # R580 is the last branch for Maxwell, Pascal and Volta: CUDA 13.2's own driver (595)
    # never comes to a V100
    facts = HostFacts(
        nvidia=NvidiaFacts(source="nvml", driver_version="580.95.05", cuda_driver_version="13.0",
                           gpus=(GpuFacts(0, "Tesla V100-SXM2-16GB", "7.0"),)),
        frameworks=(FrameworkFacts(name="torch", installed=True, version="2.14.1+cu132",
                                   cuda="13.2", gpu_available=True),),
    )
    # CUDA 13 builds have no sm_70: the fix is a build the V100 runs, and no driver advice
    # about the build it replaces (the R470 test above keeps the "keep the driver" one)
    findings = evaluate(facts)
    assert [f.code for f in findings if f.level != "ok"] == ["arch-not-in-build",
                                                            "docker-unreachable"]
    assert findings[0].fix.endswith("pip install torch==2.14.1 --index-url "
                                    "https://download.pytorch.org/whl/cu126")
    # a Turing GPU on the same driver is told to update
    turing = replace(facts, nvidia=replace(facts.nvidia, gpus=(GpuFacts(0, "Tesla T4", "7.5"),)))
    below = next(f for f in evaluate(turing) if f.code == "driver-below-ga")
    assert below.fix == "update the driver to >= 595.45.04 when convenient"


def test_tensorflow_1_12_is_checked_against_cuda_9_0() -> None:
    # TF 1.5-1.12 were built with CUDA 9.0 / cuDNN 7: not TF 2.0's CUDA 10.0
    facts = HostFacts(
        nvidia=NvidiaFacts(source="nvidia-smi", driver_version="390.116", cuda_driver_version="9.1",
                           gpus=(GpuFacts(0, "GeForce GTX 1080 Ti", "6.1"),)),
        frameworks=(FrameworkFacts(name="tensorflow", installed=True, version="1.12.0",
                                   cuda="9.0", cudnn="7", gpu_available=True),),
    )
    findings = evaluate(facts)
    codes = [f.code for f in findings]
    assert "tf-cuda-mismatch" not in codes and "framework-version-unknown" not in codes
    assert "framework-ok" in codes and not has_errors(findings)
    # on a driver older than CUDA 9.0's (384.81) it is an error naming that driver
    older = replace(facts, nvidia=replace(facts.nvidia, driver_version="375.66",
                                          cuda_driver_version="8.0"))
    too_old = next(f for f in evaluate(older) if f.code == "driver-too-old")
    assert "CUDA 9.0 needs driver >= 384.81" in too_old.why
    assert "pip install tensorflow-gpu==1.4.1" in too_old.fix  # the last CUDA 8.0 TensorFlow


def test_jax_cuda13_on_a_pascal_gpu_is_an_error() -> None:
    # jax[cuda13] needs compute capability >= 7.5 (CUDA 13 dropped Maxwell to Volta)
    facts = replace(host("healthy-h100-cuda13"), nvidia=NvidiaFacts(
        source="nvml", driver_version="580.95.05", cuda_driver_version="13.0",
        gpus=(GpuFacts(0, "NVIDIA GeForce GTX 1080 Ti", "6.1"),)))
    jax_findings = [f for f in evaluate(facts) if "jax" in f.what]
    assert [f.code for f in jax_findings] == ["arch-not-in-build"]
    finding = jax_findings[0]
    assert finding.what == ("GPU 0 NVIDIA GeForce GTX 1080 Ti (sm_61) is too old for jax's "
                            "cuda13 plugin (CUDA 13)")
    assert "compute capability >= 7.5" in finding.why
    assert finding.fix.startswith("pip uninstall -y jax-cuda13-plugin jax-cuda13-pjrt && "
                                  "pip install 'jax[cuda12]==")
    # the same jax on the H100 of the recording fits
    assert "framework-ok" in [f.code for f in evaluate(host("healthy-h100-cuda13"))
                              if "jax" in f.what]


def test_a_jax_plugin_too_new_for_the_gpu_is_one_error_not_also_no_gpu() -> None:
    """Seen by review: jax, whose plugin has no kernels for the GPU, lists no GPU for that
    reason; "lists no GPU" beside the arch error said it twice, with a fix that finds
    nothing more."""
    healthy = host("healthy-h100-cuda13")
    jax = replace(next(fw for fw in healthy.frameworks if fw.name == "jax"),
                  gpu_available=False)
    facts = replace(healthy, nvidia=NvidiaFacts(
        source="nvml", driver_version="580.95.05", cuda_driver_version="13.0",
        gpus=(GpuFacts(0, "NVIDIA GeForce GTX 1080 Ti", "6.1"),)),
        frameworks=tuple(jax if fw.name == "jax" else fw for fw in healthy.frameworks))
    assert [f.code for f in evaluate(facts) if "jax" in f.what] == ["arch-not-in-build"]
    # on the GPU it fits, a jax that lists none is still the error it was
    alone = replace(healthy, frameworks=facts.frameworks)
    assert "framework-gpu-unavailable" in [f.code for f in evaluate(alone) if "jax" in f.what]


def test_a_jax_driver_fix_removes_the_plugin_it_replaces() -> None:
    """Seen by review: on a driver too old for jax's cuda13 plugin, the fix installed
    jax[cuda12] beside the cuda13 plugin, which jax then still loads first."""
    healthy = host("healthy-h100-cuda13")
    facts = replace(healthy, nvidia=replace(healthy.nvidia, driver_version="550.54.15",
                                            cuda_driver_version="12.4"))
    (too_old,) = [f for f in evaluate(facts) if f.code == "driver-too-old" and "jax" in f.what]
    install = too_old.fix.split(", or install a build this driver runs: ")[-1]
    assert install.startswith("pip uninstall -y jax-cuda13-plugin jax-cuda13-pjrt && "
                              "pip install 'jax[cuda12]=="), too_old.fix


def test_tensorflow_too_new_for_a_k80_names_the_tensorflow_that_runs() -> None:
    facts = replace(host("k80-driver470-smi-fallback"), frameworks=(FrameworkFacts(
        name="tensorflow", installed=True, version="2.15.1", cuda="12.2", cudnn="8",
        gpu_available=False),))
    arch = next(f for f in evaluate(facts) if f.code == "arch-not-in-build")
    assert arch.what == ("GPUs 0, 1 Tesla K80 (sm_37) are too old for tensorflow 2.15.1 "
                         "(CUDA 12.2)")
    # TF 2.14 (CUDA 11.8) still has sm_35+ kernels and runs on R470 (Python 3.9 host)
    assert arch.fix == ("use an older TensorFlow: pip install --force-reinstall "
                        "'tensorflow[and-cuda]==2.14.1'")


def test_tensorflow_without_kernels_for_the_gpu_says_so_and_names_the_tensorflow_that_runs(
        ) -> None:
    """Review: TF 2.20 (sm_60+) on a GTX 980 (sm_52) was said to lack its CUDA libraries and
    told to reinstall 2.21.0, which has the same arch list: a fix that loops."""
    findings = evaluate(host("tensorflow-maxwell-no-kernels"))
    arch = findings[0]
    assert (arch.level, arch.code) == ("error", "arch-not-in-build")
    assert arch.what == ("GPU 0 NVIDIA GeForce GTX 980 (sm_52) is not in tensorflow 2.20.0 "
                         "(CUDA 12.5.1)'s arch list")
    assert "sm_60, sm_70, sm_80, sm_89, compute_90 (PTX)" in arch.why
    assert arch.fix == "pip install --force-reinstall 'tensorflow[and-cuda]==2.17.1'"
    assert "framework-gpu-unavailable" not in [f.code for f in findings]


@pytest.mark.parametrize("output, needle", [
    # one GPU of several stopped answering: nvidia-smi prints this line and exits non-zero
    ("Unable to determine the device handle for GPU0000:02:00.0: Unknown Error\n", "xid"),
    ("Unable to determine the device handle for gpu 0000:3B:00.0: GPU is lost.  Reboot the "
     "system to recover this GPU\n", "reboot"),
])
def test_a_lost_gpu_is_a_broken_driver_error_with_a_fix(output: str, needle: str) -> None:
    from dlbox.hostenv.probe import CommandOutput, RawHost

    raw = RawHost(smi_path="/usr/bin/nvidia-smi", smi_query=CommandOutput(
        ("/usr/bin/nvidia-smi", "--query-gpu=name,compute_cap,memory.total,driver_version",
         "--format=csv,noheader"), output=output, returncode=15))
    finding = evaluate(facts_from_raw(raw))[0]
    assert (finding.level, finding.code) == ("error", "nvidia-driver-broken")
    assert finding.what == f"probe nvidia-smi failed: {output.strip()}"
    assert needle in finding.fix.lower()


def test_toolkit_hook_without_the_nvidia_runtime_still_gives_docker_the_gpu(
        tmp_path: Path) -> None:
    # dockerd registers the device driver behind `docker run --gpus` whenever
    # nvidia-container-runtime-hook is on its PATH (moby daemon/nvidia_linux.go), so a host
    # with the NVIDIA Container Toolkit installed but no `nvidia` runtime in daemon.json is fine
    import shutil

    folder = tmp_path / "rec"
    shutil.copytree(HOSTS / "gpu-no-container-runtime", folder)
    meta = json.loads((folder / "host.json").read_text())
    meta["nvidia_hook_path"] = "/usr/bin/nvidia-container-runtime-hook"
    (folder / "host.json").write_text(json.dumps(meta))
    facts = facts_from_raw(load_raw(folder))
    assert facts.docker.gpu_capable and not facts.docker.nvidia_runtime
    findings = evaluate(facts)
    assert "docker-no-nvidia-runtime" not in [f.code for f in findings]
    docker = next(f for f in findings if f.code == "docker")
    assert docker.what.endswith("; nvidia-container-runtime-hook (docker run --gpus)")
    # without the hook (the recording as made) the warning stays
    assert evaluate(host("gpu-no-container-runtime"))[0].code == "docker-no-nvidia-runtime"


def test_kepler_with_a_cudnn_9_torch_is_an_error_and_gets_a_cudnn_8_build() -> None:
    # torch 2.4-2.7 cu118 still list sm_37, but their cuDNN 9.1 starts at compute capability
    # 5.0 (cuDNN support matrix): a convnet on a K80 fails. torch 2.3.1 cu118 has cuDNN 8.7.
    facts = replace(host("k80-driver470-smi-fallback"), frameworks=(FrameworkFacts(
        name="torch", installed=True, version="2.5.1+cu118", cuda="11.8", cudnn="90100",
        gpu_available=True, arch_list=("sm_37", "sm_50", "sm_60", "sm_70", "sm_75", "sm_80",
                                       "sm_86", "sm_90")),))
    errors = [f for f in evaluate(facts) if f.level == "error"]
    assert [f.code for f in errors] == ["arch-not-in-build"]
    assert errors[0].what == ("GPUs 0, 1 Tesla K80 (sm_37) are not supported by the cuDNN of "
                              "torch 2.5.1+cu118 (CUDA 11.8)")
    assert "cuDNN 9.1 supports compute capability >= 5.0, not sm_37" in errors[0].why
    assert errors[0].fix == ("pip uninstall -y torch && pip install torch==2.3.1 --index-url "
                             "https://download.pytorch.org/whl/cu118")
    # the recorded K80 host (torch 2.0.1+cu117, cuDNN 8.5) is fine
    assert not has_errors(evaluate(host("k80-driver470-smi-fallback")))


def test_cudnn_versions_as_torch_reports_them() -> None:
    from dlbox.hostenv.rules import cudnn_from_torch

    assert cudnn_from_torch("8500") == "8.5"
    assert cudnn_from_torch("8902") == "8.9"
    assert cudnn_from_torch("90100") == "9.1"
    assert cudnn_from_torch("91002") == "9.10"
    assert cudnn_from_torch("9.1.0.70") == "9.1"
    assert cudnn_from_torch(None) is None and cudnn_from_torch("n/a") is None


def test_a_cpu_torch_where_no_cuda_build_runs_is_not_told_to_uninstall_it() -> None:
    """Found by review: a K80 on driver 390 (no CUDA torch runs there) was told `pip uninstall
    -y torch && install a CUDA build of torch`, which leaves the user without their working
    CPU torch; the resolver's own reason and way out belong in the fix instead."""
    facts = replace(
        host("k80-driver470-smi-fallback"),
        nvidia=NvidiaFacts(source="nvidia-smi", driver_version="390.157",
                           cuda_driver_version="9.1", gpus=(GpuFacts(0, "Tesla K80", "3.7"),)),
        frameworks=(FrameworkFacts(name="torch", installed=True, version="2.13.0+cpu",
                                   cuda=None, gpu_available=False),))
    cpu_build = next(f for f in evaluate(facts) if f.code == "cpu-build-on-gpu-host")
    assert "uninstall" not in cpu_build.fix
    assert cpu_build.fix.startswith("keep this CPU build: no CUDA build of torch runs on this "
                                    "host as it is (driver 390.157 is older than every torch")
    assert "update the NVIDIA driver to >= 450.80.02" in cpu_build.fix


def test_an_old_driver_on_kepler_names_a_build_the_gpu_can_use() -> None:
    """Found by review: "the lowest is 450.80.02, for torch 2.7.1 cu118" named a build whose
    cuDNN 9 rejects sm_37; after the driver update the resolver picks torch 2.3.1."""
    facts = replace(
        host("k80-driver470-smi-fallback"),
        nvidia=NvidiaFacts(source="nvidia-smi", driver_version="390.157",
                           cuda_driver_version="9.1", gpus=(GpuFacts(0, "Tesla K80", "3.7"),)))
    with pytest.raises(HostEnvError) as caught:
        resolve_build("torch", target_from_host(facts))
    assert "for torch 2.3.1 cu118)" in str(caught.value)


def _with_packages(tmp_path: Path, name: str, packages: dict[str, str]) -> HostFacts:
    """The recording `name` with more pip packages beside its torch, replayed."""
    import shutil

    folder = tmp_path / name
    shutil.copytree(HOSTS / name, folder)
    meta = json.loads((folder / "host.json").read_text())
    torch = next(entry for entry in meta["frameworks"] if entry["name"] == "torch")
    torch["packages"].update(packages)
    (folder / "host.json").write_text(json.dumps(meta))
    return facts_from_raw(load_raw(folder))


@pytest.mark.parametrize("name, code, fix", [
    ("cpu-torch-on-gpu-host", "cpu-build-on-gpu-host",
     "pip uninstall -y torch torchvision torchaudio && pip install torch==2.14.1 torchvision "
     "torchaudio --index-url https://download.pytorch.org/whl/cu126"),
    ("new-gpu-old-torch", "arch-not-in-build",
     "pip uninstall -y torch torchvision torchaudio && pip install torch==2.11.0 torchvision "
     "torchaudio --index-url https://download.pytorch.org/whl/cu128"),
    ("old-driver-new-cuda-build", "driver-too-old",
     "update the NVIDIA driver to >= 550.54.14 (Ubuntu: sudo apt install nvidia-driver-550, "
     "then reboot), or install a build this driver runs: pip uninstall -y torch torchvision "
     "torchaudio && pip install torch==2.7.1 torchvision torchaudio --index-url "
     "https://download.pytorch.org/whl/cu118"),
])
def test_a_torch_fix_takes_torchvision_and_torchaudio_along(
        tmp_path: Path, name: str, code: str, fix: str) -> None:
    """Found by review: `pip uninstall -y torch && pip install torch==X` left an installed
    torchvision / torchaudio pinned to the old torch (pip: "torchvision 0.19.1 requires
    torch==2.4.1, but you have torch 2.14.1"). Unpinned, from the same index, pip picks the
    ones made for the new torch."""
    from dlbox.hostenv.report import fact_rows

    facts = _with_packages(tmp_path, name, {"torchvision": "0.19.1", "torchaudio": "2.4.1"})
    assert next(f for f in evaluate(facts) if f.code == code).fix == fix
    torch_row = dict(fact_rows(facts))["torch"]
    assert "torchvision 0.19.1, torchaudio 2.4.1" in torch_row


def test_a_tensorflow_mismatch_is_an_error_only_where_tensorflow_lists_no_gpu() -> None:
    """Found by review: the mismatch was an error saying TensorFlow "uses the CPU" on a host
    whose probe had TensorFlow list the GPU. The recording: the only cuDNN is torch's 9.1, TF
    2.15.1 finds no libcudnn.so.8, skips registering the GPU, and lists none."""
    facts = host("tensorflow-cuda-mismatch")
    tf = facts.framework("tensorflow")
    assert tf is not None and tf.gpu_available is False
    recorded = next(f for f in evaluate(facts) if f.code == "tf-cuda-mismatch")
    assert recorded.level == "error" and "uses the CPU" in recorded.why
    listed = replace(facts, frameworks=tuple(
        replace(fw, gpu_available=True) if fw.name == "tensorflow" else fw
        for fw in facts.frameworks))
    finding = next(f for f in evaluate(listed) if f.code == "tf-cuda-mismatch")
    assert finding.level == "warn" and "uses the CPU" not in finding.why
    assert "lists the GPU" in finding.why


# what a fix's command part starts with: the fix is a command, or prose ending in ": command"
COMMAND_WORDS = ("pip", "sudo", "python", "docker", "nvidia-smi")


def _command_part(fix: str) -> str | None:
    for part in (fix, fix.rsplit(": ", 1)[-1]):
        if part.split(" ", 1)[0] in COMMAND_WORDS:
            return part
    return None


def _hosts_with_every_kind_of_fix(tmp_path: Path) -> list[HostFacts]:
    k80 = host("k80-driver470-smi-fallback")
    two_k80 = replace(k80.nvidia, gpus=(GpuFacts(0, "Tesla K80", "3.7"),
                                        GpuFacts(1, "Tesla K80", "3.7")))
    tf = host("tensorflow-cuda-mismatch")
    return [host(name) for name in SCENARIOS] + [
        _with_packages(tmp_path, name, {"torchvision": "0.19.1", "torchaudio": "2.4.1"})
        for name in ("cpu-torch-on-gpu-host", "new-gpu-old-torch", "old-driver-new-cuda-build")
    ] + [
        replace(tf, frameworks=tuple(replace(fw, gpu_available=True) for fw in tf.frameworks)),
        replace(k80, nvidia=two_k80, frameworks=(FrameworkFacts(
            name="torch", installed=True, version="2.6.0+cu124", cuda="12.4", cudnn="90100",
            gpu_available=False, arch_list=("sm_50", "sm_60", "sm_70", "sm_75", "sm_80",
                                            "sm_86", "sm_90")),)),
        replace(k80, frameworks=(
            FrameworkFacts(name="jax", installed=True, version="0.4.30", cuda="12",
                           gpu_available=False),
            FrameworkFacts(name="tensorflow", installed=True, version="2.15.1", cuda="12.2",
                           cudnn="8", gpu_available=False))),
    ]


def test_the_command_part_of_every_fix_pastes_into_a_shell(tmp_path: Path) -> None:
    """Found by review: `pip install --force-reinstall 'tensorflow[and-cuda]==2.21.0' (in its
    own virtual environment if torch needs another cuDNN)` is a syntax error once pasted, and
    `pip uninstall -y ... && run jax on the CPU` runs `run`. A fix's caveats go before its
    command (or into its why); the command part parses in bash, and each of its commands is
    one."""
    commands = set()
    for facts in _hosts_with_every_kind_of_fix(tmp_path):
        for finding in evaluate(facts):
            command = _command_part(finding.fix)
            if command is not None:
                commands.add(command)
    assert len(commands) >= 8
    for command in sorted(commands):
        parsed = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True,
                                check=False)
        assert parsed.returncode == 0, (command, parsed.stderr)
        for step in re.split(r" && | \|\| |; ", command):
            assert step.split(" ", 1)[0] in COMMAND_WORDS, (command, step)


K80_ARCHS_2_5 = ("sm_37", "sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90")


@pytest.mark.parametrize("torch, what", [
    (FrameworkFacts(name="torch", installed=True, version="2.6.0+cu124", cuda="12.4",
                    cudnn="90100", gpu_available=False, arch_list=K80_ARCHS_2_5[1:]),
     "GPUs 0, 1 Tesla K80 (sm_37) are not in torch 2.6.0+cu124 (CUDA 12.4)'s arch list"),
    (FrameworkFacts(name="torch", installed=True, version="2.5.1+cu118", cuda="11.8",
                    cudnn="90100", gpu_available=True, arch_list=K80_ARCHS_2_5),
     "GPUs 0, 1 Tesla K80 (sm_37) are not supported by the cuDNN of torch 2.5.1+cu118 "
     "(CUDA 11.8)"),
])
def test_identical_gpus_get_one_finding(torch: FrameworkFacts, what: str) -> None:
    """Found by review: a K80 board (two GPUs) got the same error twice, once per GPU."""
    k80 = host("k80-driver470-smi-fallback")
    facts = replace(k80, frameworks=(torch,), nvidia=replace(k80.nvidia, gpus=(
        GpuFacts(0, "Tesla K80", "3.7"), GpuFacts(1, "Tesla K80", "3.7"))))
    assert [f.what for f in evaluate(facts) if f.code == "arch-not-in-build"] == [what]


def test_a_ptx_only_finding_agrees_with_one_gpu_and_with_several() -> None:
    h100 = GpuFacts(0, "NVIDIA H100", "9.0")
    facts = HostFacts(
        nvidia=NvidiaFacts(source="nvml", driver_version="570.86.15", cuda_driver_version="12.8",
                           gpus=(h100,)),
        frameworks=(FrameworkFacts(name="torch", installed=True, version="2.7.1+cu126",
                                   cuda="12.6", cudnn="90501", gpu_available=True,
                                   arch_list=("sm_80", "compute_80")),),
    )
    two = replace(facts, nvidia=replace(facts.nvidia, gpus=(h100, replace(h100, index=1))))
    assert [f.what for f in evaluate(facts) + evaluate(two) if f.code == "arch-ptx-only"] == [
        "GPU 0 NVIDIA H100 (sm_90) runs torch 2.7.1+cu126 (CUDA 12.6) only through PTX JIT",
        "GPUs 0, 1 NVIDIA H100 (sm_90) run torch 2.7.1+cu126 (CUDA 12.6) only through PTX JIT"]


def test_a_build_to_replace_gets_no_advice_about_its_driver() -> None:
    """Found by review: two-gpus-mixed told the user to replace torch 2.9.1+cu128 (no sm_61)
    and, beside it, to update the driver for that build's CUDA 12.8 "when convenient"."""
    codes = [f.code for f in evaluate(host("two-gpus-mixed"))]
    assert "arch-not-in-build" in codes and "driver-below-ga" not in codes
    # without an error about the build, the driver advice stays
    assert "driver-below-ga" in [f.code for f in evaluate(host("k80-driver470-smi-fallback"))]


def test_the_facts_table_and_the_findings_say_it_once_and_alike() -> None:
    """Found by review: "not reachable: Docker engine not reachable: ..." in the table, and a
    K80's memory as 11.2 GiB in the table but 11 GiB in the finding."""
    from dlbox.hostenv.report import fact_rows

    facts = host("k80-driver470-smi-fallback")
    rows = dict(fact_rows(facts))
    assert rows["Docker"] == ("not reachable: no socket at /var/run/docker.sock (is dockerd "
                              "running?)")
    assert rows["GPU 0"] == "Tesla K80, sm_37, 11.2 GiB"
    gpu = next(f for f in evaluate(facts) if f.code == "gpu")
    assert gpu.what.startswith("2 NVIDIA GPUs: GPU 0 Tesla K80 (sm_37), 11.2 GiB; GPU 1 ")
