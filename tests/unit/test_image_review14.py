"""Review 14 of `dlbox image`: a --tag that names the build's own base image, the unnamed
image a build that failed inside its dependency stage left, and the hint for a folder run as
a command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dlbox.container import build as B
from dlbox.container import engine
from dlbox.container import spec as S
from dlbox.container.lock import LockEntry, write_lock
from dlbox.errors import ContainerError, UsageError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def no_probe() -> Any:
    raise AssertionError("this request must not probe the host")


def entry(base_image: str = "python:3.11-slim-bookworm") -> LockEntry:
    return LockEntry(
        key="torch-cpu", framework="torch", framework_version="2.15.0+cpu", variant="cpu",
        cuda=None, cudnn=None, wheel_index="https://download.pytorch.org/whl/cpu",
        min_driver=None, python="3.11.2", base_image=base_image, base_id=None,
        project_requirements=("numpy",), project_pip_options=(), requirements_in=(),
        pinned=("numpy==2.1.0", "torch==2.15.0+cpu"))


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Nothing may be built: each stand-in records that it was reached."""
    reached: list[str] = []
    monkeypatch.setattr(B, "_lock", lambda *args: reached.append("_lock") or entry())
    monkeypatch.setattr(engine, "build", lambda *args, **kwargs: reached.append("build"))
    monkeypatch.setattr(engine, "inspect_image", lambda client, name: {})
    return reached


# ---- 1. a --tag that names the build's base image ---------------------------------------------

@pytest.mark.parametrize(("tag", "base"), [
    ("revnb-base:1", "revnb-base:1"),
    ("revnb-base", "revnb-base:latest"),  # no tag: :latest
    ("revnb-base:latest", "revnb-base"),
    ("docker.io/library/python:3.11-slim", "python:3.11-slim"),
])
def test_a_tag_that_names_the_base_image_is_refused_before_the_build(
        tmp_path: Path, no_engine: list[str], tag: str, base: str) -> None:
    # Review: the build took the base image's name over, and the next build on that base
    # started FROM the project image and failed ("Permission denied: .../pyvenv.cfg").
    write(tmp_path / "proj" / "requirements.txt", "numpy\n")
    request = B.BuildRequest(project_dir=tmp_path / "proj", device="cpu", base_image=base,
                             tag=tag)
    with pytest.raises(UsageError) as info:
        B.build_image(request, log=lambda line: None, facts=no_probe, client=object())
    assert no_engine == []  # refused before anything is built
    message = info.value.message
    assert "\n" not in message and tag in message and base in message, message
    assert "pass another --tag" in (info.value.hint or ""), info.value.hint


