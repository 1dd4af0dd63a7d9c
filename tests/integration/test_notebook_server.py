"""`dlbox notebook` for real: a JupyterLab server started as a user would, in a subprocess.

It must answer with its token and refuse without it (API 403, pages redirect to /login), get a
new token on each launch, keep the token off every command line, and stop on SIGINT.

`launched_notebook` is shared with the browser and container tests (same folder).
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import os
import queue
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import ipv6_loopback_available, port_in_time_wait, require

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

URL_PATTERN = re.compile(r"(http://[^\s/]+)/lab\?token=([0-9a-f]+)")
STARTUP_TIMEOUT_S = 180


@dataclass
class Launch:
    process: subprocess.Popen[str]
    base_url: str
    token: str
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.base_url}/lab?token={self.token}"

    @property
    def port(self) -> int:
        return int(urlsplit(self.base_url).port or 80)

    def text(self) -> str:
        return "".join(self.output)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def have_jupyterlab() -> bool:
    return importlib.util.find_spec("jupyterlab") is not None


def _pump(stream: object, lines: list[str], fresh: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.append(line)
        fresh.put(line)
    fresh.put(None)


def stop_launch(launch: Launch, sig: int = signal.SIGINT, timeout_s: float = 60) -> int:
    """Send `sig` to `dlbox notebook` and wait; SIGKILL it if it does not end in time."""
    process = launch.process
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            raise AssertionError(f"dlbox notebook did not stop within {timeout_s} s of {sig}: "
                                 + launch.text()) from None
    return int(process.returncode)


@contextlib.contextmanager
def launched_notebook(notebook_dir: Path, extra_args: Sequence[str] = (),
                      env: dict[str, str] | None = None,
                      timeout_s: float = STARTUP_TIMEOUT_S,
                      port: int | None = None) -> Iterator[Launch]:
    """`dlbox notebook --no-browser --port FREE --notebook-dir DIR`, until it prints its URL.

    Always stopped (SIGINT, then SIGKILL) when the block ends."""
    port = free_port() if port is None else port
    command = [sys.executable, "-m", "dlbox", "notebook", "--no-browser", "--port", str(port),
               "--notebook-dir", str(notebook_dir), "--startup-timeout", str(timeout_s - 10),
               *extra_args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, text=True,
                               env={**os.environ, **(env or {})})
    lines: list[str] = []
    fresh: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(process.stdout, lines, fresh), daemon=True).start()
    launch: Launch | None = None
    try:
        deadline = time.monotonic() + timeout_s
        while launch is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no URL printed within "
                                     f"{timeout_s} s:\n{''.join(lines)}")
            try:
                line = fresh.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                process.wait(timeout=30)
                raise AssertionError(f"dlbox notebook exited ({process.returncode}) before "
                                     f"printing a URL:\n{''.join(lines)}")
            match = URL_PATTERN.search(line)
            if match:
                launch = Launch(process, match.group(1), match.group(2), lines)
        yield launch
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def wait_for_output(launch: Launch, text: str, timeout_s: float = 30) -> str:
    """The launch's output once `text` is in it (lines printed after the URL)."""
    deadline = time.monotonic() + timeout_s
    while text not in launch.text():
        assert time.monotonic() < deadline, f"no {text!r} within {timeout_s} s:\n{launch.text()}"
        time.sleep(0.1)
    return launch.text()


def get(url: str, token: str | None = None) -> tuple[int, str | None]:
    """(status, Location) of one GET; redirects are not followed."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                            timeout=30)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"Authorization": f"token {token}"} if token else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Location")
    finally:
        connection.close()


def check_token_auth(launch: Launch) -> None:
    """The server answers with the token and refuses without it."""
    base = launch.base_url
    assert re.fullmatch(r"[0-9a-f]{64}", launch.token), launch.token
    assert get(f"{base}/api/status", launch.token)[0] == 200
    assert get(f"{base}/api/status?token={launch.token}")[0] == 200
    assert get(f"{base}/api/status")[0] == 403
    assert get(f"{base}/api/contents")[0] == 403
    assert get(f"{base}/api/status", "0" * 64)[0] == 403
    status, location = get(f"{base}/lab")
    assert status == 302 and location is not None and "/login" in location, (status, location)
    status, location = get(f"{base}/lab/tree/first_pytorch_classifier.ipynb")
    assert status == 302 and location is not None and "/login" in location, (status, location)


def port_is_closed(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex(("127.0.0.1", port)) != 0


# ------------------------------------------------------------------ /proc helpers (Linux)

def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def descendants_of(pid: int) -> list[int]:
    result, todo = [], [pid]
    while todo:
        for child in children_of(todo.pop()):
            result.append(child)
            todo.append(child)
    return result


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def process_environ(pid: int) -> dict[str, str]:
    """A process's environment; {} for one that has exited meanwhile (a short-lived child)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except (ProcessLookupError, FileNotFoundError):
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def all_command_lines() -> str:
    texts = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                texts.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace"))
    return "\n".join(texts)


