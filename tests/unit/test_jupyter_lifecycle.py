"""The start / clean-up / stop lifecycle the local and the container notebook server share.

No Jupyter, no Docker: a stand-in server, and the real servers with their first step (port
check, engine connect) made to fail, show that every failure of a start stops what was made
and removes the launch's folder (the token file) before the error goes on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dlbox.errors import ContainerError, DlboxError, UsageError
from dlbox.jupyter import server as server_module
from dlbox.jupyter.container import STOP_TIMEOUT_S, ContainerServer
from dlbox.jupyter.server import LocalServer, ManagedServer, ServerInfo
from dlbox.jupyter.settings import NotebookSettings


class StandIn(ManagedServer):
    """Launches nothing; records what the lifecycle asked of it."""

    def __init__(self, settings: NotebookSettings, fail_launch: BaseException | None = None,
                 exit_reason: str | None = None) -> None:
        super().__init__(settings)
        self.fail_launch = fail_launch
        self.reason = exit_reason
        self.running = False
        self.halts: list[float] = []

    def _launch(self) -> ServerInfo:
        self.launch.write_token("ab" * 32)
        if self.fail_launch is not None:
            raise self.fail_launch
        self.running = True
        return ServerInfo("http://127.0.0.1:1", "ab" * 32, self.settings.notebook_dir)

    def _exit_reason(self) -> str | None:
        return self.reason

    def _halt(self, timeout_s: float) -> None:
        self.halts.append(timeout_s)
        self.running = False

    def wait(self) -> int:
        return 0


@pytest.fixture
def settings(tmp_path: Path) -> NotebookSettings:
    return NotebookSettings(tmp_path, port=0, startup_timeout_s=5)


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The HTTP checks of a start, stood in for: they pass and log their calls."""
    calls: list[str] = []
    monkeypatch.setattr(server_module, "wait_until_ready",
                        lambda url, token, timeout_s, still_starting, **kw: calls.append("ready"))
    monkeypatch.setattr(server_module, "check_token_required",
                        lambda url: calls.append("token required"))
    return calls


def test_start_waits_for_the_server_and_keeps_its_info(settings: NotebookSettings,
                                                       answers: list[str]) -> None:
    server = StandIn(settings)
    info = server.start()
    assert answers == ["ready", "token required"]
    assert server.info is info and info.token == "ab" * 32 and server.running
    assert server.launch.path.is_dir() and server.halts == []
    server.stop()
    assert server.halts == [20.0] and not server.launch.path.exists()


@pytest.mark.parametrize("failure", [UsageError("port busy"), KeyboardInterrupt()])
def test_a_failed_launch_cleans_up_and_reraises(settings: NotebookSettings,
                                                answers: list[str],
                                                failure: BaseException) -> None:
    server = StandIn(settings, fail_launch=failure)
    with pytest.raises(type(failure)):
        server.start()
    assert server.halts == [20.0], "start did not stop what it made"
    assert not server.launch.path.exists(), "the token file outlived a failed start"
    assert answers == []


def test_a_server_that_dies_while_starting_is_stopped(settings: NotebookSettings) -> None:
    # The real wait_until_ready: it asks _exit_reason first and raises at once.
    server = StandIn(settings, exit_reason="exit status 1")
    with pytest.raises(DlboxError, match="stopped while starting: exit status 1"):
        server.start()
    assert server.halts == [20.0] and not server.running
    assert not server.launch.path.exists()


def test_a_server_without_token_auth_is_refused_and_stopped(
        settings: NotebookSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "wait_until_ready", lambda *args, **kw: None)

    def open_server(url: str) -> None:
        raise DlboxError("answered without the token")

    monkeypatch.setattr(server_module, "check_token_required", open_server)
    server = StandIn(settings)
    with pytest.raises(DlboxError, match="without the token"):
        server.start()
    assert server.halts == [20.0] and not server.launch.path.exists()
    assert not hasattr(server, "info")


