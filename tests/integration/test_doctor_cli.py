"""`dlbox doctor` end to end: this host, recorded hosts (--replay), --resolve, and a real GPU."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dlbox.cli import main

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_doctor_on_this_host(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["doctor"], capsys)
    assert code in (0, 1)
    assert "dlbox doctor" in out and "Python" in out and "torch" in out
    assert "error(s)" in out


def test_doctor_json_on_this_host(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["doctor", "--json"], capsys)
    report = json.loads(out)
    assert set(report) >= {"facts", "findings", "summary", "recommended"}
    assert report["summary"]["errors"] == sum(f["level"] == "error" for f in report["findings"])
    assert code == (1 if report["summary"]["errors"] else 0)
    assert report["recommended"]["torch"]["requirements"][0].startswith("torch==")


@pytest.mark.parametrize("name, code", [
    ("healthy-gpu-rtx3090", 0), ("cpu-only-host", 0), ("new-gpu-old-torch", 1),
    ("old-driver-new-cuda-build", 1), ("nvml-driver-library-mismatch", 1),
    ("gpu-no-container-runtime", 0), ("two-gpus-mixed", 1),
])
def test_replay_exit_codes(name: str, code: int, capsys: pytest.CaptureFixture[str]) -> None:
    got, out, _ = run_cli(["doctor", "--replay", str(HOSTS / name)], capsys)
    assert got == code
    expected = json.loads((HOSTS / name / "expected.json").read_text())
    labels = [line.split()[0] for line in out.splitlines()
              if line.split() and line.split()[0] in ("ERROR", "WARN", "OK")]
    assert labels == [{"error": "ERROR", "warn": "WARN", "ok": "OK"}[level]
                      for level, _ in expected["findings"]]


def test_replay_json_has_findings_and_recommendation(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["doctor", "--json", "--replay", str(HOSTS / "new-gpu-old-torch")],
                           capsys)
    report = json.loads(out)
    assert code == 1
    assert report["findings"][0]["code"] == "arch-not-in-build"
    assert report["facts"]["nvidia"]["gpus"][0]["compute_capability"] == "12.0"
    torch = report["recommended"]["torch"]
    assert (torch["version"], torch["variant"]) == ("2.11.0", "cu128")


def test_cuda_on_a_host_without_a_driver_names_the_host_not_a_cpu_flag(
        capsys: pytest.CaptureFixture[str]) -> None:
    # Found in review: "a CPU-only build cannot have a CUDA version / hint: ... drop --cpu",
    # to a user who gave no --cpu (the host has no driver).
    code, _, err = run_cli(["doctor", "--resolve", "torch", "--cuda", "12.6", "--replay",
                            str(HOSTS / "cpu-only-host")], capsys)
    assert code == 2
    # a recording, not this machine; and --driver cannot go with --replay (review: the hint
    # sent to that, which is refused)
    assert err.splitlines() == [
        "error: --cuda 12.6: the recorded host has no NVIDIA driver, so it resolves a "
        "CPU-only build, which has no CUDA version",
        "hint: to resolve for a GPU machine, leave --replay out and add its --driver VERSION "
        "(and --compute-capability X.Y); or drop --cuda"]


def test_a_tensorflow_1_build_lists_only_the_pythons_dlbox_takes(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: TensorFlow 1.12's Pythons were shown as 2.7, 3.3, ..., and `--python
    2.7` is refused (dlbox resolves for Python 3 only)."""
    code, out, _ = run_cli(["doctor", "--resolve", "tensorflow", "--framework-version", "1.12",
                            "--driver", "384.81", "--compute-capability", "6.1"], capsys)
    assert code == 0
    [line] = [line for line in out.splitlines() if line.strip().startswith("Python")]
    assert line.split() == ["Python", "3.3,", "3.4,", "3.5,", "3.6"]


