"""Leftovers of review 10: --framework-version refused for the target before the lock check,
versions (not row names) in the "not in the matrix" hint, and one source for the fixes of a
Docker engine dlbox cannot reach (`dlbox image` and `dlbox doctor` say the same)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from dlbox.container import build as B
from dlbox.container import engine
from dlbox.container import framework as F
from dlbox.container.lock import LockEntry, write_lock
from dlbox.errors import UsageError
from dlbox.hostenv.facts import HostFacts
from dlbox.hostenv.matrix import load_matrix
from dlbox.hostenv.probe import RawHost, _docker_error_text, facts_from_raw
from dlbox.hostenv.resolve import Target
from dlbox.hostenv.rules import evaluate

GPU_550 = Target(driver="550.54.15", compute_capabilities=("7.5",))


def no_probe() -> HostFacts:
    raise AssertionError("this request must not probe the host")


def test_a_framework_version_older_than_the_data_is_refused_before_the_lock_check(
        tmp_path: Path) -> None:
    """Review: --framework-version 0.4.20 for a GPU jax build, with a lock, was first told
    the lock no longer matches (hint: --relock); the relock then met the real refusal."""
    (tmp_path / "requirements.txt").write_text("jax\n")
    write_lock(tmp_path / "dlbox.lock", {"jax-gpu": LockEntry(
        key="jax-gpu", framework="jax", framework_version="0.10.2", variant="cuda12",
        cuda="12.8", cudnn="9.8", wheel_index=None, min_driver="525.60.13", python="3.11.2",
        base_image="dlbox-base:bookworm", base_id=None, project_requirements=("jax",),
        project_pip_options=(), requirements_in=("jax[cuda12]==0.10.2",),
        pinned=("jax==0.10.2",), compute_capabilities=("7.5",), extras=())})
    request = B.BuildRequest(project_dir=tmp_path, device="gpu", driver="550.54.15",
                             compute_capabilities=("7.5",), framework="jax",
                             framework_version="0.4.20", base_image="dlbox-base:bookworm")
    with pytest.raises(UsageError) as info:
        B.plan(request, facts=no_probe)
    assert "\n" not in info.value.message
    assert "older than" in info.value.message and "jax 0.4.26" in info.value.message
    hint = info.value.hint or ""
    assert "--relock" not in hint
    named = re.findall(r"jax (\d+\.\d+\.\d+) \w+ runs here", hint)
    assert named
    for version in named:  # a version the target runs
        F.resolve_framework("jax", GPU_550, version=version)


def test_the_not_in_the_matrix_hint_lists_versions_not_row_names() -> None:
    """Review: --framework-version 0.3.25 for jax was told to pick "0.4-early", a row's name
    (the data's jax 0.4.26 to 0.4.30), which --framework-version refuses."""
    matrix = load_matrix()
    with pytest.raises(UsageError) as info:
        F.matrix_for_version(matrix, "jax", "0.3.25")
    listed = re.search(r"\(([^)]*)\)", info.value.hint or "")
    assert listed is not None
    suggested = [v for v in listed[1].split(", ") if v != "..."]
    assert "0.4.26" in suggested and "0.4-early" not in suggested
    for version in suggested:  # each one is a version --framework-version takes
        F.matrix_for_version(matrix, "jax", version)


def _doctor_fix(docker_error: str) -> str:
    found = [f for f in evaluate(facts_from_raw(RawHost(docker_error=docker_error)))
             if f.code == "docker-unreachable"]
    assert len(found) == 1, found
    return found[0].fix


UNREACHABLE = [PermissionError(13, "Permission denied"),
               FileNotFoundError(2, "No such file or directory")]


@pytest.mark.parametrize("cause", UNREACHABLE, ids=["permission", "no-socket"])
def test_doctor_and_image_give_the_same_fix_for_an_unreachable_engine(
        cause: OSError, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fix for no permission on the socket, and for no engine running, is the same text
    in `dlbox image` (engine_error) and in `dlbox doctor` (the docker-unreachable finding)."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/user/1000/docker.sock")
    image = engine.engine_error(cause).hint
    assert image and image == _doctor_fix(_docker_error_text(cause))


@pytest.mark.parametrize("cause", [*UNREACHABLE, TimeoutError("read timed out")],
                         ids=["permission", "no-socket", "other"])
def test_every_fix_for_an_unreachable_engine_ends_in_a_command_that_pastes(
        cause: OSError) -> None:
    """Doctor's rule for `dlbox image`'s hints too: the command comes last, after ': '."""
    hint = engine.engine_error(cause).hint or ""
    command = hint.rsplit(": ", 1)[-1]
    assert command.split(" ", 1)[0] in ("sudo", "docker"), hint
    parsed = subprocess.run(["/bin/bash", "-n", "-c", command], capture_output=True,
                            text=True, check=False)
    assert parsed.returncode == 0, (command, parsed.stderr)
