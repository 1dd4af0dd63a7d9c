"""Rules on recorded hosts (tests/fixtures/hosts/*): exact findings and the resolved builds."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

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
    assert "torch==2.15.0 --index-url https://download.pytorch.org/whl/cu126" in errors[0].fix
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
    assert findings["disk-low"].what == "2 GiB free on /data"


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