@pytest.mark.parametrize("args, message", [
    (["--driver", ""], "--driver was given an empty value"),
    (["--resolve", "torch", "--framework-version", " "],
     "--framework-version was given an empty value"),
    (["--resolve", "torch", "--driver", "535.104.05", "--compute-capability", ""],
     "--compute-capability was given an empty value"),
    (["--record", ""], "--record was given an empty path"),
    (["--resolve", "torch", "--driver", "535.104.05", "--replay", "/nonexistent"],
     "--record and --replay are about a real host; --driver, --compute-capability and --cpu "
     "describe a hypothetical one"),
    (["--resolve", "torch", "--framework-version", "1.0"],
     "torch 1.0 is older than dlbox's compatibility data"),
    (["--resolve", "torch", "--framework-version", "2.7", "--cuda", "13.0", "--driver",
      "580.65.06"], "torch 2.7 has no CUDA 13.0 build (its CUDA builds: 11.8, 12.6, 12.8)"),
    # found by review: printed `pip install torch==2.1.99`, a release that never was
    (["--resolve", "torch", "--framework-version", "2.1.99", "--cpu"],
     "torch 2.1.99 is not a torch release dlbox knows"),
    # review: "2" was matched to TF 1.15's row (CUDA 10.0, Python <= 3.7) and called older
    # than torch 2.0; a build's tag (+cu118) went into an install line no index serves
    (["--resolve", "tensorflow", "--cpu", "--framework-version", "2"],
     "--framework-version '2' is not a release or a version"),
    (["--resolve", "torch", "--driver", "550.54.14", "--compute-capability", "8.6",
      "--framework-version", "2.5.1+cu118"],
     "--framework-version '2.5.1+cu118' names a build (cu118), not only a version: dlbox "
     "picks the build for the target\nhint: pass --framework-version 2.5.1 with --cuda 11.8"),
    (["--resolve", "torch", "--framework-version", "2.5.1+cpu"],
     "--framework-version '2.5.1+cpu' names a build (cpu), not only a version: dlbox picks "
     "the build for the target\nhint: pass --framework-version 2.5.1 with --cpu"),
    (["--resolve", "torch", "--cuda", "12.5", "--driver", "580.65.06"],
     "no torch release of 2.0.1 to 2.15.0 has a CUDA 12.5 build (their CUDA builds: 11.7, "
     "11.8, 12.1, 12.4, 12.6, 12.8, 12.9, 13.0, 13.2)"),
])
def test_doctor_refuses_what_it_would_otherwise_get_wrong(
        args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Found in review: an empty --driver or --framework-version ("$V" unset) was read as
    not given; --record/--replay were ignored beside a hypothetical host; torch 1.0 resolved
    with Python and CUDA facts copied from 2.0; a pinned torch without a CUDA 13.0 build
    said that no torch in the matrix had one."""
    code, out, err = run_cli(["doctor", *args], capsys)
    assert code in (1, 2) and out == "", out
    assert err.startswith(f"error: {message}"), err
    assert "hint: " in err


def test_resolve_hypothetical_host(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["doctor", "--resolve", "torch", "--driver", "570.86.16",
                            "--compute-capability", "12.0", "--json"], capsys)
    assert code == 0
    build = json.loads(out)["build"]
    assert (build["version"], build["variant"], build["cuda"]) == ("2.11.0", "cu128", "12.8")
    assert build["wheel_index"] == "https://download.pytorch.org/whl/cu128"
    code, out, _ = run_cli(["doctor", "--resolve", "torch", "--driver", "535.104.05",
                            "--compute-capability", "8.6", "--compute-capability", "6.1"], capsys)
    assert code == 0
    assert out.startswith("torch 2.14.1 (cu126)")
    assert "pip install torch==2.14.1 --index-url https://download.pytorch.org/whl/cu126" in out
    assert "why:" in out


def test_resolve_shows_what_it_used_and_a_line_that_pastes(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Review: --json's target was the input as typed (" 535.104.05 ", sm_86 twice, Python
    3.11.4, an internal flag); the install line left jax[cuda13] unquoted, a glob to zsh;
    Python 2.7 was refused and then suggested; compute capability 4.0 (no GPU has it) was
    called Kepler."""
    code, out, _ = run_cli(["doctor", "--resolve", "torch", "--driver", " 535.104.05 ",
                            "--compute-capability", "sm_86", "--compute-capability", "8.6",
                            "--python", "3.11.4", "--json"], capsys)
    assert code == 0
    assert json.loads(out)["target"] == {"driver": "535.104.05", "compute_capabilities": ["8.6"],
                                         "cpu": False, "python": "3.11", "cuda": None,
                                         "version": None}
    code, out, _ = run_cli(["doctor", "--resolve", "jax", "--driver", "580.95.05",
                            "--compute-capability", "9.0"], capsys)
    assert code == 0 and re.search(r"install +pip install 'jax\[cuda13\]==[\d.]+'$", out, re.M)
    code, _, err = run_cli(["doctor", "--resolve", "tensorflow", "--cpu", "--python", "3.14"],
                           capsys)
    assert code != 0 and "hint: use one of Python 3." in err and "2.7" not in err
    code, _, err = run_cli(["doctor", "--resolve", "torch", "--driver", "535.104.05",
                            "--compute-capability", "4.0"], capsys)
    assert code == 2 and err.startswith("error: compute capability '4.0' is not one an NVIDIA "
                                        "GPU has (they run from 1.0 to 12.x, with no 4.x)")
    # a tag no build has is not read as a CUDA version (review: cu12 gave --cuda 1.2)
    code, _, err = run_cli(["doctor", "--resolve", "torch", "--cpu", "--framework-version",
                            "2.5.1+cu12"], capsys)
    assert code == 2 and err.splitlines()[-1] == "hint: pass --framework-version 2.5.1"


def test_resolve_cpu_and_python(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["doctor", "--resolve", "tensorflow", "--cpu", "--python", "3.9",
                            "--json"], capsys)
    build = json.loads(out)["build"]
    assert code == 0 and build["requirements"] == ["tensorflow-cpu==2.20.0"]


def test_resolve_pinned_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["doctor", "--resolve", "torch", "--framework-version", "2.7",
                            "--driver", "570.86.16", "--compute-capability", "12.0", "--json"],
                           capsys)
    assert code == 0
    build = json.loads(out)["build"]
    assert (build["version"], build["variant"]) == ("2.7.1", "cu128")


