"""`dlbox image run` review 10: the default runs folder is mounted for any command, made for
the run only (removed when left empty) and, where it cannot be made, left out but for dlbox
train/evaluate; a user's DLBOX_DATA wins, host paths into the runs folder (there or not yet,
--opt=VALUE too) are read as the container's, a registry image that is not here is pulled,
and the stop line at a terminal starts a line of its own. Nothing here needs a Docker
engine."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
from pathlib import Path

import pytest
from test_container_run import _refuse_mkdir_in

from dlbox.container import run
from dlbox.container import spec as S
from dlbox.container.run import RunOptions, run_request
from dlbox.errors import UsageError


def _handed(monkeypatch: pytest.MonkeyPatch, *argv: str) -> RunOptions:
    """The options `dlbox image run ARGV` hands to run_in_image (not run here)."""
    from dlbox.cli import main

    handed: list[RunOptions] = []
    monkeypatch.setattr(run, "run_in_image",
                        lambda options, log: handed.append(options) or run.RunOutcome(0))
    assert main(["image", "run", *argv]) == 0
    return handed[-1]


@pytest.mark.parametrize("command", [
    ("python", "-m", "dlbox", "train"), ("bash",), ("sh", "-c", "cd src && dlbox train"),
    ("env", "A=1", "dlbox", "train"), ("uv", "run", "dlbox", "train"), ("nvidia-smi",), (),
    ("dlbox", "train", "--epochs", "1"), ("dlbox", "evaluate", "runs/x"),
])
def test_outside_a_project_the_runs_folder_is_mounted_for_any_command_and_not_made_yet(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]) -> None:
    """Re-review: without ./runs nothing was mounted for `python -m dlbox train`, `bash`
    then `dlbox train`, `sh -c '... dlbox train'`...: the run went with the container, exit
    0. The default folder is mounted for any command; run_in_image makes it (and removes it
    when the run left it empty), not the command line."""
    monkeypatch.chdir(tmp_path)
    options = _handed(monkeypatch, "--tag", "x:1", "--data", str(tmp_path), "--", *command)
    assert (options.runs_dir, options.runs_default) == (Path("runs"), True)
    assert not (tmp_path / "runs").exists()
    given = _handed(monkeypatch, "--tag", "x:1", "--data", str(tmp_path), "--runs", "r", "--",
                    *command)
    assert (given.runs_dir, given.runs_default) == (Path("r"), False)


def test_a_project_subfolder_mounts_the_projects_runs_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "requirements.txt").write_text("numpy\n")  # a project's own scripts write
    (tmp_path / "src").mkdir()                              # runs/ at its top
    monkeypatch.chdir(tmp_path / "src")
    assert _handed(monkeypatch, "--tag", "x:1", "--data", str(tmp_path), "--", "python3",
                   "train.py").runs_dir == tmp_path / "runs"


def test_a_default_runs_folder_is_made_for_the_run_and_where_it_cannot_be_only_noted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: in / (a folder the user cannot write) every run failed, "cannot create --runs
    /runs", for `-- python3 -c ...` too. Now only a command that clearly writes runs fails;
    another goes on with no runs folder, which is said."""
    monkeypatch.chdir(tmp_path)
    uid, gid = os.geteuid(), os.getegid()
    said: list[str] = []
    made = run.runs_mount(RunOptions(image="x:1", runs_dir=Path("runs"), runs_default=True),
                          uid, gid, False, said.append)
    assert made == (tmp_path.resolve() / "runs", True) and said == []
    assert run.runs_mount(RunOptions(image="x:1", runs_dir=Path("runs"), runs_default=True),
                          uid, gid, False, said.append) == (tmp_path.resolve() / "runs", False)
    assert run.runs_mount(RunOptions(image="x:1", runs_dir=Path("new")), uid, gid, False,
                          said.append) == (tmp_path.resolve() / "new", False)  # --runs: kept
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.chdir(locked)
    _refuse_mkdir_in(locked.resolve(), monkeypatch)  # as in / for a user
    for command in (("python3", "-c", "print(1)"), ("bash",), ("dlbox", "train", "-h")):
        options = RunOptions(image="x:1", command=command, runs_dir=Path("runs"),
                             runs_default=True)
        assert run.runs_mount(options, uid, gid, False, said.append) == (None, False)
    assert said == ["note: no runs folder is mounted (cannot create ./runs here): what the "
                    "command writes in /workspace/runs goes with the container; pass --runs "
                    "DIR to keep it"] * 3
    for options in (RunOptions(image="x:1", command=("dlbox", "train"), runs_dir=Path("runs"),
                               runs_default=True),
                    RunOptions(image="x:1", command=("true",), runs_dir=Path("runs"))):
        with pytest.raises(UsageError) as info:
            run.runs_mount(options, uid, gid, False, said.append)
        assert info.value.message.startswith("cannot create --runs ")
        assert "pass --runs a folder you can write to" in (info.value.hint or "")
    assert not (locked / "runs").exists() and len(said) == 3