@contextlib.contextmanager
def read_only_folder(source: Path, mount_point: Path) -> Iterator[Path]:
    """`source` seen read-only at `mount_point`: a read-only bind mount (root; not even root
    can write there), else a folder without write permission (a normal user). Skips the test
    where neither makes a folder this process cannot write to."""
    mount_point.mkdir()
    mounted = False
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        made = subprocess.run(["mount", "--bind", str(source), str(mount_point)],
                              capture_output=True, text=True)
        mounted = made.returncode == 0
        if mounted and subprocess.run(["mount", "-o", "remount,bind,ro", str(mount_point)],
                                      capture_output=True).returncode != 0:
            subprocess.run(["umount", str(mount_point)], capture_output=True)
            mounted = False
        folder = mount_point
    else:
        folder = source
        source.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("cannot make a read-only folder here (no mount, and root)")
        yield folder
    finally:
        if mounted:
            subprocess.run(["umount", str(mount_point)], capture_output=True)
        source.chmod(0o755)


# ------------------------------------------------------------------ tests

@pytest.fixture
def notebook_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "notebooks"
    directory.mkdir()
    (directory / "hello.ipynb").write_text(
        '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n')
    return directory


@pytest.mark.timeout(400)
def test_server_wants_its_token_and_each_launch_gets_a_new_one(notebook_dir: Path) -> None:
    require(have_jupyterlab(), "JupyterLab")
    with launched_notebook(notebook_dir) as first:
        check_token_auth(first)
        assert "Press Ctrl-C" in first.text()
        first_token = first.token
        # The token is on no command line, and its file (named by the environment) is 0600.
        assert first_token not in all_command_lines()
        if sys.platform.startswith("linux"):
            servers = [pid for pid in descendants_of(first.process.pid)
                       if "JUPYTER_TOKEN_FILE" in process_environ(pid)]
            assert servers, "no process with JUPYTER_TOKEN_FILE under dlbox notebook"
            server_env = process_environ(servers[0])
            assert "JUPYTER_TOKEN" not in server_env
            token_file = Path(server_env["JUPYTER_TOKEN_FILE"])
            assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
            assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
            assert token_file.read_text() == first_token
        first_port = first.port
        assert stop_launch(first) == 130
    assert port_is_closed(first_port)
    if sys.platform.startswith("linux"):
        assert not token_file.exists(), "the token file outlived its server"

    with launched_notebook(notebook_dir) as second:
        assert second.token != first_token
        check_token_auth(second)
        assert get(f"{second.base_url}/api/status", first_token)[0] == 403


def start_kernel(launch: Launch) -> list[int]:
    """Start a kernel through the API; the server's process tree once the kernel is in it."""
    connection = http.client.HTTPConnection("127.0.0.1", launch.port, timeout=60)
    connection.request("POST", "/api/kernels", body="{}",
                       headers={"Authorization": f"token {launch.token}",
                                "Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 201, response.read()
    connection.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        tree = descendants_of(launch.process.pid)
        if len(tree) >= 2:  # the server and its kernel
            return tree
        time.sleep(0.5)
    raise AssertionError(f"no kernel under the server: {tree}")


@pytest.mark.timeout(300)
def test_sigint_stops_server_and_its_kernels(notebook_dir: Path) -> None:
    require(have_jupyterlab(), "JupyterLab")
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc to find the server's processes")
    with launched_notebook(notebook_dir) as launch:
        # Start a kernel, so stopping must also end a grandchild of dlbox.
        tree = start_kernel(launch)
        started = time.monotonic()
        assert stop_launch(launch, signal.SIGINT, timeout_s=60) == 130
        assert time.monotonic() - started < 60
        assert "stopped" in launch.text()
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in tree) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in tree if alive(pid)], "server or kernel outlived dlbox"
        assert port_is_closed(launch.port)