def test_resolve_a_post_release_and_a_gpu_no_python_serves(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found in review: tensorflow 2.15.0.post1 (a real PyPI post-release) was "not a release
    or a version"; a K80 was told to try "another --python" for jax, which no Python has."""
    code, out, _ = run_cli(["doctor", "--resolve", "tensorflow", "--framework-version",
                            "2.15.0.post1", "--driver", "550.54.14", "--compute-capability",
                            "8.6", "--json"], capsys)
    assert code == 0
    assert json.loads(out)["build"]["requirements"] == ["tensorflow[and-cuda]==2.15.0.post1"]
    code, _, err = run_cli(["doctor", "--resolve", "jax", "--driver", "470.256.02",
                            "--compute-capability", "3.7", "--python", "3.11"], capsys)
    assert code != 0
    assert err.splitlines()[-1] == "hint: no jax GPU build supports this GPU: resolve with --cpu"


def test_resolve_for_this_host(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["doctor", "--resolve", "jax", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["build"]["framework"] == "jax"


@pytest.mark.parametrize("args, needle", [
    (["doctor", "--resolve", "torch", "--driver", "banana"], "not a version number"),
    (["doctor", "--driver", "535.104.05"], "go with --resolve"),
    (["doctor", "--resolve", "torch", "--cpu", "--driver", "535.104.05"], "--cpu cannot"),
    (["doctor", "--replay", "/nonexistent/recording"],
     "/nonexistent/recording does not exist: --replay takes a recording's folder"),
])
def test_usage_errors(args: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(args, capsys)
    assert code == 2
    assert needle in err and "hint:" in err


def _broken_recording(tmp_path: Path, file: str, mutate: Any) -> Path:
    folder = tmp_path / "rec"
    shutil.copytree(HOSTS / "healthy-gpu-rtx3090", folder)
    data = json.loads((folder / file).read_text())
    (folder / file).write_text(json.dumps(mutate(data)))
    return folder


def _set(key: str, value: Any, under: str | None = None) -> Any:
    def mutate(data: Any) -> Any:
        (data[under] if under else data)[key] = value
        return data
    return mutate


@pytest.mark.parametrize("file, mutate, problem", [
    ("host.json", lambda d: [d],
     "must hold a JSON object (system, commands, frameworks, ...), got a list"),
    ("host.json", _set("commands", []),
     "'commands' must be an object of command -> output (e.g. {\"smi_q\": {...}}), got a list"),
    ("host.json", _set("commands", None),
     "'commands' must be an object of command -> output (e.g. {\"smi_q\": {...}}), got null"),
    ("host.json", _set("frameworks", "torch"),
     "'frameworks' must be a list of framework objects, got a string (\"torch\")"),
    ("host.json", _set("cpu_count", "24", under="system"),
     "'system.cpu_count' must be a whole number >= 0 or null, got a string (\"24\")"),
    ("host.json", _set("in_container", "no", under="system"),
     "'system.in_container' must be true or false, got a string (\"no\")"),
    ("host.json", lambda d: {**d, "frameworks": [{**d["frameworks"][0], "name": None}]},
     "'frameworks[0].name' must be \"torch\" or \"tensorflow\" or \"jax\", got null"),
    ("host.json", _set("nvidia_hook_path", True),
     "'nvidia_hook_path' must be a string or null, got true"),
    ("nvml.json", _set("driver_version", None), "'driver_version' must be a string, got null"),
    ("nvml.json", _set("gpus", {}), "'gpus' must be a list of GPU objects, got an object"),
    ("nvml.json", _set("cuda_driver_version", "12020"),
     "'cuda_driver_version' must be a whole number >= 0 or null, got a string (\"12020\")"),
    ("torch-probe.json", _set("visible_gpus", "1"),
     "'visible_gpus' must be a whole number >= 0 or null, got a string (\"1\")"),
])
@pytest.mark.parametrize("extra", [[], ["--json"], ["--resolve", "torch"]],
                         ids=["text", "json", "resolve"])
def test_replay_of_a_wrong_shape_is_a_one_line_usage_error(
        tmp_path: Path, file: str, mutate: Any, problem: str, extra: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    folder = _broken_recording(tmp_path, file, mutate)
    code, out, err = run_cli(["doctor", "--replay", str(folder), *extra], capsys)
    assert code == 2
    error, hint = err.splitlines()
    if "--json" in extra:  # the same error, as JSON on stdout
        assert json.loads(out) == {"error": error.removeprefix("error: "),
                                   "hint": hint.removeprefix("hint: "), "exit_code": 2}
    else:
        assert out == ""
    assert error.startswith(f"error: {folder / file}: ") and error.endswith(problem)
    assert hint == ("hint: re-record it with: dlbox doctor --record DIR (the files and their "
                    "fields are described under 'Recordings' in docs/doctor.md)")


def test_replay_of_invalid_json_names_the_file(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "rec"
    shutil.copytree(HOSTS / "cpu-only-host", folder)
    (folder / "host.json").write_text('{"system": ')
    code, _, err = run_cli(["doctor", "--replay", str(folder)], capsys)
    assert code == 2
    assert err.startswith(f"error: {folder / 'host.json'}: not valid JSON (")
    assert "hint: re-record it with: dlbox doctor --record DIR" in err


def test_replay_of_the_host_json_file_points_at_its_folder(
        capsys: pytest.CaptureFixture[str]) -> None:
    file = HOSTS / "cpu-only-host" / "host.json"
    code, _, err = run_cli(["doctor", "--replay", str(file)], capsys)
    assert code == 2
    assert err.splitlines() == [
        f"error: {file} is a file: --replay takes a recording's folder (the one that holds "
        "host.json)",
        f"hint: pass its folder: dlbox doctor --replay {file.parent}",
    ]


def test_wrong_shape_in_a_subprocess_has_no_traceback(tmp_path: Path) -> None:
    folder = _broken_recording(tmp_path, "host.json", _set("commands", ["smi_q"]))
    proc = subprocess.run([sys.executable, "-m", "dlbox", "doctor", "--replay", str(folder)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 2


def test_nothing_fits_is_an_error_with_hint(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["doctor", "--resolve", "torch", "--driver", "440.33.01",
                            "--compute-capability", "7.5"], capsys)
    assert code == 1
    assert "error: driver 440.33.01 is older than every torch build needs" in err
    assert "hint: update the NVIDIA driver to >= 450.80.02" in err


def test_replay_of_an_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["doctor", "--replay", str(tmp_path)], capsys)
    assert (code, out) == (2, "")
    assert err.splitlines() == [f"error: {tmp_path} is not a dlbox host recording (no host.json)",
                                "hint: create one with: dlbox doctor --record DIR"]


def test_record_into_a_file_is_a_one_line_error(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("keep me")
    code, out, err = run_cli(["doctor", "--json", "--record", str(file)], capsys)
    assert code == 2 and json.loads(out)["exit_code"] == 2
    assert err.splitlines() == [
        f"error: {file} is a file: --record takes a folder to write the recording into",
        "hint: pass a new or empty folder, e.g. dlbox doctor --record host-rec/"]
    assert file.read_text() == "keep me"


def test_record_where_no_folder_can_be_made(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    target = blocker / "rec"  # a folder below a file cannot be created
    code, out, err = run_cli(["doctor", "--record", str(target)], capsys)
    # exit 2, before the probe: 1 is a host with an error finding, which a CI tells apart
    assert (code, out) == (2, "")
    error, hint = err.splitlines()
    assert error == f"error: cannot write the recording to {target}: {blocker} is not a folder"
    assert hint == "hint: pass a folder you can write to, e.g. dlbox doctor --record host-rec/"


def test_record_then_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["doctor", "--json", "--record", str(tmp_path / "rec")], capsys)
    first = json.loads(out)
    code2, out2, _ = run_cli(["doctor", "--json", "--replay", str(tmp_path / "rec")], capsys)
    assert code == code2
    assert json.loads(out2)["findings"] == first["findings"]


def test_entry_point_subprocess() -> None:
    proc = subprocess.run([sys.executable, "-m", "dlbox", "doctor", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    assert json.loads(proc.stdout)["facts"]["system"]["python"]


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.gpu
def test_doctor_json_reports_the_gpu() -> None:
    if not _cuda_available():
        pytest.skip("needs an NVIDIA GPU with CUDA")
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-m", "dlbox", "doctor", "--json"],
                          capture_output=True, text=True, timeout=300, env=env)
    report = json.loads(proc.stdout)
    nvidia = report["facts"]["nvidia"]
    assert nvidia["gpus"] and nvidia["driver_version"] and nvidia["cuda_driver_version"]
    torch = next(f for f in report["facts"]["frameworks"] if f["name"] == "torch")
    assert torch["cuda"] and torch["gpu_available"] is True and torch["arch_list"]
    errors = [f for f in report["findings"] if f["level"] == "error"]
    assert errors == [], errors
    assert proc.returncode == 0


def test_broken_driver_host_gets_no_cpu_build_as_its_recommendation(
        capsys: pytest.CaptureFixture[str]) -> None:
    # a GPU host whose driver fails (update without reboot) is not a CPU host: recommending
    # a CPU-only torch there would be wrong advice
    folder = str(HOSTS / "nvml-driver-library-mismatch")
    code, out, _ = run_cli(["doctor", "--json", "--replay", folder], capsys)
    assert code == 1
    for build in json.loads(out)["recommended"].values():
        assert build["error"].startswith("the NVIDIA driver on this host is not working "
                                         "(Failed to initialize NVML: Driver/library version "
                                         "mismatch)")
    code, out, err = run_cli(["doctor", "--resolve", "torch", "--replay", folder], capsys)
    assert (code, out) == (1, "")
    assert err.splitlines()[1] == (
        "hint: fix the driver first (dlbox doctor says how), or resolve for a host given by "
        "flags instead: dlbox doctor --resolve torch --cpu (or --driver VERSION "
        "--compute-capability X.Y in place of --cpu)")


def test_a_recording_file_that_may_not_be_read_gets_the_chmod_not_a_re_record(
        tmp_path: Path, refused_prefix: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: a replayed host.json the user may not read was told to re-record the
    host; its content is fine, its permission is the fix."""
    recording = tmp_path / "rec"
    assert main(["doctor", "--record", str(recording)]) in (0, 1)
    capsys.readouterr()
    host = recording / "host.json"
    host.chmod(0)
    try:
        result = subprocess.run([*refused_prefix, sys.executable, "-m", "dlbox", "doctor",
                                 "--replay", str(recording)],
                                capture_output=True, text=True, timeout=120, check=False)
    finally:
        host.chmod(0o644)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"error: {host}: cannot read it: Permission denied",
        f"hint: make it readable (`chmod a+r {host}`)"]


def test_a_patch_below_the_datas_first_is_resolved_with_a_warning_not_refused(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: the data's jax 0.4 row starts at 0.4.26, so refusing 0.4.20 as "never
    published" (the rule for a gap between listed patches) was false; it resolves against
    the nearest row with a warning, as before. A gap (torch 2.1.99) is still refused."""
    code, out, err = run_cli(["doctor", "--resolve", "jax", "--cpu", "--python", "3.11",
                              "--framework-version", "0.4.20"], capsys)
    assert code == 0, err
    assert out.startswith("jax 0.4.20 (cpu)")
    assert "warning: jax 0.4.20 is not in dlbox's compatibility data" in out
    code, out, err = run_cli(["doctor", "--resolve", "torch", "--cpu", "--framework-version",
                              "2.1.99"], capsys)
    assert code == 2 and err.startswith("error: torch 2.1.99 is not a torch release")


@pytest.mark.parametrize(("framework", "version", "extra"), [
    ("tensorflow", "2.9.1", ["--python", "3.10"]),
    ("tensorflow", "2.6.3", ["--python", "3.9"]),
    ("tensorflow", "1.15.3", ["--python", "3.7"]),
    ("jax", "0.4.37", ["--python", "3.11"]),
])
def test_a_published_patch_between_listed_ones_resolves(
        framework: str, version: str, extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: the data listed only the first and last patch of TF 2.0-2.9 (and
    missed jax 0.4.37), so real releases such as tensorflow 2.9.1 were refused as "not a
    release" by doctor, --framework-version and a project's own pin."""
    code, out, err = run_cli(["doctor", "--resolve", framework, "--cpu",
                              "--framework-version", version, *extra], capsys)
    assert code == 0, err
    assert out.startswith(f"{framework} {version} (cpu)")
    assert "not in dlbox's compatibility data" not in out


@pytest.mark.parametrize("args, code", [
    (["--resolve", "torch", "--driver", "470.82.01", "--compute-capability", "3.5"], 1),
    (["--replay", "/nonexistent"], 2),
    (["--resolve", "torch", "--driver", "525"], 2),
    (["--resolve", "torch", "--replay", str(HOSTS / "nvml-driver-library-mismatch")], 1),
    (["--driver", "535.104.05"], 2),
])
def test_a_failing_json_run_prints_its_error_as_json(
        args: list[str], code: int, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: `dlbox doctor --json` printed nothing on stdout when it failed, so a
    script reading its JSON got an empty document instead of the reason."""
    got, out, err = run_cli(["doctor", "--json", *args], capsys)
    assert got == code
    error, hint = err.splitlines()  # the message on stderr stays as it is
    assert json.loads(out) == {"error": error.removeprefix("error: "),
                               "hint": hint.removeprefix("hint: "), "exit_code": code}


def test_the_broken_driver_hint_names_a_command_that_runs(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: `--replay <broken host> --resolve torch` hinted "or --cpu", and adding
    --cpu beside --replay was refused with the command that had just failed as its hint."""
    folder = str(HOSTS / "nvml-driver-library-mismatch")
    code, _, err = run_cli(["doctor", "--resolve", "torch", "--replay", folder], capsys)
    assert code == 1
    hint = err.splitlines()[1]
    command = re.search(r"dlbox doctor --resolve torch --cpu", hint)
    assert command is not None, hint
    code, out, err = run_cli(command.group(0).split()[1:], capsys)  # the hint, followed
    assert code == 0 and out.startswith("torch "), err
    code, _, err = run_cli(["doctor", "--resolve", "torch", "--replay", folder, "--cpu"], capsys)
    assert code == 2
    assert err.splitlines()[1] == (
        f"hint: leave out --cpu to check the recorded host, or leave out --replay {folder} to "
        "resolve for the host that --cpu describes")


def test_a_release_that_lacks_the_hosts_python_names_the_hosts_python(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Seen and left alone before: with no --python, the refusal's hint said "or leave
    --python out", and a --python no release supports exited 1 (an error of the host), not
    2 (a bad value) as --cuda's does."""
    code, _, err = run_cli(["doctor", "--resolve", "tensorflow", "--framework-version",
                            "2.10", "--replay", str(HOSTS / "cpu-only-host")], capsys)
    assert code == 1
    assert err.splitlines() == [
        "error: tensorflow 2.10 does not support Python 3.11, the recorded host's",
        "hint: resolve for a Python it supports with --python 3.10 (it supports 3.7, 3.8, "
        "3.9 and 3.10), or leave --framework-version out",
    ]
    code, _, err = run_cli(["doctor", "--resolve", "torch", "--python", "3.99"], capsys)
    assert code == 2
    assert err.splitlines()[0] == "error: no torch release in the matrix supports Python 3.99"
    assert "or leave --python out" in err.splitlines()[1]
    # re-review: not where leaving it out refuses the host's Python in turn
    code, _, err = run_cli(["doctor", "--resolve", "tensorflow", "--framework-version", "2.10",
                            "--python", "3.11", "--replay", str(HOSTS / "cpu-only-host")],
                           capsys)
    assert code == 2
    assert err.splitlines()[1] == "hint: use one of Python 3.7, 3.8, 3.9, 3.10"
