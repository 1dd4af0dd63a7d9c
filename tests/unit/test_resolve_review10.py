"""Review 10 of the resolver and the image build's framework choice (jax and pinned versions).

The jax facts below come from jax's own wheels on PyPI (their METADATA): jax 0.4.26 brings
jaxlib only through an extra (`Requires-Dist: jaxlib ==0.4.26 ; extra == 'cpu'`), from 0.4.27
on also directly; jax 0.4.20's GPU extras are cuda11_pip/cuda12_pip/cuda12_local, no cuda12.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from dlbox.container import framework as F
from dlbox.container.project import detect_project
from dlbox.errors import ContainerError, DlboxError, UsageError
from dlbox.hostenv.resolve import Target, resolve_build

# jax 0.4.26's Requires-Dist lines that name jaxlib, as its wheel's METADATA has them
JAX_0_4_26_JAXLIB = (
    "jaxlib ==0.4.25 ; extra == 'ci'",
    "jaxlib ==0.4.26 ; extra == 'cpu'",
    "jaxlib ==0.4.26+cuda12.cudnn89 ; extra == 'cuda'",
    "jaxlib ==0.4.26 ; extra == 'cuda12'",
    "jaxlib ==0.4.26 ; extra == 'tpu'",
)

CPU = Target(cpu=True)
GPU_550 = Target(driver="550.54.15", compute_capabilities=("7.5",))  # runs jax[cuda12]
GPU_470 = Target(driver="470.57.02", compute_capabilities=("7.5",))  # runs no jax GPU build


def project_with(tmp_path: Path, requirements: str) -> object:
    (tmp_path / "requirements.txt").write_text(requirements)
    return detect_project(tmp_path)


def jaxlib_installed(lines: tuple[str, ...], jax_requires: tuple[str, ...]) -> list[str]:
    """The jaxlib requirements pip installs from `lines`: their own jaxlib lines, and those
    jax's metadata `jax_requires` brings for the extras the jax line asks for."""
    found = [line for line in lines if Requirement(line).name == "jaxlib"]
    for line in lines:
        requirement = Requirement(line)
        if requirement.name != "jax":
            continue
        for dependency in map(Requirement, jax_requires):
            if dependency.marker is None or any(
                    dependency.marker.evaluate({"extra": extra})
                    for extra in requirement.extras):
                found.append(str(dependency))
    return found


def test_a_cpu_jax_build_brings_the_jaxlib_its_project_pins(tmp_path: Path) -> None:
    """Found by review: jax[cpu]==0.4.26 and jaxlib==0.4.26 became a bare jax==0.4.26 (the
    project's jax lines are replaced by the build's), and jax 0.4.26 brings jaxlib only
    through an extra: the image failed its smoke test, "jax requires jaxlib"."""
    project = project_with(tmp_path, "jax[cpu]==0.4.26\njaxlib==0.4.26\nnumpy\n")
    resolved = F.resolve_framework("jax", CPU, pins=F.project_pins(project, "jax"))
    assert (resolved.version, resolved.variant) == ("0.4.26", "cpu")
    lines = F.requirements_input(project, "jax", F.framework_requirement(resolved))
    assert "numpy" in lines
    assert jaxlib_installed(lines, JAX_0_4_26_JAXLIB) == ['jaxlib==0.4.26; extra == "cpu"']
    # doctor --resolve and --framework-version say the same
    assert resolve_build("jax", Target(cpu=True, version="0.4.26")).requirements == (
        "jax[cpu]==0.4.26",)


def runnable_versions_named(text: str, target: Target) -> list[str]:
    """The jax versions a hint suggests (not the refused 0.4.20, kept on the CPU), each
    checked to resolve on `target`."""
    named = [v for v in re.findall(r"jax(?:==| )(\d+\.\d+\.\d+)", text) if v != "0.4.20"]
    for version in named:
        F.resolve_framework("jax", target, version=version)  # raises if it does not run
    return named


def test_a_gpu_pin_older_than_the_data_is_refused(tmp_path: Path) -> None:
    """Found by review: jax[cuda12]==0.4.20 got the 0.4 row's facts (jax 0.4.20 has no
    cuda12 extra); on driver 470 the hint was jax==0.4.38, which that driver cannot run."""
    project = project_with(tmp_path, "jax[cuda12]==0.4.20\n")
    pins = F.project_pins(project, "jax")
    with pytest.raises(ContainerError) as info:
        F.resolve_framework("jax", GPU_550, pins=pins)
    assert "0.4.26" in info.value.message  # the oldest jax dlbox knows
    assert runnable_versions_named(info.value.hint or "", GPU_550)
    with pytest.raises(ContainerError) as info:
        F.resolve_framework("jax", GPU_470, pins=pins)
    assert "0.4.26" in info.value.message
    hint = info.value.hint or ""
    assert runnable_versions_named(hint, GPU_470) == []  # no jax GPU build runs on 470
    assert "525.60.13" in hint and "--cpu" in hint
    # --framework-version and doctor --resolve refuse it too, naming the oldest known
    for refuse in (lambda: F.resolve_framework("jax", GPU_550, version="0.4.20"),
                   lambda: resolve_build("jax", Target(driver="550.54.15",
                                                      compute_capabilities=("7.5",),
                                                      version="0.4.20"))):
        with pytest.raises(UsageError) as refused:
            refuse()
        assert "older than" in refused.value.message and "jax 0.4.26" in refused.value.message
        assert runnable_versions_named(refused.value.hint or "", GPU_550)
    # A CPU build of it is jax[cpu]==0.4.20, which exists: resolved, with a warning.
    cpu = F.resolve_framework("jax", CPU, pins=pins)
    assert cpu.requirements == ("jax[cpu]==0.4.20",)
    assert any("0.4.20" in warning for warning in cpu.warnings)