def test_a_users_dlbox_data_wins_over_the_mounts(tmp_path: Path) -> None:
    """Review: `--env DLBOX_DATA=/data/cifar` was replaced by /data without a word."""
    options = RunOptions(image="x:1", environment=(("DLBOX_DATA", "/data/cifar"),))
    request = run_request(options, None, 1000, 1000, tmp_path, None)
    assert dict(request.environment)["DLBOX_DATA"] == "/data/cifar"
    plain = run_request(RunOptions(image="x:1"), None, 1000, 1000, tmp_path, None)
    assert dict(plain.environment)["DLBOX_DATA"] == S.DATA_DIR


def test_host_paths_into_the_runs_folder_are_read_as_the_containers(tmp_path: Path) -> None:
    """Review: `dlbox image run -- dlbox evaluate /host/runs/X` (the path dlbox's own note
    printed) failed in the container, "does not exist"; so did ../runs/X from a subfolder."""
    runs = tmp_path / "runs"
    (runs / "r1").mkdir(parents=True)
    (tmp_path / "src").mkdir()
    (tmp_path / "other").mkdir()
    command = ("dlbox", "evaluate", str(runs / "r1"), "--out", "../runs/r1", "../other",
               "../runs/none-yet", "-c", str(runs))
    mapped, changed = run.container_arguments(command, runs, tmp_path / "src")
    assert mapped == ("dlbox", "evaluate", f"{S.RUNS_DIR}/r1", "--out", f"{S.RUNS_DIR}/r1",
                      "../other", f"{S.RUNS_DIR}/none-yet", "-c", S.RUNS_DIR)
    assert changed == [(str(runs / "r1"), f"{S.RUNS_DIR}/r1"),
                       ("../runs/r1", f"{S.RUNS_DIR}/r1"),
                       ("../runs/none-yet", f"{S.RUNS_DIR}/none-yet"), (str(runs), S.RUNS_DIR)]
    # From the project's top runs/r1 already means /workspace/runs/r1: left as it is.
    assert run.container_arguments(("dlbox", "evaluate", "runs/r1"), runs, tmp_path) == (
        ("dlbox", "evaluate", "runs/r1"), [])
    note = run.container_arguments_note(changed)
    assert note == (f"note: the command runs in {S.WORKDIR} and reads its arguments as the "
                    f"container's paths: {runs / 'r1'} is passed as {S.RUNS_DIR}/r1, ../runs/r1 "
                    f"as {S.RUNS_DIR}/r1, ../runs/none-yet as {S.RUNS_DIR}/none-yet, {runs} as "
                    f"{S.RUNS_DIR}")


