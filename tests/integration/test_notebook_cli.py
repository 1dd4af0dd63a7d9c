"""`dlbox notebook` without a running server: its checks, messages and exit codes, and the
pure pieces of a launch (token, URLs, Jupyter config, container settings).

Fast: nothing here starts Jupyter or Docker.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dlbox.errors import EXIT_USAGE, UsageError
from dlbox.jupyter.container import (
    CONTAINER_TOKEN_FILE,
    container_command,
    container_environment,
    container_user,
)
from dlbox.jupyter.notebooks import resolve_notebook_dir
from dlbox.jupyter.secrets_dir import LaunchDir
from dlbox.jupyter.settings import (
    NOTEBOOK_NAME,
    NotebookSettings,
    lab_command,
    lab_config,
    listens_on_all_interfaces,
    new_token,
    server_url,
)

ROOT = Path(__file__).resolve().parents[2]


def dlbox(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dlbox", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


# ---- pure pieces -----------------------------------------------------------------------------

def test_tokens_are_64_hex_chars_and_new_each_time() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(re.fullmatch(r"[0-9a-f]{64}", t) for t in tokens)


def test_urls_use_loopback_for_wildcard_addresses() -> None:
    token = "ab" * 32
    assert server_url("127.0.0.1", 8888, token) == f"http://127.0.0.1:8888/lab?token={token}"
    assert server_url("0.0.0.0", 9999, token).startswith("http://127.0.0.1:9999/lab?")
    assert server_url("::1", 8888, token).startswith("http://[::1]:8888/")
    assert listens_on_all_interfaces("0.0.0.0") and listens_on_all_interfaces("::")
    assert not listens_on_all_interfaces("127.0.0.1")


def test_no_token_in_command_lines_or_config() -> None:
    config = lab_config("/nb", "127.0.0.1", 8888, allow_root=False)
    assert "token" not in repr(config).lower()
    assert config["ServerApp"]["port_retries"] == 0  # type: ignore[index]
    assert config["ServerApp"]["open_browser"] is False  # type: ignore[index]
    assert not any("token" in part.lower() for part in lab_command("python", "/x.json"))
    assert not any("token" in part.lower() for part in container_command("/x.json"))
    env = container_environment({"JUPYTER_TOKEN": "leak", "DLBOX_NOTEBOOK_SMOKE": "1"},
                                has_data=True)
    assert env["JUPYTER_TOKEN_FILE"] == CONTAINER_TOKEN_FILE
    assert "JUPYTER_TOKEN" not in env and "leak" not in env.values()
    assert env["DLBOX_DATA"] == "/data" and env["DLBOX_NOTEBOOK_SMOKE"] == "1"


def test_container_never_runs_as_root() -> None:
    assert container_user(0, 0) == (1000, 1000)
    assert container_user(1234, 99) == (1234, 99)


def test_token_file_is_0600_in_a_0700_dir_and_removed() -> None:
    with LaunchDir() as launch:
        path = launch.write_token("c0ffee" * 8)
        assert path.read_text() == "c0ffee" * 8  # no newline: Jupyter reads it verbatim
        assert path.stat().st_mode & 0o777 == 0o600
        assert launch.path.stat().st_mode & 0o777 == 0o700
    assert not launch.path.exists()


def test_settings_reject_bad_values(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not an IP address"):
        NotebookSettings(tmp_path, ip="my-host")
    with pytest.raises(UsageError, match="out of range"):
        NotebookSettings(tmp_path, port=70000)


def test_default_notebook_dir_is_the_checkout_notebooks_folder(tmp_path: Path) -> None:
    found = resolve_notebook_dir(None, cwd=tmp_path)
    assert (found / NOTEBOOK_NAME).is_file()
    assert found == (ROOT / "notebooks").resolve()
    assert resolve_notebook_dir(str(tmp_path)) == tmp_path.resolve()


# ---- the command line ------------------------------------------------------------------------

def test_help_lists_the_options() -> None:
    result = dlbox("notebook", "--help")
    assert result.returncode == 0
    for option in ("--container", "--port", "--ip", "--no-browser", "--notebook-dir", "--tag"):
        assert option in result.stdout


def test_missing_notebook_dir_is_a_usage_error(tmp_path: Path) -> None:
    result = dlbox("notebook", "--no-browser", "--notebook-dir", str(tmp_path / "nope"))
    assert result.returncode == EXIT_USAGE
    assert "error: --notebook-dir" in result.stderr and "hint:" in result.stderr


def test_bad_ip_and_port_are_usage_errors(tmp_path: Path) -> None:
    result = dlbox("notebook", "--no-browser", "--notebook-dir", str(tmp_path), "--ip", "x.y")
    assert result.returncode == EXIT_USAGE and "not an IP address" in result.stderr
    result = dlbox("notebook", "--no-browser", "--notebook-dir", str(tmp_path), "--port", "-1")
    assert result.returncode == EXIT_USAGE and "out of range" in result.stderr


@pytest.mark.notebook
def test_busy_port_is_refused_with_a_hint_and_no_warning_before(tmp_path: Path) -> None:
    pytest.importorskip("jupyterlab")
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = dlbox("notebook", "--no-browser", "--notebook-dir", str(tmp_path),
                       "--ip", "0.0.0.0", "--port", str(port))
    assert result.returncode == EXIT_USAGE, result.stderr
    assert f"port {port}" in result.stderr and "already in use" in result.stderr
    assert "--port 0" in result.stderr
    # Every check comes first: a refusal is not preceded by warnings about a launch that
    # never happens, nor by "starting".
    assert result.stderr.startswith("error: "), result.stderr
    assert "warning:" not in result.stderr and "starting" not in result.stdout


@pytest.mark.notebook
@pytest.mark.parametrize("port", ["8888", "0"])
def test_an_address_not_on_this_machine_is_refused_up_front(tmp_path: Path, port: str) -> None:
    pytest.importorskip("jupyterlab")
    result = dlbox("notebook", "--no-browser", "--notebook-dir", str(tmp_path),
                   "--ip", "10.255.255.1", "--port", port)
    assert result.returncode == EXIT_USAGE, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == ("error: --ip 10.255.255.1 is not an address of this machine, so "
                        "nothing can listen on it"), result.stderr
    assert lines[1].startswith("hint: ") and len(lines) == 2, result.stderr
    assert "Traceback" not in result.stderr and "starting" not in result.stdout


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-5"])
def test_startup_timeout_must_be_a_positive_finite_number(tmp_path: Path, value: str) -> None:
    result = dlbox("notebook", "--no-browser", "--notebook-dir", str(tmp_path),
                   f"--startup-timeout={value}")
    assert result.returncode == EXIT_USAGE, result.stderr
    assert result.stderr.splitlines()[0] == (
        f"error: --startup-timeout {float(value)} is not a positive number of seconds")
    assert "hint: " in result.stderr and "starting" not in result.stdout


def test_tag_without_container_is_a_usage_error(tmp_path: Path) -> None:
    """--tag names the image of --container: alone it used to be ignored silently (Jupyter
    started on the host, not in the image the user named)."""
    result = dlbox("notebook", "--no-browser", "--port", "0", "--tag", "myimage:latest",
                   "--notebook-dir", str(tmp_path), "--startup-timeout", "0.001")
    assert result.returncode == EXIT_USAGE, result.stderr
    assert result.stderr.splitlines() == [
        "error: --tag myimage:latest names the image for --container, which is not given",
        "hint: add --container to run Jupyter in that image, or leave --tag out"]
    assert "starting" not in result.stdout


def test_a_notebook_file_given_as_notebook_dir_is_told_to_pass_its_folder(
        tmp_path: Path) -> None:
    """Found by review: `--notebook-dir nbdir/first_pytorch_classifier.ipynb` (the notebook
    itself) was "not a directory" with the hint to create it, though it exists."""
    from dlbox.errors import UsageError

    notebook = tmp_path / "nbdir" / "first_pytorch_classifier.ipynb"
    notebook.parent.mkdir()
    notebook.write_text("{}")
    with pytest.raises(UsageError) as refused:
        resolve_notebook_dir(str(notebook))
    assert refused.value.message == f"--notebook-dir {notebook} is a file, not a directory"
    assert refused.value.hint == (f"pass the folder that holds it: --notebook-dir "
                                  f"{notebook.parent}")
    with pytest.raises(UsageError) as missing:
        resolve_notebook_dir(str(tmp_path / "none"))
    assert "create it" in (missing.value.hint or "")