def test_an_exact_pin_older_than_the_data_names_a_version_not_a_row() -> None:
    """The jax data's oldest row is "0.4-early": "pin 0.4-early or newer" is no version."""
    with pytest.raises(DlboxError) as info:
        resolve_build("jax", Target(cpu=True, version="0.3.25"))
    assert "0.4-early" not in info.value.message + (info.value.hint or "")
    assert "jax 0.4.26" in info.value.message


def test_why_lines_name_the_newest_release_only_when_it_is(tmp_path: Path) -> None:
    """Found by review: tensorflow==2.4.0 printed "tensorflow 2.4.0 is the newest release";
    --framework-version 0.4.27 printed the reasons of 0.4.30, its row's newest."""
    newest = F.resolve_framework("tensorflow", CPU)
    assert f"tensorflow {newest.version} is the newest release" in newest.reasons
    project = project_with(tmp_path, "tensorflow==2.4.0\n")
    pinned = F.resolve_framework("tensorflow", CPU, pins=F.project_pins(project, "tensorflow"))
    assert pinned.version == "2.4.0"
    assert not any("is the newest release" in r and "allow" not in r for r in pinned.reasons)
    assert "tensorflow 2.4.0 is the newest release the version pins allow" in pinned.reasons
    for target in (CPU, GPU_550):
        exact = F.resolve_framework("jax", target, version="0.4.27")
        assert exact.version == "0.4.27"
        assert not any(v in " ".join(exact.reasons) for v in ("0.4.30", "0.4.38")), exact
        assert not any("is the newest release" in r and "allow" not in r
                       for r in exact.reasons), exact.reasons
    gpu = F.resolve_framework("jax", GPU_550, pins=F.project_pins(
        project_with(tmp_path, "jax[cuda12]==0.4.27\n"), "jax"))
    assert not any("is the newest release" in r and "allow" not in r for r in gpu.reasons)


def test_an_exact_version_gets_its_own_builds() -> None:
    """--framework-version 0.7.0 was resolved as 0.7.2 and renamed: jax[cuda13]==0.7.0, an
    extra jax 0.7.0 does not have (jax-cuda13-plugin starts at 0.7.2); tensorflow 2.15.0's
    and-cuda build lost the 2.15.0.post1 it needs."""
    driver_580 = Target(driver="580.65.06", compute_capabilities=("8.6",))
    assert F.resolve_framework("jax", driver_580, version="0.7.0").requirements == (
        "jax[cuda12]==0.7.0",)
    assert F.resolve_framework("jax", driver_580, version="0.7.2").requirements == (
        "jax[cuda13]==0.7.2",)
    tf = F.resolve_framework("tensorflow", driver_580, version="2.15.0")
    assert tf.requirements == ("tensorflow[and-cuda]==2.15.0.post1",)


@pytest.mark.parametrize("framework, version, target", [
    ("torch", "2.16", Target(driver="535.104.05", compute_capabilities=("8.6",))),
    ("tensorflow", "2.22", Target(driver="470.256.02", compute_capabilities=("8.6",))),
])
def test_a_refusal_of_a_version_the_data_does_not_know_says_its_facts_are_guessed(
        framework: str, version: str, target: Target) -> None:
    """Found by review (doctor): `--framework-version 2.16` (newer than the data) was refused
    with "update the NVIDIA driver to >= 580, for torch 2.16.* cu132" as a fact; only a build
    that resolved carried the note that the nearest row's facts stood in."""
    from dataclasses import replace

    from dlbox.errors import HostEnvError

    with pytest.raises(HostEnvError) as refused:
        resolve_build(framework, replace(target, version=version))
    assert (f"note: {framework} {version} is not in dlbox's compatibility data"
            in (refused.value.hint or "")), refused.value.hint
    with pytest.raises(HostEnvError) as known:  # a version the data has: no such note
        resolve_build("torch", Target(driver="418.87.01", compute_capabilities=("7.0",),
                                      version="2.5"))
    assert "not in dlbox's compatibility data" not in (known.value.hint or "")