def test_new_paths_and_option_values_into_the_runs_folder_are_read_as_the_containers(
        tmp_path: Path) -> None:
    """Re-review: only existing paths were mapped, and no `--opt=VALUE`: `dlbox evaluate
    /host/runs/X --output /host/runs/X/eval2` wrote its report in the container (lost), and
    so did `--run-dir /host/runs/NEW` and `--output=/host/runs/X/eval`."""
    runs = tmp_path / "runs"
    (runs / "X").mkdir(parents=True)
    (tmp_path / "src").mkdir()
    (tmp_path / "link").symlink_to(runs)  # a new path by a link to the runs folder
    command = ("dlbox", "evaluate", str(runs / "X"), "--output", str(runs / "X" / "eval2"),
               "--run-dir", str(runs / "NEW" / "a"), f"--output={runs / 'X' / 'eval'}",
               str(tmp_path / "link" / "Y" / "new"), "--name=a/b", "--flag=", "-v",
               str(tmp_path / "runs-other" / "Z"))
    mapped, changed = run.container_arguments(command, runs, tmp_path / "src")
    assert mapped == ("dlbox", "evaluate", f"{S.RUNS_DIR}/X", "--output",
                      f"{S.RUNS_DIR}/X/eval2", "--run-dir", f"{S.RUNS_DIR}/NEW/a",
                      f"--output={S.RUNS_DIR}/X/eval", f"{S.RUNS_DIR}/Y/new", "--name=a/b",
                      "--flag=", "-v", str(tmp_path / "runs-other" / "Z"))
    assert changed[3] == (f"--output={runs / 'X' / 'eval'}", f"--output={S.RUNS_DIR}/X/eval")
    # From the project's top runs/X/new already means /workspace/runs/X/new: left as it is,
    # as an option's value too.
    kept = ("dlbox", "evaluate", "runs/X/new", "--output=runs/X/eval")
    assert run.container_arguments(kept, runs, tmp_path) == (kept, [])
    # In the runs folder itself a word with a / that is no path here (a shell script) is
    # no path into it: left as it is; one that is there is mapped.
    # (a word too long for a file name is no path either)
    long = "print(1)  " + "x" * 300 + " # a/b"
    script = ("sh", "-c", "echo a/b > out/x", long, "X/")
    assert run.container_arguments(script, runs, runs) == (
        ("sh", "-c", "echo a/b > out/x", long, f"{S.RUNS_DIR}/X"), [("X/", f"{S.RUNS_DIR}/X")])


@pytest.mark.parametrize("image, hint", [
    ("python:3.12-slim", "check the name (docker images lists those here), pull it (docker "
                         "pull python:3.12-slim) or build it: dlbox image build --tag "
                         "python:3.12-slim"),
    ("ghcr.io/org/img:1", "pull it: docker pull ghcr.io/org/img:1 (or check the name: docker "
                          "images lists those here)"),
    ("dlbox:latest", "check the name (docker images lists those here), or build it: dlbox "
                     "image build --tag dlbox:latest"),
])
def test_a_registry_image_that_is_not_here_is_pulled_not_built(image: str, hint: str) -> None:
    """Review: `--tag python:3.12-slim` got "or build it: dlbox image build --tag ..."."""
    assert run.missing_image_hint(None, RunOptions(image=image, named=True)) == hint


def test_the_engines_missing_image_hint_pulls_a_registry_name() -> None:
    from dlbox.container import engine

    error = engine.run_error(Exception("No such image: ghcr.io/org/img:1"),
                             engine.RunRequest(image="ghcr.io/org/img:1"))
    assert "docker pull ghcr.io/org/img:1" in (error.hint or "")  # type: ignore[attr-defined]


@pytest.mark.parametrize("tty, newline", [(True, "\r\n"), (False, "\n")])
def test_the_stop_line_at_a_raw_terminal_ends_its_lines_with_cr(
        monkeypatch: pytest.MonkeyPatch, tty: bool, newline: str) -> None:
    """Review: with a terminal (raw during the run) the stop line was written with bare
    newlines, so it started mid-line, under the command's last column."""
    from dlbox.container.engine import _signals_stop

    class Container:
        done = threading.Event()

        def stop(self, timeout: int) -> None:
            self.done.set()

    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    container = Container()
    with _signals_stop(container, 5.0, tty=tty):
        os.kill(os.getpid(), signal.SIGTERM)
        assert container.done.wait(10)
    assert stderr.getvalue() == (f"{newline}stopping the container (SIGTERM, SIGKILL after 5 s; "
                                 f"press Ctrl-C again to kill it now)...{newline}")
