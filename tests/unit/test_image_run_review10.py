"""`dlbox image run` review 10: the runs folder is mounted (and made) only where runs are
written, a user's DLBOX_DATA wins, host paths into the runs folder are read as the
container's, a registry image that is not here is pulled, and the stop line at a terminal
starts a line of its own. Nothing here needs a Docker engine."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
from pathlib import Path

import pytest

from dlbox.container import run
from dlbox.container import spec as S
from dlbox.container.run import RunOptions, run_request


def _handed(monkeypatch: pytest.MonkeyPatch, *argv: str) -> RunOptions:
    """The options `dlbox image run ARGV` hands to run_in_image (not run here)."""
    from dlbox.cli import main

    handed: list[RunOptions] = []
    monkeypatch.setattr(run, "run_in_image",
                        lambda options, log: handed.append(options) or run.RunOutcome(0))
    assert main(["image", "run", *argv]) == 0
    return handed[-1]


@pytest.mark.parametrize("command", [
    ("python3", "-c", "print(1)"), ("dlbox", "--help"), ("nvidia-smi",), ("dlbox", "train", "-h"),
    (),
])
def test_a_command_that_writes_no_runs_gets_no_runs_folder_outside_a_project(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]) -> None:
    """Review: every run made ./runs in the current folder, so in / as a user it failed
    ("cannot create --runs /runs", hint chmod u+rwx /), and as root it left /runs."""
    monkeypatch.chdir(tmp_path)
    options = _handed(monkeypatch, "--tag", "x:1", "--data", str(tmp_path), "--", *command)
    assert options.runs_dir is None
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", [("dlbox", "train", "--epochs", "1"),
                                     ("dlbox", "evaluate", "runs/x")])
def test_dlbox_train_and_evaluate_get_the_runs_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]) -> None:
    monkeypatch.chdir(tmp_path)
    options = _handed(monkeypatch, "--tag", "x:1", "--data", str(tmp_path), "--", *command)
    assert options.runs_dir == Path("runs")


def test_a_runs_folder_that_is_there_or_a_project_gets_mounted_for_any_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    assert _handed(monkeypatch, "--tag", "x:1", "--data", str(tmp_path), "--", "nvidia-smi"
                   ).runs_dir == Path("runs")
    (tmp_path / "runs").rmdir()
    (tmp_path / "requirements.txt").write_text("numpy\n")  # a project's own scripts write
    (tmp_path / "src").mkdir()                              # runs/ at its top
    monkeypatch.chdir(tmp_path / "src")
    assert _handed(monkeypatch, "--tag", "x:1", "--data", str(tmp_path), "--", "python3",
                   "train.py").runs_dir == tmp_path / "runs"


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
                      "../other", "../runs/none-yet", "-c", S.RUNS_DIR)
    assert changed == [(str(runs / "r1"), f"{S.RUNS_DIR}/r1"),
                       ("../runs/r1", f"{S.RUNS_DIR}/r1"), (str(runs), S.RUNS_DIR)]
    # From the project's top runs/r1 already means /workspace/runs/r1: left as it is.
    assert run.container_arguments(("dlbox", "evaluate", "runs/r1"), runs, tmp_path) == (
        ("dlbox", "evaluate", "runs/r1"), [])
    note = run.container_arguments_note(changed)
    assert note == (f"note: the command runs in {S.WORKDIR} and reads its arguments as the "
                    f"container's paths: {runs / 'r1'} is passed as {S.RUNS_DIR}/r1, ../runs/r1 "
                    f"as {S.RUNS_DIR}/r1, {runs} as {S.RUNS_DIR}")


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