def test_stop_passes_its_timeout_and_removes_the_folder_even_if_halting_fails(
        settings: NotebookSettings) -> None:
    server = StandIn(settings)
    server.stop(3.5)
    assert server.halts == [3.5]

    class Stuck(StandIn):
        def _halt(self, timeout_s: float) -> None:
            raise RuntimeError("engine gone")

    stuck = Stuck(settings)
    with pytest.raises(RuntimeError):
        stuck.stop()
    assert not stuck.launch.path.exists()


def test_each_server_keeps_its_own_stop_timeout() -> None:
    assert LocalServer.stop_timeout_s == 20.0
    assert ContainerServer.stop_timeout_s == STOP_TIMEOUT_S == 15


def test_local_server_failing_its_port_check_leaves_nothing(
        settings: NotebookSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "require_jupyterlab", lambda: None)

    def busy(ip: str, port: int) -> int:
        raise UsageError(f"port {port} on {ip} is already in use")

    monkeypatch.setattr(server_module, "resolve_port", busy)
    server = LocalServer(settings)
    with pytest.raises(UsageError, match="already in use"):
        server.start()
    assert server.process is None and server._log is None
    assert not server.launch.path.exists()
    server.stop()  # again: nothing to do, no error


def test_container_server_failing_to_reach_the_engine_leaves_nothing(
        settings: NotebookSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    from dlbox.container import engine

    def no_engine(timeout: float = 0) -> None:
        raise ContainerError("cannot reach the Docker engine")

    monkeypatch.setattr(engine, "connect", no_engine)
    server = ContainerServer(settings)
    with pytest.raises(ContainerError, match="Docker engine"):
        server.start()
    assert server.container is None and not server.launch.path.exists()


def test_container_server_stops_then_removes_its_container_once(
        settings: NotebookSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    from dlbox.container import engine

    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(engine, "stop_container",
                        lambda container, timeout: calls.append(("stop", timeout)))
    monkeypatch.setattr(engine, "remove_container",
                        lambda container: calls.append(("remove", container)))
    server = ContainerServer(settings)
    server.container = "c1"
    server.stop()
    server.stop()
    assert calls == [("stop", STOP_TIMEOUT_S), ("remove", "c1")]
    assert server.container is None and not server.launch.path.exists()


class Slow(StandIn):
    """Never answers; its log says why."""

    def __init__(self, settings: NotebookSettings, log: str = "") -> None:
        super().__init__(settings)
        self.log = log
        self.log_read_while_running: bool | None = None

    def _log_tail(self) -> str:
        self.log_read_while_running = self.running
        return self.log


@pytest.mark.parametrize("log", ["[I ServerApp] loading extensions...\n", ""])
def test_a_timed_out_start_keeps_the_end_of_the_log_it_points_to(
        settings: NotebookSettings, log: str) -> None:
    from dlbox.jupyter.probe import StartupTimeout

    server = Slow(NotebookSettings(settings.notebook_dir, port=0, startup_timeout_s=0.5), log)
    with pytest.raises(StartupTimeout) as caught:
        server.start()
    error = caught.value
    assert "within 0.5 s" in str(error)
    # Read while the server (and its log) still existed, then everything was stopped.
    assert error.log_tail == log and server.log_read_while_running is True
    assert server.halts == [20.0] and not server.launch.path.exists()
    assert error.hint is not None
    if log:
        assert "the end of the server's log is above" in error.hint
    else:
        assert "wrote nothing to its log" in error.hint and "above" not in error.hint


class Checked(StandIn):
    """Its checks fail, or warn, before anything is launched."""

    def __init__(self, settings: NotebookSettings, refuse: bool) -> None:
        super().__init__(settings)
        self.refuse = refuse
        self.launched = False

    def _prepare(self) -> list[str]:
        if self.refuse:
            raise UsageError("--ip 10.255.255.1 is not an address of this machine")
        return ["warning: listens on all interfaces"]

    def _launch(self) -> ServerInfo:
        self.launched = True
        return super()._launch()


def test_checks_come_before_the_launch_and_run_once(settings: NotebookSettings,
                                                    answers: list[str]) -> None:
    refused = Checked(settings, refuse=True)
    with pytest.raises(UsageError, match="not an address"):
        refused.prepare()
    assert not refused.launched
    with pytest.raises(UsageError):
        refused.start()  # start checks too, and cleans up
    assert not refused.launched and not refused.launch.path.exists()

    fine = Checked(settings, refuse=False)
    assert fine.prepare() == ["warning: listens on all interfaces"]
    fine.start()
    assert fine.launched and fine.prepare() == ["warning: listens on all interfaces"]
    fine.stop()


def test_a_second_sigterm_while_a_start_stops_is_still_a_sigterm(
        settings: NotebookSettings, answers: list[str]) -> None:
    """Found by review: two SIGTERMs while a container's start was being stopped ended as
    Ctrl-C (exit 130; the stop raised a plain KeyboardInterrupt), and "stopping the Jupyter
    server ..." was said only after the stop's seconds, its "Ctrl-C again" too late to use."""
    from dlbox.cli.notebook import StopSignal

    said: list[str] = []

    class StoppedTwice(StandIn):
        def _halt(self, timeout_s: float) -> None:
            super()._halt(timeout_s)
            said.append(f"halt {timeout_s:g}")
            if len(self.halts) == 1:  # the second SIGTERM, while the first stop runs
                raise StopSignal(15)

    server = StoppedTwice(settings, fail_launch=StopSignal(15))
    server.on_interrupt = lambda stop: said.append(f"stopping ({stop.signum})")
    with pytest.raises(StopSignal) as info:
        server.start()
    assert info.value.signum == 15
    assert said == ["stopping (15)", "halt 20", "halt 0"]  # said first; then killed at once
    assert not server.launch.path.exists()


def test_a_removed_current_folder_is_named_and_leaves_no_launch_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: `dlbox notebook --container` in a shell whose folder was removed
    failed with "No such file or directory" and "please report it", and left its launch
    folder (the token's) in the temp folder; `image build` failed the same way."""
    import os

    from dlbox.container.project import default_project_dir

    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    os.rmdir(gone)
    with pytest.raises(UsageError) as info:
        default_project_dir()
    assert (info.value.message, info.value.hint) == (
        "the current folder no longer exists (it was removed or moved)",
        "cd to a folder that exists and run the command again")
    server = ContainerServer(NotebookSettings(tmp_path, port=0, container=True))
    assert "`dlbox image build --cpu` builds one" in server.stopped_hint
    server.stop()
    assert not server.launch.path.exists()


def test_a_long_log_is_shown_from_the_beginning_of_a_line(tmp_path: Path) -> None:
    """Found by review: the log shown after a failed start began mid-line (cut at 3000
    characters wherever that fell)."""
    from dlbox.jupyter.secrets_dir import LaunchDir

    with LaunchDir() as launch:
        lines = [f"[I 2026-12-06 03:00:{i % 60:02d}] line {i} of the server's log"
                 for i in range(200)]
        launch.log_file.write_text("\n".join(lines) + "\n")
        tail = launch.log_tail()
        assert len(tail) <= 3000 and tail.endswith(lines[-1] + "\n")
        assert tail.splitlines()[0] in lines  # a whole line
        launch.log_file.write_text("short\n")
        assert launch.log_tail() == "short\n"


def test_dlbox_notebook_in_a_removed_current_folder_says_so_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """Found by review: `dlbox notebook --no-browser` (or a relative --notebook-dir) in a
    shell whose folder was removed failed with "No such file or directory" and "please
    report it"."""
    import os

    from dlbox.cli import main
    from dlbox.jupyter.notebooks import resolve_notebook_dir

    served = tmp_path / "served"
    served.mkdir()
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    os.rmdir(gone)
    for arg in (None, "notebooks"):
        with pytest.raises(UsageError) as info:
            resolve_notebook_dir(arg)
        assert (info.value.message, info.value.hint) == (
            "the current folder no longer exists (it was removed or moved)",
            "cd to a folder that exists, or pass --notebook-dir an absolute path")
    assert resolve_notebook_dir(str(served)) == served  # an absolute path needs no cwd
    capsys.readouterr()
    assert main(["notebook", "--no-browser"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: the current folder no longer exists (it was removed or moved)",
        "hint: cd to a folder that exists, or pass --notebook-dir an absolute path"]
