"""The real probe on this machine, recordings, and probe failures as facts."""

from __future__ import annotations

import shutil
import subprocess
import sys
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


def test_real_probe_finds_no_gpu_here() -> None:
    """(Its speed is no timed assertion, which a loaded CI machine breaks: what keeps it quick
    is that no framework is imported, the next test's.)"""
    if _has_nvidia():
        pytest.skip("this machine has an NVIDIA driver; the GPU test covers it")
    facts = probe_host()
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
    # it ran and hung: the user reads that, not "did not run" (found in review)
    assert facts.nvidia.error == "nvidia-smi timed out after 10 s"
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


# tensorflow/python/platform/build_info.py as TF 2.4+ wheels ship it: the generated header, then
# the build info as an OrderedDict of sorted pairs (format of the published files, e.g.
# tf_gpu-2.9.1 and keras' vendored copy; values of TF 2.15.1's Linux wheel, whose
# tf.sysconfig.get_build_info() reports CUDA 12.2 / cuDNN 8)
TF_BUILD_INFO_2_15 = '''# Copyright 2020 The TensorFlow Authors. All Rights Reserved.
# ==============================================================================
"""Auto-generated module providing information about the build."""
import collections

build_info = collections.OrderedDict([('cpu_compiler', '/usr/lib/llvm-16/bin/clang'), \
('cuda_compute_capabilities', ['sm_50', 'sm_60', 'sm_70', 'sm_80', 'compute_90']), \
('cuda_version', '12.2'), ('cudnn_version', '8'), ('is_cuda_build', True), \
('is_rocm_build', False), ('is_tensorrt_build', True)])
'''


def test_tensorflow_cuda_build_read_from_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = tmp_path / "tensorflow" / "python" / "platform"
    platform.mkdir(parents=True)
    (tmp_path / "tensorflow" / "__init__.py").write_text("")
    (platform / "build_info.py").write_text(TF_BUILD_INFO_2_15)
    monkeypatch.syspath_prepend(str(tmp_path))
    raw = probe_module._collect_framework_files("tensorflow")
    assert (raw.installed, raw.build_cuda, raw.build_cudnn) == (True, "12.2", "8")
    # TF 1.x-2.2 wrote module-level names
    (platform / "build_info.py").write_text(
        "is_rocm_build = False\nis_cuda_build = True\ncuda_version_number = '10.0'\n"
        "cudnn_version_number = '7'\n")
    raw = probe_module._collect_framework_files("tensorflow")
    assert (raw.build_cuda, raw.build_cudnn) == ("10.0", "7")


