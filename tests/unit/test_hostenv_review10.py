"""Found by review: probe failures that doctor reported as fine or as "no GPU".

A framework import that crashes, exits or hangs; NVML failing with no nvidia-smi beside it;
nvidia-smi printing without end, or garbage; Docker's fix for each cause."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from dlbox.hostenv import probe as probe_module
from dlbox.hostenv.facts import HostFacts, ProbeFailure
from dlbox.hostenv.parse import parse_nvidia_smi_csv
from dlbox.hostenv.probe import (
    SMI_QUERY_FIELDS,
    CommandOutput,
    RawFramework,
    RawHost,
    collect_raw,
    facts_from_raw,
    load_raw,
    run_command,
    save_raw,
)
from dlbox.hostenv.rules import Finding, broken_driver_error, evaluate

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"
SMI_ROW = "NVIDIA GeForce RTX 3090, 8.6, 24576 MiB, 550.54.15"
QUERY_ARGV = ("nvidia-smi", f"--query-gpu={','.join(SMI_QUERY_FIELDS)}", "--format=csv,noheader")

# what the file probe reads of each framework on a CUDA host (no import)
FILE_FACTS = {
    "torch": RawFramework(name="torch", installed=True, dist_version="2.1.2+cu121",
                          build_cuda="12.1"),
    "tensorflow": RawFramework(name="tensorflow", installed=True, dist_version="2.15.1",
                               build_cuda="12.2", build_cudnn="8"),
    "jax": RawFramework(name="jax", installed=True, dist_version="0.4.30", build_cuda="12",
                        packages={"jax-cuda12-plugin": "0.4.30", "jaxlib": "0.4.30"}),
}
MODULE = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jax"}


def _codes(facts: HostFacts) -> list[str]:
    return [f.code for f in evaluate(facts)]


def _one(findings: list[Finding], code: str) -> Finding:
    found = [f for f in findings if f.code == code]
    assert len(found) == 1, findings
    return found[0]


def _pastes(fix: str) -> None:
    """A fix is words that end in a command (after its last ': '), which bash parses."""
    command = fix.rsplit(": ", 1)[-1]
    parsed = subprocess.run(["/bin/bash", "-n", "-c", command], capture_output=True, text=True,
                            check=False)
    assert parsed.returncode == 0, (command, parsed.stderr)


def _gpu_host_with(framework: RawFramework) -> HostFacts:
    """The recorded RTX 3090 host (driver 550, NVML) with `framework` as the probe saw it."""
    raw = load_raw(HOSTS / "healthy-gpu-rtx3090")
    return facts_from_raw(replace(raw, frameworks=(framework,)))


def _fake_package(folder: Path, name: str, init: str) -> None:
    (folder / name).mkdir(parents=True)
    (folder / name / "__init__.py").write_text(init)


def _probed(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, init: str) -> HostFacts:
    """Run the real import probe of `name` on a stand-in package, on the recorded GPU host."""
    _fake_package(tmp_path / "site", MODULE[name], init)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    output, error = probe_module._deep_probe(name)
    return _gpu_host_with(replace(FILE_FACTS[name], deep_output=output, deep_error=error))


# ------------------------------------------------------------------------------------------
# 1. a framework import that crashes, exits or hangs


@pytest.mark.parametrize("name", ["torch", "tensorflow", "jax"])
def test_a_framework_import_killed_by_a_signal_is_a_probe_failure(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a wheel built for newer CPU instructions dies with SIGILL / SIGSEGV while loading
    facts = _probed(name, tmp_path, monkeypatch,
                    "import os, sys\nsys.stderr.write('Illegal instruction\\n')\n"
                    "os.kill(os.getpid(), 11)\n")
    fw = facts.framework(name)
    assert fw is not None and fw.error and "killed by signal 11 (SIGSEGV)" in fw.error
    findings = evaluate(facts)
    failed = _one(findings, "probe-failed")
    assert failed.level == "warn" and failed.what.startswith(f"probe {name} failed: ")
    assert "cannot run on this host" in failed.why
    assert "--force-reinstall" in failed.fix and f"dlbox doctor --resolve {name}" in failed.fix
    assert "framework-ok" not in [f.code for f in findings]
    assert not any("runs on every GPU" in f.what or "fits this host" in f.what
                   for f in findings)


def test_a_framework_import_that_calls_sys_exit_is_a_probe_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    facts = _probed("torch", tmp_path, monkeypatch, "raise SystemExit(3)\n")
    torch = facts.framework("torch")
    assert torch is not None and torch.error and "exit code 3" in torch.error
    codes = _codes(facts)
    assert "probe-failed" in codes and "framework-ok" not in codes


def test_a_framework_import_that_hangs_is_a_probe_failure_naming_the_driver(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(probe_module.DEEP_TIMEOUT_S, "torch", 1.0)
    facts = _probed("torch", tmp_path, monkeypatch, "import time\ntime.sleep(60)\n")
    torch = facts.framework("torch")
    assert torch is not None and torch.error == "importing torch: timed out after 1 s"
    failed = _one(evaluate(facts), "probe-failed")
    assert "wedged" in failed.why and "driver" in failed.why
    assert "framework-ok" not in _codes(facts)
    _pastes(failed.fix)


def test_a_framework_probe_failure_is_replayed(tmp_path: Path) -> None:
    raw = replace(load_raw(HOSTS / "healthy-gpu-rtx3090"), frameworks=(replace(
        FILE_FACTS["torch"], deep_error="importing torch was killed by signal 4 (SIGILL)"),))
    save_raw(raw, tmp_path / "rec")
    replayed = facts_from_raw(load_raw(tmp_path / "rec"))
    assert replayed == facts_from_raw(raw)
    assert "probe-failed" in _codes(replayed) and "framework-ok" not in _codes(replayed)


# ------------------------------------------------------------------------------------------
# 2. NVML failing, no nvidia-smi


def test_nvml_driver_not_loaded_without_nvidia_smi_is_a_broken_driver(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pynvml

    def not_loaded() -> dict[str, object]:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)

    monkeypatch.setattr(probe_module, "_nvml_record", not_loaded)
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    out = probe_module._collect_nvidia()
    assert out["nvml_error"] == "Driver Not Loaded" and out["smi_path"] is None
    facts = facts_from_raw(RawHost(nvml_error=out["nvml_error"]))
    assert facts.nvidia.error and "Driver Not Loaded" in facts.nvidia.error
    findings = evaluate(facts)
    broken = _one(findings, "nvidia-driver-broken")
    assert broken.level == "error" and "NVML" in broken.what
    assert "no-gpu" not in [f.code for f in findings]
    assert broken_driver_error(facts, "torch") is not None  # --resolve picks no CPU build


def test_nvml_that_hangs_without_nvidia_smi_is_a_probe_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe_module, "NVML_TIMEOUT_S", 0.2)
    monkeypatch.setattr(probe_module, "_nvml_record", lambda: time.sleep(5))
    monkeypatch.setenv("PATH", str(tmp_path))
    out = probe_module._collect_nvidia()
    assert out["nvml_error"] == "NVML did not answer within 0.2 s"
    facts = facts_from_raw(RawHost(nvml_error=out["nvml_error"]))
    codes = _codes(facts)
    assert "nvidia-probe-failed" in codes and "no-gpu" not in codes
    assert broken_driver_error(facts, "torch") is not None
    _pastes(_one(evaluate(facts), "nvidia-probe-failed").fix)


@pytest.mark.parametrize("error", ["NVML Shared Library Not Found",
                                   "nvidia-ml-py (pynvml) is not installed"])
def test_no_nvml_and_no_nvidia_smi_is_still_no_gpu(error: str) -> None:
    facts = facts_from_raw(RawHost(nvml_error=error))
    assert facts.nvidia.error is None
    assert [f for f in facts.failures if f.probe != "docker"] == []
    assert "no-gpu" in _codes(facts)
    assert not any(f.code.startswith("nvidia-") for f in evaluate(facts))


# ------------------------------------------------------------------------------------------
# 3. nvidia-smi output without end; a probe that raises


def _script(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_nvidia_smi_output_without_end_is_cut_at_a_mebibyte(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe_module, "SMI_TIMEOUT_S", 4.0)  # before the fix it ran this long
    _script(tmp_path / "bin", "nvidia-smi", f'exec yes "{SMI_ROW}"')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    start = time.monotonic()
    out = probe_module._collect_nvidia()
    assert time.monotonic() - start < 3.0
    query = out["smi_query"]
    assert query.error == "printed more than 1 MiB (stopped reading)"
    assert len(query.output) <= probe_module.OUTPUT_LIMIT_BYTES
    facts = facts_from_raw(RawHost(**out))
    assert facts.nvidia.gpus == () and facts.nvidia.error
    assert "nvidia-probe-failed" in _codes(facts)


def test_run_command_keeps_small_output_as_it_was() -> None:
    result = run_command(["/bin/sh", "-c", "printf 'a\\r\\nb\\n'; echo err >&2; exit 3"], 5)
    assert (result.output, result.returncode, result.error) == ("a\nb\nerr\n", 3, None)


def test_nvidia_smi_rows_are_parsed_up_to_a_limit() -> None:
    result = parse_nvidia_smi_csv((SMI_ROW + "\n") * 1000)
    assert result.gpus == () and result.error
    assert "more than" in result.error
    assert len(parse_nvidia_smi_csv((SMI_ROW + "\n") * 8).gpus) == 8


def test_an_exception_in_the_nvidia_probe_keeps_nvidia_smi_and_is_a_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    smi = _script(tmp_path / "bin", "nvidia-smi", f'echo "{SMI_ROW}"')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")

    def out_of_memory() -> dict[str, object]:
        raise MemoryError("3 GB of nvidia-smi output")

    monkeypatch.setattr(probe_module, "_collect_nvidia", out_of_memory)
    raw = collect_raw(deep=False)
    assert raw.smi_path == str(smi)
    facts = facts_from_raw(raw)
    assert ProbeFailure("nvidia", "3 GB of nvidia-smi output") in facts.failures
    codes = _codes(facts)
    assert "no-gpu" not in codes and "nvidia-probe-failed" in codes
    assert codes.count("probe-failed") == 0  # the nvidia finding says it, once
    save_raw(raw, tmp_path / "rec")
    assert facts_from_raw(load_raw(tmp_path / "rec")).failures == facts.failures


# ------------------------------------------------------------------------------------------
# 4. Docker: the fix for the cause


def test_docker_that_does_not_answer_is_told_to_restart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "d.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(8)  # takes connections (the kernel's backlog), never answers
    try:
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        out = probe_module._collect_docker()
    finally:
        server.close()
    assert out.get("docker_info") is None and out["docker_error"]
    finding = _one(evaluate(facts_from_raw(RawHost(docker_error=out["docker_error"]))),
                   "docker-unreachable")
    assert "sudo systemctl restart docker" in finding.fix
    _pastes(finding.fix)


def test_docker_that_is_not_running_is_told_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    out = probe_module._collect_docker()
    finding = _one(evaluate(facts_from_raw(RawHost(docker_error=out["docker_error"]))),
                   "docker-unreachable")
    assert "sudo systemctl start docker" in finding.fix and "DOCKER_HOST" in finding.fix
    assert "usermod" not in finding.fix
    _pastes(finding.fix)


@pytest.mark.parametrize("said", [
    probe_module._docker_error_text(PermissionError(13, "Permission denied")),
    # the docker CLI's words, when the SDK is not installed
    "permission denied while trying to connect to the Docker daemon socket at "
    "unix:///var/run/docker.sock: Get \"http://%2Fvar%2Frun%2Fdocker.sock/v1.24/info\"",
])
def test_docker_permission_denied_is_told_to_join_the_group(said: str) -> None:
    finding = _one(evaluate(facts_from_raw(RawHost(docker_error=said))), "docker-unreachable")
    assert "sudo usermod -aG docker $USER" in finding.fix and "log in again" in finding.fix
    assert "systemctl" not in finding.fix


# ------------------------------------------------------------------------------------------
# 5. nvidia-smi's own words, its exit code, and garbage


def test_nvidia_smi_without_libnvidia_ml_is_a_broken_driver() -> None:
    output = ("NVIDIA-SMI couldn't find libnvidia-ml.so library in your system. Please make "
              "sure that the NVIDIA Display Driver is properly installed and present in your "
              "system.\nPlease also try adding directory that contains libnvidia-ml.so to your "
              "system PATH.\n")
    assert parse_nvidia_smi_csv(output).error == output.splitlines()[0]
    facts = facts_from_raw(RawHost(smi_path="/usr/bin/nvidia-smi", smi_query=CommandOutput(
        QUERY_ARGV, output=output, returncode=12)))
    broken = _one(evaluate(facts), "nvidia-driver-broken")
    assert broken.level == "error" and "libnvidia-ml.so" in broken.why
    assert broken.what == f"probe nvidia-smi failed: {output.splitlines()[0]}"


def test_nvidia_smi_garbage_and_an_exit_code_says_the_exit_code() -> None:
    facts = facts_from_raw(RawHost(smi_path="/usr/bin/nvidia-smi", smi_query=CommandOutput(
        QUERY_ARGV, output="Segmentation fault (core dumped)\n", returncode=139)))
    assert facts.nvidia.error is not None and facts.nvidia.error.endswith("; exit code 139")


def test_nvidia_smi_killed_by_a_signal_says_so() -> None:
    facts = facts_from_raw(RawHost(smi_path="/usr/bin/nvidia-smi", smi_query=CommandOutput(
        QUERY_ARGV, output="", returncode=-11)))
    assert facts.nvidia.error == "nvidia-smi printed no GPU; killed by signal 11 (SIGSEGV)"
    # a crash is a broken driver, an error (docs/doctor.md; review 11: it was a warning)
    broken = _one(evaluate(facts), "nvidia-driver-broken")
    assert broken.level == "error" and "signal 11" in broken.what


def test_garbage_from_nvidia_smi_imports_no_framework(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _script(tmp_path / "bin", "nvidia-smi", 'echo "hello world this is not csv"')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    # were a framework imported, this stand-in torch would say so
    _fake_package(tmp_path / "site", "torch", "raise SystemExit(7)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    raw = collect_raw()
    assert raw.smi_path == str(tmp_path / "bin" / "nvidia-smi")
    assert all(item.deep_output is None and item.deep_error is None for item in raw.frameworks)
    assert facts_from_raw(raw).nvidia.gpus == ()


def test_a_recorded_nvidia_error_of_another_type_is_refused(tmp_path: Path) -> None:
    import json

    from dlbox.hostenv.recording import RecordingError

    save_raw(RawHost(nvidia_error="MemoryError"), tmp_path / "rec")
    meta = json.loads((tmp_path / "rec" / "host.json").read_text())
    assert meta["nvidia_error"] == "MemoryError"
    meta["nvidia_error"] = 4
    (tmp_path / "rec" / "host.json").write_text(json.dumps(meta))
    with pytest.raises(RecordingError, match="'nvidia_error' must be a string or null, got a "
                                             r"number \(4\)"):
        load_raw(tmp_path / "rec")
