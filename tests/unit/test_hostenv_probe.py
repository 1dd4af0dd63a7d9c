"""The real probe on this machine, recordings, and probe failures as facts."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlbox.hostenv import probe as probe_module
from dlbox.hostenv.probe import (
    CommandOutput,
    RawHost,
    collect_raw,
    facts_from_raw,
    load_raw,
    probe_host,
    run_command,
    save_raw,
)
from dlbox.hostenv.rules import evaluate

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"


def _has_nvidia() -> bool:
    return shutil.which("nvidia-smi") is not None or Path("/dev/nvidiactl").exists()


def test_real_probe_is_quick_and_finds_no_gpu_here() -> None:
    if _has_nvidia():
        pytest.skip("this machine has an NVIDIA driver; the GPU test covers it")
    start = time.monotonic()
    facts = probe_host()
    elapsed = time.monotonic() - start
    assert elapsed < 2.0, f"probe took {elapsed:.2f} s"
    assert facts.nvidia.gpus == () and facts.nvidia.driver_version is None
    assert facts.system.python == ".".join(map(str, sys.version_info[:3]))
    assert facts.system.cpu_count and facts.system.ram_total_mib
    torch = next(f for f in facts.frameworks if f.name == "torch")
    assert torch.installed and torch.version  # read from files, torch is not imported
    findings = evaluate(facts)
    assert any(f.code == "no-gpu" for f in findings)
    assert not any(f.level == "error" for f in findings)


def test_probe_does_not_import_frameworks_without_a_gpu() -> None:
    if _has_nvidia():
        pytest.skip("with a GPU the probe imports frameworks in a subprocess")
    raw = collect_raw()
    assert all(item.deep_output is None for item in raw.frameworks)
    code = ("import sys; from dlbox.hostenv.probe import probe_host; probe_host(); "
            "print(sorted(m for m in ('torch', 'tensorflow', 'jax') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.strip() == "[]", proc.stderr


def test_record_and_replay_roundtrip(tmp_path: Path) -> None:
    raw = load_raw(HOSTS / "two-gpus-mixed")
    save_raw(raw, tmp_path / "copy")
    again = load_raw(tmp_path / "copy")
    assert again == raw
    assert facts_from_raw(again) == facts_from_raw(raw)


def test_real_recording_roundtrip(tmp_path: Path) -> None:
    raw = collect_raw(deep=False)
    save_raw(raw, tmp_path / "here")
    assert (tmp_path / "here" / "host.json").is_file()
    assert facts_from_raw(load_raw(tmp_path / "here")) == facts_from_raw(raw)


def test_run_command_never_raises() -> None:
    missing = run_command(["/nonexistent/nvidia-smi", "-q"], timeout=1)
    assert missing.error == "not found"
    slow = run_command([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.3)
    assert slow.error == "timed out after 0.3 s"
    ok = run_command([sys.executable, "-c", "print('hi')"], timeout=10)
    assert (ok.output.strip(), ok.returncode, ok.error) == ("hi", 0, None)


def test_docker_unreachable_is_a_fact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    out = probe_module._collect_docker()
    assert out.get("docker_info") is None and out["docker_error"]
    facts = facts_from_raw(RawHost(docker_error=out["docker_error"]))
    assert not facts.docker.reachable
    assert any(f.what.startswith("probe docker failed: ") for f in evaluate(facts))


def test_nvidia_smi_timeout_becomes_a_failure() -> None:
    raw = RawHost(smi_path="/usr/bin/nvidia-smi",
                  smi_query=CommandOutput(("nvidia-smi",), error="timed out after 10 s"))
    facts = facts_from_raw(raw)
    assert [str(f) for f in facts.failures if f.probe == "nvidia-smi"] == [
        "probe nvidia-smi failed: timed out after 10 s"]
    assert facts.nvidia.error == "nvidia-smi did not run"
    assert any(f.what.startswith("probe nvidia-smi failed") for f in evaluate(facts))


def test_system_probe_failure_is_a_fact(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(disk_path: str | None = None) -> None:
        raise OSError("cwd was deleted")

    monkeypatch.setattr(probe_module, "probe_system", broken)
    facts = facts_from_raw(collect_raw(deep=False))
    assert "probe system failed: cwd was deleted" in [str(f) for f in facts.failures]
    assert any(f.what == "probe system failed: cwd was deleted" for f in evaluate(facts))


def test_framework_probe_failure_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(probe_module.DEEP_PROBE, "torch", "raise SystemExit(3)")
    output, error = probe_module._deep_probe("torch")
    assert output is None and error and "printed no result" in error