@pytest.mark.timeout(300)
def test_a_second_ctrl_c_while_stopping_kills_server_and_kernels_at_once(
        notebook_dir: Path) -> None:
    """Ctrl-C twice: dlbox used to give up on the stop at the second one and exit while the
    server and its kernel still ran. Now the second one kills them, then dlbox exits."""
    require(have_jupyterlab(), "JupyterLab")
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc to find the server's processes")
    with launched_notebook(notebook_dir) as launch:
        tree = start_kernel(launch)
        launch.process.send_signal(signal.SIGINT)
        wait_for_output(launch, "stopping the Jupyter server")
        launch.process.send_signal(signal.SIGINT)
        assert launch.process.wait(timeout=60) == 130, launch.text()
        assert not [pid for pid in tree if alive(pid)], "server or kernel outlived dlbox"
        assert "stopped." in launch.text(), launch.text()
        assert port_is_closed(launch.port)


@pytest.mark.timeout(300)
def test_sigterm_also_stops_the_server(notebook_dir: Path) -> None:
    require(have_jupyterlab(), "JupyterLab")
    with launched_notebook(notebook_dir) as launch:
        tree = descendants_of(launch.process.pid) if sys.platform.startswith("linux") else []
        assert stop_launch(launch, signal.SIGTERM) == 143  # 128 + SIGTERM, not Ctrl-C's 130
        assert "stopping the Jupyter server (SIGTERM) ..." in launch.text()  # no Ctrl-C hint
        assert port_is_closed(launch.port)
        time.sleep(1)
        assert not [pid for pid in tree if alive(pid)]


@pytest.mark.timeout(300)
def test_the_folder_of_a_killed_launch_is_removed_by_the_next_one(notebook_dir: Path,
                                                                  tmp_path: Path) -> None:
    """SIGKILL of dlbox: its server stops (it dies with its parent), but the launch's folder,
    token file included, used to stay in the temp folder forever. The next launch removes it
    (and leaves other folders alone: a live launch's, a notebook's run folder)."""
    require(have_jupyterlab(), "JupyterLab")
    if not sys.platform.startswith("linux"):
        pytest.skip("relies on PR_SET_PDEATHSIG and /proc")
    temp = tmp_path / "tmp"
    temp.mkdir()
    notebook_run = temp / "dlbox-notebook-run-abc123"  # a notebook's run: not ours to remove
    notebook_run.mkdir()
    env = {"TMPDIR": str(temp)}
    with launched_notebook(notebook_dir, env=env) as killed:
        (killed_folder,) = [p for p in temp.glob("dlbox-notebook-*") if p != notebook_run]
        assert (killed_folder / "token").read_text() == killed.token
        tree = descendants_of(killed.process.pid)
        killed.process.kill()
        killed.process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in tree) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in tree if alive(pid)], "the server outlived its killed dlbox"
        assert killed_folder.exists()
    with launched_notebook(notebook_dir, env=env) as live:
        check_token_auth(live)
        assert not killed_folder.exists(), "the killed launch's folder (its token) is left"
        (live_folder,) = [p for p in temp.glob("dlbox-notebook-*") if p != notebook_run]
        with launched_notebook(notebook_dir, env=env) as another:  # a second instance
            check_token_auth(another)
            assert live_folder.exists(), "a running launch's folder was removed"
            check_token_auth(live)
        assert notebook_run.exists()


# ------------------------------------------------------------------ the launch's checks and words



@pytest.mark.timeout(300)
def test_a_port_in_time_wait_is_used_not_refused(notebook_dir: Path) -> None:
    require(have_jupyterlab(), "JupyterLab")
    port = port_in_time_wait()
    with launched_notebook(notebook_dir, port=port) as launch:
        assert launch.port == port
        check_token_auth(launch)




