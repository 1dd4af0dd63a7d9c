"""Found by review: nvidia-smi that hangs, crashes or fails without words was only a warning;
a GPU no build of the data runs on got no command; GPU architectures sorted as text."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from test_hostenv_review10 import _one, _pastes

from dlbox.hostenv import probe as probe_module
from dlbox.hostenv.facts import HostFacts
from dlbox.hostenv.probe import (
    SMI_QUERY_FIELDS,
    CommandOutput,
    RawFramework,
    RawHost,
    facts_from_raw,
)
from dlbox.hostenv.resolve import Target, resolve_build
from dlbox.hostenv.rules import evaluate, has_errors

QUERY_ARGV = ("nvidia-smi", f"--query-gpu={','.join(SMI_QUERY_FIELDS)}", "--format=csv,noheader")


def _smi_host(query: CommandOutput, *frameworks: RawFramework) -> HostFacts:
    return facts_from_raw(RawHost(smi_path="/usr/bin/nvidia-smi", smi_query=query,
                                  frameworks=frameworks))


# ------------------------------------------------------------------------------------------
# 1. nvidia-smi that does not finish normally is a broken driver (docs/doctor.md)


@pytest.mark.parametrize(("query", "said"), [
    (CommandOutput(QUERY_ARGV, error="timed out after 10 s"), "timed out after 10 s"),
    (CommandOutput(QUERY_ARGV, output="", returncode=-11), "killed by signal 11 (SIGSEGV)"),
    (CommandOutput(QUERY_ARGV, output="", returncode=255), "exit code 255"),
    (CommandOutput(QUERY_ARGV, output="Segmentation fault (core dumped)\n", returncode=139),
     "exit code 139"),
])
def test_nvidia_smi_that_hangs_crashes_or_fails_silently_is_a_broken_driver(
        query: CommandOutput, said: str) -> None:
    findings = evaluate(_smi_host(query))
    broken = _one(findings, "nvidia-driver-broken")
    assert broken.level == "error" and said in broken.what
    assert "sudo dmesg | grep -i -e xid -e nvrm" in broken.fix and "reboot" in broken.fix
    assert has_errors(findings)
    assert "nvidia-probe-failed" not in [f.code for f in findings]
    _pastes(broken.fix)


def test_nvidia_smi_output_that_exited_0_and_cannot_be_read_stays_a_warning() -> None:
    findings = evaluate(_smi_host(CommandOutput(QUERY_ARGV, output="hello, not csv\n",
                                                returncode=0)))
    assert _one(findings, "nvidia-probe-failed").level == "warn"
    assert "nvidia-driver-broken" not in [f.code for f in findings]


def test_a_real_nvidia_smi_that_exits_255_is_a_broken_driver(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    smi = tmp_path / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    smi.write_text("#!/bin/sh\nexit 255\n")
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{smi.parent}:/usr/bin:/bin")
    facts = facts_from_raw(RawHost(**probe_module._collect_nvidia()))
    assert _one(evaluate(facts), "nvidia-driver-broken").level == "error"


# ------------------------------------------------------------------------------------------
# 2. no build runs on this driver and GPU: the driver update and the build it resolves to

K80_418 = CommandOutput(QUERY_ARGV, output="Tesla K80, 3.7, 11441 MiB, 418.87.01\n",
                        returncode=0)
TORCH_CU128 = RawFramework(name="torch", installed=True, dist_version="2.9.1+cu128",
                           build_cuda="12.8")


def test_k80_on_driver_418_is_told_the_driver_and_the_build_it_then_runs() -> None:
    findings = evaluate(_smi_host(K80_418, TORCH_CU128))
    # what the resolver says for this GPU on the lowest driver it names
    build = resolve_build("torch", Target(driver="450.80.02", compute_capabilities=("3.7",)))
    assert (build.version, build.variant) == ("2.3.1", "cu118")
    command = (f"pip uninstall -y torch && pip install torch=={build.version} --index-url "
               f"{build.wheel_index}")
    for code in ("driver-too-old", "arch-not-in-build"):
        fix = _one(findings, code).fix
        assert "update the NVIDIA driver to >= 450.80.02" in fix, fix
        assert "sudo apt install nvidia-driver-470" in fix, fix
        assert fix.endswith(command), fix
        assert "one made with an older CUDA" not in fix
        _pastes(fix)


def test_tensorflow_on_a_k80_below_every_driver_is_told_the_driver_and_the_build() -> None:
    tf = RawFramework(name="tensorflow", installed=True, dist_version="2.15.1",
                      build_cuda="12.2", build_cudnn="8")
    query = CommandOutput(QUERY_ARGV, output="Tesla K80, 3.7, 11441 MiB, 340.108\n",
                          returncode=0)
    findings = evaluate(_smi_host(query, tf))
    fix = [f for f in findings if f.code == "arch-not-in-build"][0].fix
    assert "update the NVIDIA driver to >= 367.48" in fix, fix
    build = resolve_build("tensorflow", Target(driver="367.48", compute_capabilities=("3.7",)))
    assert build.requirements[0] in fix, fix
    _pastes(fix)


# ------------------------------------------------------------------------------------------
# 4. architectures in numeric order


def test_gpus_mixed_lists_architectures_in_numeric_order() -> None:
    query = CommandOutput(QUERY_ARGV, returncode=0, output=(
        "NVIDIA H100 80GB HBM3, 9.0, 81559 MiB, 550.54.15\n"
        "Tesla V100-SXM2-32GB, 7.0, 32768 MiB, 550.54.15\n"
        "NVIDIA GeForce RTX 5090, 12.0, 32607 MiB, 550.54.15\n"))
    mixed = _one(evaluate(_smi_host(query)), "gpus-mixed")
    assert mixed.what == "GPUs of 3 architectures (sm_70, sm_90, sm_120)"


# ------------------------------------------------------------------------------------------
# 5. a pin refused for the Python, not the GPU, says so


def test_a_pinned_tensorflow_refused_for_the_python_names_the_python_not_the_gpu() -> None:
    from dlbox.errors import HostEnvError

    target = Target(driver="535.104.05", compute_capabilities=("8.6",), python="3.11",
                    version="2.14")
    with pytest.raises(HostEnvError) as info:
        resolve_build("tensorflow", target)
    pinned = resolve_build("tensorflow", Target(driver="535.104.05", compute_capabilities=("8.6",),
                                                version="2.14"))
    hint = info.value.hint or ""
    assert hint.startswith(
        f"tensorflow {pinned.version} {pinned.variant} runs this GPU on Python "
        f"{', '.join(pinned.python_versions)}, not 3.11: leave --framework-version out "), hint
    assert "supports this GPU" not in hint
    assert hint.endswith(", or resolve with --cpu, or another --python"), hint
