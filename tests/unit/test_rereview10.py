"""Found by a later review: a failing project install read as a package without a wheel, a
source build out of disk lost its hint, a framework import killed by any signal read as a
build for newer CPU instructions, and doctor's "no GPU" line listed a framework that failed
to import."""

from __future__ import annotations

import contextlib
import io
from dataclasses import replace
from pathlib import Path

import pytest

from dlbox.cli import build_parser
from dlbox.container.engine import build_error
from dlbox.hostenv.probe import RawFramework, facts_from_raw, load_raw
from dlbox.hostenv.rules import Finding, evaluate

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"

# the project's own install step (templates/install_project.Dockerfile)
PROJECT_STEP = ("RUN cp -r /workspace /tmp/dlbox-project     && pip install --no-deps "
                "--no-build-isolation --no-index /tmp/dlbox-project")
DEPS_STEP = "RUN pip install --no-deps -r /opt/dlbox/requirements.lock.txt"


def _pip_failed(getting: str, reason: str) -> list[str]:
    """What pip prints when building `getting` from source fails for `reason`."""
    return f"""{getting}
  Preparing metadata (pyproject.toml): started
  Preparing metadata (pyproject.toml): finished with status 'error'
  error: subprocess-exited-with-error

  × Preparing metadata (pyproject.toml) did not run successfully.
  │ exit code: 1
  ╰─> [2 lines of output]
      running dist_info
      {reason}
      [end of output]

  note: This error originates from a subprocess, and is likely not a problem with pip.
error: metadata-generation-failed

× Encountered error while generating package metadata.
╰─> See above for output.""".splitlines()


def _failed(instruction: str, output: list[str], message: str = "The command '/bin/sh -c ...' "
            "returned a non-zero code: 1", project: str | None = None) -> tuple[str, str]:
    log = ["Step 13/16 : COPY project/ /workspace/", " ---> abc",
           f"Step 14/16 : {instruction}", " ---> Running in 1234", *output]
    step = {"number": 14, "total": 16, "instruction": instruction}
    error = build_error(message, step, log, project=project)
    return error.message, error.hint or ""


# ------------------------------------------------------------------------------------------
# 1. the project's own install, a source build out of disk


def test_a_failing_project_install_names_the_project_not_a_missing_wheel() -> None:
    message, hint = _failed(PROJECT_STEP, _pip_failed("Processing /tmp/dlbox-project",
                                                      "error: this project needs FOO_SDK set"),
                            project="myproj")
    assert message.startswith("image build failed at step 14/16")
    assert "installing the project myproj failed" in message
    assert "error: this project needs FOO_SDK set" in message
    assert "/tmp/dlbox-project" not in message
    assert "wheel" not in message and "wheel" not in hint and "pin a version" not in hint
    assert "apt.txt" in hint


def test_a_project_install_missing_a_compiler_names_its_debian_package() -> None:
    message, hint = _failed(PROJECT_STEP, _pip_failed(
        "Processing /tmp/dlbox-project", "error: command 'gcc' failed: No such file or "
                                         "directory"), project="myproj")
    assert "installing the project myproj failed" in message
    assert "build-essential" in hint and "apt.txt" in hint and "wheel" not in hint


def test_a_dependency_without_a_wheel_still_says_so() -> None:
    message, hint = _failed(DEPS_STEP, _pip_failed("Collecting pycrypto==2.6.1",
                                                   "error: something is missing"),
                            project="myproj")
    assert "pip could not build pycrypto==2.6.1 from source" in message
    assert "installing the project" not in message and "pin a version" in hint


@pytest.mark.parametrize("message", [
    "The command '/bin/sh -c pip install ...' returned a non-zero code: 1",
    "write /var/lib/docker/tmp/x: no space left on device"])
def test_a_source_build_out_of_disk_keeps_the_prune_hint(message: str) -> None:
    said, hint = _failed(DEPS_STEP, _pip_failed(
        "Collecting pycrypto==2.6.1", "error: could not create 'build/lib': No space left on "
                                      "device"), message=message)
    assert "docker system prune" in hint
    assert "pycrypto" in said


# ------------------------------------------------------------------------------------------
# 2. doctor: a framework import killed by a signal, the no-GPU line


def _gpu_host_killed(signal_words: str) -> list[Finding]:
    raw = load_raw(HOSTS / "healthy-gpu-rtx3090")
    torch = RawFramework(name="torch", installed=True, dist_version="2.1.2+cu121",
                         build_cuda="12.1",
                         deep_error=f"importing torch was killed by signal {signal_words}")
    return evaluate(facts_from_raw(replace(raw, frameworks=(torch,))))


def _probe_failed(findings: list[Finding]) -> Finding:
    found = [f for f in findings if f.code == "probe-failed"]
    assert len(found) == 1, findings
    return found[0]


def test_a_framework_import_killed_by_sigkill_points_at_memory() -> None:
    failed = _probe_failed(_gpu_host_killed("9 (SIGKILL)"))
    assert "memory" in failed.why and "CPU instructions" not in failed.why
    assert "dmesg" in failed.fix and "--force-reinstall" not in failed.fix


def test_a_framework_import_killed_by_sigill_points_at_cpu_instructions() -> None:
    failed = _probe_failed(_gpu_host_killed("4 (SIGILL)"))
    assert "CPU instructions" in failed.why and "damaged" not in failed.why
    assert "dlbox doctor --resolve torch" in failed.fix


@pytest.mark.parametrize("words", ["11 (SIGSEGV)", "7 (SIGBUS)"])
def test_a_framework_import_that_crashed_points_at_a_damaged_build(words: str) -> None:
    failed = _probe_failed(_gpu_host_killed(words))
    assert "damaged" in failed.why and "CPU instructions" not in failed.why
    assert "--force-reinstall" in failed.fix


def test_the_no_gpu_line_leaves_out_a_framework_that_failed_to_import() -> None:
    raw = load_raw(HOSTS / "cpu-only-host")
    frameworks = (RawFramework(name="torch", installed=True, dist_version="2.3.0+cpu"),
                  RawFramework(name="jax", installed=True, dist_version="0.4.30",
                               deep_error="importing jax: exit code 1"))
    findings = evaluate(facts_from_raw(replace(raw, frameworks=frameworks)))
    no_gpu = [f for f in findings if f.code == "no-gpu"]
    assert len(no_gpu) == 1 and "torch 2.3.0+cpu" in no_gpu[0].what
    assert "jax" not in no_gpu[0].what


# ------------------------------------------------------------------------------------------
# 6. --framework's help


def test_image_build_framework_help_says_a_package_built_on_one_decides() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        build_parser().parse_args(["image", "build", "--help"])
    said = " ".join(out.getvalue().split())
    assert "the framework the requirements name or build on (flax: jax), else torch" in said