@pytest.mark.timeout(300)
@pytest.mark.parametrize("ip", ["::", "::1"])
def test_ipv6_addresses_work_and_print_a_url_that_reaches_the_server(
        notebook_dir: Path, ip: str) -> None:
    require(have_jupyterlab(), "JupyterLab")
    if not ipv6_loopback_available():
        pytest.skip("this machine has no IPv6")
    with launched_notebook(notebook_dir, ["--ip", ip]) as launch:
        assert launch.base_url == f"http://[::1]:{launch.port}", launch.text()
        check_token_auth(launch)
        if ip == "::":
            assert f"listens on all interfaces ([::]:{launch.port})" in launch.text()
        assert stop_launch(launch) == 130
    with socket.socket(socket.AF_INET6) as probe:
        probe.settimeout(2)
        assert probe.connect_ex(("::1", launch.port)) != 0


SLOW_SERVER_CONFIG = """
import sys, time
print("dlbox-test: this server is slow to start", file=sys.stderr, flush=True)
time.sleep(120)
"""


@pytest.mark.timeout(120)
def test_a_startup_timeout_shows_the_server_log_it_points_to(notebook_dir: Path,
                                                              tmp_path: Path) -> None:
    """A server that does not answer in time: the error names the timeout as given (8.5 s,
    not "8 s"), and the log the hint points to is shown (the launch's folder, where it lived,
    is gone with the stopped server)."""
    require(have_jupyterlab(), "JupyterLab")
    config_dir = tmp_path / "jupyter-config"
    config_dir.mkdir()
    # jupyter_config.*: the config Jupyter reads from JUPYTER_CONFIG_DIR next to dlbox's.
    (config_dir / "jupyter_config.py").write_text(SLOW_SERVER_CONFIG)
    temp = tmp_path / "tmp"
    temp.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "dlbox", "notebook", "--no-browser", "--port", "0",
         "--notebook-dir", str(notebook_dir), "--startup-timeout", "8.5"],
        capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL,
        env={**os.environ, "JUPYTER_CONFIG_DIR": str(config_dir), "TMPDIR": str(temp)})
    assert result.returncode == 1, result.stderr
    assert "--- the end of the Jupyter server's log ---" in result.stderr, result.stderr
    assert "dlbox-test: this server is slow to start" in result.stderr
    lines = result.stderr.rstrip("\n").splitlines()
    assert re.fullmatch(r"error: the Jupyter server did not answer at http://127\.0\.0\.1:\d+ "
                        r"within 8\.5 s \(.+\)", lines[-2]), lines[-2]
    assert lines[-1] == ("hint: the machine may be busy: try again with --startup-timeout 300; "
                         "the end of the server's log is above")
    assert stderr_order(result.stderr, "the end of the Jupyter server's log", "error: ")
    assert not list(temp.glob("dlbox-notebook-*")), "the launch's folder was left behind"
    assert str(temp) not in all_command_lines(), "the slow server outlived dlbox"


def stderr_order(text: str, first: str, second: str) -> bool:
    return 0 <= text.index(first) < text.index(second)


@pytest.mark.timeout(300)
def test_a_damaged_notebook_gets_a_warning_instead_of_a_url(notebook_dir: Path) -> None:
    require(have_jupyterlab(), "JupyterLab")
    name = "first_pytorch_classifier.ipynb"
    (notebook_dir / name).write_text('{"cells": [{"cell_type": "code", ')  # cut short
    with launched_notebook(notebook_dir) as launch:
        text = wait_for_output(launch, "Press Ctrl-C")
        assert f"lab/tree/{name}" not in text, text
        assert (f"warning: {notebook_dir / name} is damaged (not valid JSON: "
                in text), text
        assert "Jupyter cannot open it" in text and "hint: restore it" in text
        # Jupyter agrees: it cannot read the file as a notebook.
        assert get(f"{launch.base_url}/api/contents/{name}", launch.token)[0] == 400
        check_token_auth(launch)  # the server itself is fine

    (notebook_dir / name).write_text(
        '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n')
    with launched_notebook(notebook_dir) as launch:
        text = wait_for_output(launch, "Press Ctrl-C")
        assert f"{launch.base_url}/lab/tree/{name}?token={launch.token}" in text
        assert "is damaged" not in text
        assert get(f"{launch.base_url}/api/contents/{name}", launch.token)[0] == 200