def test_tensorflow_probe_before_get_build_info(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # TF < 2.3 has no tf.sysconfig.get_build_info() (and TF < 1.14 no tf.config): the probe
    # reads build_info's module-level names and lists GPUs through device_lib instead of
    # failing. A stand-in package with just those parts of the 1.x API:
    package = tmp_path / "tensorflow"
    (package / "python" / "platform").mkdir(parents=True)
    (package / "python" / "client").mkdir(parents=True)
    (package / "__init__.py").write_text(
        "__version__ = '1.12.3'\nclass sysconfig:\n    pass\n")
    (package / "python" / "__init__.py").write_text("")
    (package / "python" / "platform" / "__init__.py").write_text("")
    (package / "python" / "platform" / "build_info.py").write_text(
        "is_cuda_build = True\ncuda_version_number = '9.0'\ncudnn_version_number = '7'\n")
    (package / "python" / "client" / "__init__.py").write_text("")
    (package / "python" / "client" / "device_lib.py").write_text(
        "class _Device:\n    def __init__(self, kind):\n        self.device_type = kind\n"
        "def list_local_devices():\n    return [_Device('CPU'), _Device('GPU')]\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    output, error = probe_module._deep_probe("tensorflow")
    assert error is None and output is not None
    facts = probe_module.framework_from_probe_json("tensorflow", output)
    assert facts.error is None
    assert (facts.version, facts.cuda, facts.cudnn) == ("1.12.3", "9.0", "7")
    assert (facts.gpu_available, facts.visible_gpus) == (True, 1)


def test_nvml_driver_without_gpus_and_without_nvidia_smi() -> None:
    # NVML answers (driver loaded) but lists no GPU, and nvidia-smi is not on PATH: that is
    # "a driver but no visible GPU", not "no NVIDIA driver"
    raw = RawHost(nvml={"driver_version": "550.54.15", "cuda_driver_version": 12040, "gpus": []})
    facts = facts_from_raw(raw)
    assert (facts.nvidia.driver_version, facts.nvidia.gpus) == ("550.54.15", ())
    codes = [f.code for f in evaluate(facts)]
    assert "no-gpu-visible" in codes and "no-gpu" not in codes


def test_recording_keeps_the_nvidia_hook(tmp_path: Path) -> None:
    from dataclasses import replace

    raw = replace(load_raw(HOSTS / "gpu-no-container-runtime"),
                  nvidia_hook_path="/usr/bin/nvidia-container-runtime-hook")
    save_raw(raw, tmp_path / "rec")
    again = load_raw(tmp_path / "rec")
    assert again.nvidia_hook_path == "/usr/bin/nvidia-container-runtime-hook"
    assert facts_from_raw(again).docker.nvidia_hook is True


def test_jax_before_the_cuda_plugins_is_a_cuda_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # jax < 0.4.26 came with a CUDA jaxlib from the jax releases index (jax[cuda12_pip]):
    # its version carries the CUDA major, e.g. "0.4.25+cuda12.cudnn89"; no plugin package
    (tmp_path / "jax").mkdir()
    (tmp_path / "jax" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    versions = {"jax": "0.4.25", "jaxlib": "0.4.25+cuda12.cudnn89"}
    monkeypatch.setattr(probe_module, "_dist_version",
                        lambda names: next((versions[n] for n in names if n in versions), None))
    raw = probe_module._collect_framework_files("jax")
    assert (raw.dist_version, raw.build_cuda) == ("0.4.25", "12")
    versions["jaxlib"] = "0.4.25"  # the CPU jaxlib from PyPI
    assert probe_module._collect_framework_files("jax").build_cuda is None


def test_the_docker_error_names_the_socket_docker_host_points_at(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # doctor named /var/run/docker.sock (present and fine) when DOCKER_HOST pointed elsewhere
    from dlbox.hostenv.probe import _docker_error_text

    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/nonexist.sock")
    missing = _docker_error_text(FileNotFoundError(2, "No such file or directory"))
    assert "no socket at /tmp/nonexist.sock" in missing and "/var/run" not in missing
    denied = _docker_error_text(PermissionError(13, "Permission denied"))
    assert "permission denied on /tmp/nonexist.sock" in denied
    monkeypatch.delenv("DOCKER_HOST")
    assert "no socket at /var/run/docker.sock" in _docker_error_text(
        FileNotFoundError(2, "No such file or directory"))


def test_recording_again_into_a_folder_replaces_the_earlier_recording_whole(
        tmp_path: Path) -> None:
    # A second --record into the same folder left the first one's files that the second
    # did not write (nvml.json of a GPU host): replayed, the two hosts were mixed into one.
    from dlbox.hostenv.probe import save_recording

    folder = tmp_path / "rec"
    gpu = load_raw(HOSTS / "healthy-h100-cuda13")
    cpu = load_raw(HOSTS / "cpu-only-host")
    save_recording(gpu, folder)
    assert (folder / "nvml.json").is_file() and load_raw(folder) == gpu
    (folder / "SOURCE.md").write_text("how this host was recorded\n")  # a fixture's own
    save_recording(cpu, folder)
    assert not (folder / "nvml.json").exists()
    assert facts_from_raw(load_raw(folder)) == facts_from_raw(cpu)
    assert (folder / "SOURCE.md").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec"]  # nothing beside it


def test_a_recording_goes_into_dot_or_a_link_in_place(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # `--record .` and a link to a folder (or a mount point) failed once the recording was
    # made beside the folder and renamed into place.
    from dlbox.hostenv.probe import save_recording

    real = tmp_path / "real"
    real.mkdir()
    monkeypatch.chdir(real)
    save_recording(load_raw(HOSTS / "healthy-h100-cuda13"), Path("."))
    assert (real / "nvml.json").is_file() and (real / "host.json").is_file()
    (tmp_path / "link").symlink_to(real)
    save_recording(load_raw(HOSTS / "cpu-only-host"), tmp_path / "link")
    assert (tmp_path / "link").is_symlink() and not (real / "nvml.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_record_refuses_a_folder_of_other_files(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # "pass a new or empty folder", said the hint, yet --record wrote into any folder
    from dlbox.cli import main

    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    assert main(["doctor", "--record", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"error: {folder} is not empty and holds no dlbox recording" in err
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_a_recording_leaves_out_passwords_in_urls(tmp_path: Path) -> None:
    """Found by review: `doctor --record` copied daemon.json whole, a proxy's and a
    registry mirror's password in it, into a recording the docs say to share or commit."""
    from dataclasses import replace

    daemon = ('{"proxies": {"http-proxy": "http://alice:s3cret@proxy.corp:3128"},\n'
              ' "registry-mirrors": ["https://tok123@mirror.corp"], "runtimes": {}}')
    info = '{"HttpProxy": "http://alice:s3cret@proxy.corp:3128", "ServerVersion": "26.1"}'
    raw = replace(load_raw(HOSTS / "two-gpus-mixed"), docker_daemon_json=daemon,
                  docker_info=info)
    save_raw(raw, tmp_path / "rec")
    saved = "".join(path.read_text() for path in (tmp_path / "rec").iterdir())
    assert "s3cret" not in saved and "tok123" not in saved and "alice" not in saved
    again = load_raw(tmp_path / "rec")
    assert again.docker_daemon_json is not None
    assert '"http://***@proxy.corp:3128"' in again.docker_daemon_json
    assert facts_from_raw(again).docker == facts_from_raw(replace(raw, docker_info=info)).docker


def test_a_corrupted_inforom_is_a_warning_and_the_answer_is_kept() -> None:
    """Found by review: nvidia-smi's "WARNING: infoROM is corrupted at gpu ..." line and its
    exit code 14 made the query count as failed; doctor fell back to -q and said all was OK,
    the warning dropped."""
    output = ("WARNING: infoROM is corrupted at gpu 0000:B3:00.0\n"
              "NVIDIA A100-SXM4-40GB, 8.0, 40960 MiB, 550.54.15\n")
    raw = RawHost(smi_path="/usr/bin/nvidia-smi",
                  smi_query=CommandOutput(("nvidia-smi", "--query-gpu=name,compute_cap,"
                                           "memory.total,driver_version",
                                           "--format=csv,noheader"), output=output,
                                          returncode=14))
    facts = facts_from_raw(raw)
    assert facts.nvidia.error is None
    assert (facts.nvidia.driver_version, facts.nvidia.compute_capabilities) == (
        "550.54.15", ("8.0",))
    inforom = [f for f in evaluate(facts) if f.code == "gpu-inforom"]
    assert len(inforom) == 1 and inforom[0].level == "warn"
    assert inforom[0].what == "nvidia-smi warns: infoROM is corrupted at gpu 0000:B3:00.0"
    assert not any(f.code == "probe-failed" for f in evaluate(facts))
    # another failing exit code is still a failed query
    other = facts_from_raw(RawHost(smi_path="/usr/bin/nvidia-smi", smi_query=CommandOutput(
        raw.smi_query.argv, output=output, returncode=9)))
    assert other.nvidia.error == "exit code 9"


def test_torchvision_and_torchaudio_beside_torch_are_recorded_and_replayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by review: each torchvision / torchaudio release pins one torch exactly, so a torch
    fix must take them along; the probe did not see them. A dist-info on sys.path is what pip
    leaves, and what importlib.metadata reads."""
    site = tmp_path / "site"
    for name, version in (("torchvision", "0.19.1"), ("torchaudio", "2.4.1")):
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    monkeypatch.syspath_prepend(str(site))
    raw = RawHost(frameworks=(probe_module._collect_framework_files("torch"),))
    torch = facts_from_raw(raw).framework("torch")
    assert torch is not None
    assert torch.companions == {"torchvision": "0.19.1", "torchaudio": "2.4.1"}
    save_raw(raw, tmp_path / "rec")
    replayed = facts_from_raw(load_raw(tmp_path / "rec")).framework("torch")
    assert replayed is not None and replayed.companions == torch.companions
    # a recording made before they were kept has none, and loads as it did
    assert facts_from_raw(load_raw(HOSTS / "two-gpus-mixed")).framework("torch").companions == {}