def test_the_base_image_of_the_lock_or_of_the_environment_counts_too(
        tmp_path: Path, no_engine: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "proj"
    write(root / "requirements.txt", "numpy\n")
    # $DLBOX_BASE_IMAGE, for a first build
    monkeypatch.setenv(S.BASE_IMAGE_ENV, "mybase:1")
    with pytest.raises(UsageError, match="mybase:1"):
        B.build_image(B.BuildRequest(project_dir=root, device="cpu", tag="mybase:1"),
                      log=lambda line: None, facts=no_probe, client=object())
    monkeypatch.delenv(S.BASE_IMAGE_ENV)
    # the lock's base, for a build from the lock
    write_lock(root / "dlbox.lock", {"torch-cpu": entry("lockbase:2")})
    with pytest.raises(UsageError, match="lockbase:2"):
        B.build_image(B.BuildRequest(project_dir=root, device="cpu", tag="lockbase:2"),
                      log=lambda line: None, facts=no_probe, client=object())
    # the default tags (no --tag): proj:latest on a base named proj
    write_lock(root / "dlbox.lock", {"torch-cpu": entry("proj")})
    with pytest.raises(UsageError, match="proj:latest"):
        B.build_image(B.BuildRequest(project_dir=root, device="cpu"),
                      log=lambda line: None, facts=no_probe, client=object())
    # the default tag of the build kind (proj:cpu), known once the framework build is
    write_lock(root / "dlbox.lock", {"torch-cpu": entry("proj:cpu")})
    with pytest.raises(UsageError, match="the image's default tag proj:cpu names"):
        B.build_image(B.BuildRequest(project_dir=root, device="cpu"),
                      log=lambda line: None, facts=no_probe, client=object())
    assert no_engine == []


def test_a_tag_beside_the_base_image_is_fine() -> None:
    B.refuse_tag_of_base(["revnb-base:2", "revnb:1"], "revnb-base:1")
    B.refuse_tag_of_base(["revnb-base:1"], "revnb-base@sha256:" + "a" * 64)


# ---- 2. a build that failed before its dependency stage ended ---------------------------------

FAILED_IN_DEPS = [
    "Step 8/19 : RUN python3 -m venv /opt/venv", " ---> Using cache", " ---> 1111aaaa2222",
    "Step 9/19 : FROM venv AS deps", " ---> 1111aaaa2222",
    "Step 10/19 : COPY dlbox/requirements.lock.txt /opt/dlbox/requirements.lock.txt",
    " ---> 3333bbbb4444",
    "Step 11/19 : COPY dlbox/wheelhouse/ /opt/dlbox/wheelhouse/", " ---> 5555cccc6666",
    "Step 12/19 : RUN pip install --no-deps -r /opt/dlbox/requirements.lock.txt && pip check",
    " ---> Running in 0badc0ffee00", "ERROR: No matching distribution found for nosuchpkg",
]


def _removals(monkeypatch: pytest.MonkeyPatch, outcomes: dict[str, str]) -> list[Any]:
    calls: list[Any] = []

    def remove(client: object, image_id: str, label: str | None, **kwargs: Any) -> str:
        calls.append((image_id, label, kwargs))
        return outcomes.get(image_id, "removed")

    monkeypatch.setattr(engine, "remove_replaced_image", remove)
    monkeypatch.setattr(engine, "tag_image", lambda *args: pytest.fail("nothing to tag"))
    return calls


def test_a_build_that_failed_in_its_deps_stage_removes_the_images_of_its_steps(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Review: the wheelhouse's COPY (192 MB; gigabytes with a CUDA wheelhouse) stayed as an
    # unnamed image that nothing reuses after a --relock.
    calls = _removals(monkeypatch, {})
    error = ContainerError("the build failed: nosuchpkg", hint="check the name")
    B._after_failed_build(object(), FAILED_IN_DEPS, "p:cpu-failed", error)
    # the stage's own steps, newest first, each alone: the venv stage below (the cache of
    # every build on this base) stays
    assert calls == [("5555cccc6666", None, {"prune": False}),
                     ("3333bbbb4444", None, {"prune": False})]
    assert error.hint == "check the name"  # nothing kept to tell of


def test_a_step_image_the_engine_keeps_ends_the_removal(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the lock's COPY is an older build's too (its deps stage builds on it): it stays, and so
    # does what is under it
    calls = _removals(monkeypatch, {"5555cccc6666": "in use"})
    B._after_failed_build(object(), FAILED_IN_DEPS, "p:cpu-failed", ContainerError("x"))
    assert [call[0] for call in calls] == ["5555cccc6666"]


def test_a_build_that_failed_before_its_deps_stage_keeps_the_cache(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a system stage step failed (apt-get, say): its finished steps are the cache that any
    # build on the base reuses, whatever its lock
    calls = _removals(monkeypatch, {})
    log = ["Step 3/19 : RUN apt-get update", " ---> 7777dddd8888",
           "Step 4/19 : RUN apt-get install -y tini", " ---> Running in 0badc0ffee00"]
    B._after_failed_build(object(), log, "p:cpu-failed", ContainerError("x"))
    assert calls == []


def test_housekeeping_that_fails_leaves_the_build_s_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def remove(client: object, image_id: str, label: str | None, **kwargs: Any) -> str:
        raise ContainerError("the engine went away")

    monkeypatch.setattr(engine, "remove_replaced_image", remove)
    error = ContainerError("the build failed: nosuchpkg", hint="check the name")
    B._after_failed_build(object(), FAILED_IN_DEPS, "p:cpu-failed", error)
    assert (error.message, error.hint) == ("the build failed: nosuchpkg", "check the name")


def test_remove_replaced_image_without_prune_leaves_the_parents() -> None:
    calls: list[Any] = []

    class Api:
        def inspect_image(self, name: str) -> dict[str, Any]:
            return {"Id": name, "RepoTags": [], "Config": {"Labels": {}}}

        def remove_image(self, image: str, **kwargs: Any) -> None:
            calls.append((image, kwargs))

    class Client:
        api = Api()

    assert engine.remove_replaced_image(Client(), "abc", None, prune=False) == "removed"
    assert engine.remove_replaced_image(Client(), "abc", None) == "removed"
    assert calls == [("abc", {"noprune": True}), ("abc", {})]


# ---- 3. a folder run as the command -----------------------------------------------------------

def test_a_folder_run_as_the_command_is_told_it_is_a_folder() -> None:
    # tini and runc say the same of a folder and of a file without the x bit: "exec
    # /workspace/src failed: Permission denied", `exec: "/etc": permission denied`
    error = engine.CommandNotRunnable("/workspace/src", "Permission denied", "img:1",
                                      "/workspace", folder=True)
    assert error.exit_code == 126
    assert error.message == "/workspace/src is a folder in img:1, not a command (Permission " \
                            "denied)"
    assert error.hint == ("name a command to run instead: -- ls /workspace/src, or -- "
                          "python3 /workspace/src/main.py for a script in it")
    assert "chmod" not in error.hint and "sh /workspace/src" not in error.hint
    # a path ending in / is a folder
    error = engine.CommandNotRunnable("src/", "Permission denied", "img:1", "/workspace")
    assert error.message.startswith("src/ is a folder in img:1")
    # a file keeps its hint
    error = engine.CommandNotRunnable("/workspace/run.sh", "Permission denied", "img:1",
                                      "/workspace")
    assert error.message == "/workspace/run.sh is not executable in img:1 (Permission denied)"
    assert error.hint == ("run it through its interpreter (-- python3 /workspace/run.sh or -- "
                          "sh /workspace/run.sh), or chmod +x it in the project and build "
                          "again")


def test_a_dry_run_refuses_a_tag_that_names_the_base_image_as_the_build_does(
        tmp_path: Path) -> None:
    """Found by re-review: `--dry-run --tag BASE` printed the Dockerfile and exit 0, where
    the build refuses the tag."""
    write(tmp_path / "proj" / "requirements.txt", "numpy\n")
    request = B.BuildRequest(project_dir=tmp_path / "proj", device="cpu",
                             base_image="revnb-base:1", tag="revnb-base:1")
    with pytest.raises(UsageError, match="names the build's base image revnb-base:1"):
        B.dry_run(request, facts=no_probe)
    fine = B.BuildRequest(project_dir=tmp_path / "proj", device="cpu",
                          base_image="revnb-base:1", tag="proj:1")
    dockerfile, _notes = B.dry_run(fine, facts=no_probe)
    assert "FROM revnb-base:1" in dockerfile