@pytest.mark.timeout(300)
def test_the_run_lock_file_is_not_listed_even_with_hidden_files_shown(
        notebook_dir: Path, tmp_path: Path) -> None:
    """A user whose Jupyter config shows hidden files (ContentsManager.allow_hidden) still
    does not see .dlbox-run.lock in a run folder."""
    require(have_jupyterlab(), "JupyterLab")
    import json

    config_dir = tmp_path / "jupyter-config"
    config_dir.mkdir()
    (config_dir / "jupyter_config.json").write_text(
        json.dumps({"ContentsManager": {"allow_hidden": True}}))
    run = notebook_dir / "runs" / "r1"
    run.mkdir(parents=True)
    for name in (".dlbox-run.lock", ".visible-dotfile", "metrics.json"):
        (run / name).write_text("{}")
    with launched_notebook(notebook_dir, env={"JUPYTER_CONFIG_DIR": str(config_dir)}) as launch:
        connection = http.client.HTTPConnection("127.0.0.1", launch.port, timeout=30)
        connection.request("GET", "/api/contents/runs/r1",
                           headers={"Authorization": f"token {launch.token}"})
        response = connection.getresponse()
        listing = json.loads(response.read())
        connection.close()
        assert response.status == 200, listing
        names = {entry["name"] for entry in listing["content"]}
        assert names == {".visible-dotfile", "metrics.json"}, names


@pytest.mark.timeout(300)
def test_a_base_url_in_the_users_jupyter_config_does_not_move_the_server(
        notebook_dir: Path, tmp_path: Path) -> None:
    """Found by review: a user's `c.ServerApp.base_url = "/jupyter/"` moved the API dlbox
    polls, so it waited out the whole startup timeout (HTTP 404), then blamed a busy
    machine."""
    require(have_jupyterlab(), "JupyterLab")
    config_dir = tmp_path / "jupyter-config"
    config_dir.mkdir()
    (config_dir / "jupyter_config.py").write_text('c.ServerApp.base_url = "/jupyter/"\n')
    with launched_notebook(notebook_dir, env={"JUPYTER_CONFIG_DIR": str(config_dir)}) as launch:
        assert launch.base_url == f"http://127.0.0.1:{launch.port}"
        assert get(f"{launch.base_url}/api/status", launch.token)[0] == 200


@pytest.mark.timeout(300)
def test_a_read_only_notebook_folder_gets_a_warning(notebook_dir: Path,
                                                    tmp_path: Path) -> None:
    """Jupyter starts on a folder it cannot write to, where saving the notebook and its runs
    fails later in the browser: dlbox says so up front (it used to say nothing)."""
    require(have_jupyterlab(), "JupyterLab")
    with read_only_folder(notebook_dir, tmp_path / "read-only") as folder, \
            launched_notebook(folder) as launch:
        text = wait_for_output(launch, "Press Ctrl-C")
        assert (f"warning: {folder} is read-only for you: Jupyter cannot save the notebook "
                "there") in text, text
        check_token_auth(launch)
        assert stop_launch(launch) == 130
    with launched_notebook(notebook_dir) as launch:  # a folder it can write to: no warning
        assert "read-only" not in wait_for_output(launch, "Press Ctrl-C")


@pytest.mark.timeout(300)
def test_a_server_that_dies_by_itself_is_an_error_with_its_log(notebook_dir: Path) -> None:
    """Found by review: a Jupyter server killed from outside (OOM killer, kill -9) ended
    `dlbox notebook` with only "the Jupyter server exited (status -9)": no error line, no
    hint, no log."""
    require(have_jupyterlab(), "JupyterLab")
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc to find the server's process")
    with launched_notebook(notebook_dir) as launch:
        [server] = children_of(launch.process.pid)
        os.kill(server, signal.SIGKILL)
        launch.process.wait(timeout=60)
        text = launch.text()
    assert launch.process.returncode == 1, text
    assert "--- the end of the Jupyter server's log ---" in text
    lines = text.strip().splitlines()
    # its log holds no word of the kill (found by review: the hint said it did)
    assert lines[-2:] == ["error: the Jupyter server stopped by itself (killed by SIGKILL)",
                          "hint: another program or the system killed it (out of memory? "
                          "`dmesg | tail` says); start it again with the same command"]
