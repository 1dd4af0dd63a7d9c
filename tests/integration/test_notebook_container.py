"""`dlbox notebook --container`: the server test again, against the dlbox CPU image.

The image comes from DLBOX_NOTEBOOK_IMAGE when set, else the dlbox CPU image (built here with
`dlbox image build --cpu` when it is missing). The server must answer with its token and
refuse without it, run as a non-root user, publish its port on 127.0.0.1 only, keep the
token out of `docker inspect`, and vanish (container removed) on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ipv6_loopback_available, require
from test_notebook_server import (
    check_token_auth,
    get,
    launched_notebook,
    port_is_closed,
    read_only_folder,
    stop_launch,
    wait_for_output,
)

from dlbox.jupyter.container import LABEL, ContainerServer, default_image_tag
from dlbox.jupyter.settings import NotebookSettings

pytestmark = [pytest.mark.docker, pytest.mark.notebook, pytest.mark.slow]

BUILD_TIMEOUT_S = 1500


def docker_client() -> Any | None:
    try:
        import docker

        client = docker.from_env()
        client.ping()
        return client
    except Exception:  # noqa: BLE001 - no engine: the test is skipped (failed in CI)
        return None


def image_present(client: Any, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(scope="module")
def engine() -> Any:
    client = docker_client()
    require(client is not None, "a Docker engine")
    return client


@pytest.fixture(scope="module")
def cpu_image(engine: Any) -> str:
    tag = os.environ.get("DLBOX_NOTEBOOK_IMAGE") or default_image_tag()
    if image_present(engine, tag):
        return tag
    command = [sys.executable, "-m", "dlbox", "image", "build", "--cpu", "--tag", tag]
    wheelhouse = Path(os.environ.get("DLBOX_WHEELHOUSE", "/opt/wheels"))
    if wheelhouse.is_dir():  # a local torch wheelhouse (scripts/test.sh) makes the build fast
        command += ["--wheelhouse", str(wheelhouse)]
    if os.environ.get("DLBOX_BASE_IMAGE"):
        command += ["--base-image", os.environ["DLBOX_BASE_IMAGE"]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
                            stdin=subprocess.DEVNULL)
    require(result.returncode == 0 and image_present(engine, tag),
            f"the dlbox CPU image {tag} (`dlbox image build --cpu` failed: "
            f"{(result.stderr or result.stdout)[-1500:]})")
    return tag


@pytest.fixture
def notebook_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "notebooks"
    directory.mkdir()
    (directory / "hello.ipynb").write_text(
        '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n')
    # When the tests run as root, the container's user (uid 1000) must still write here.
    directory.chmod(0o777)
    return directory


def notebook_containers(engine: Any) -> Iterator[Any]:
    yield from engine.containers.list(all=True, filters={"label": LABEL})


def container_on_port(engine: Any, port: int) -> Any:
    for container in notebook_containers(engine):
        bindings = container.attrs["HostConfig"]["PortBindings"] or {}
        for entries in bindings.values():
            if any(str(entry.get("HostPort")) == str(port) for entry in entries or []):
                return container
    raise AssertionError(f"no dlbox notebook container publishes port {port}")


@pytest.mark.timeout(BUILD_TIMEOUT_S + 600)
def test_container_server_wants_its_token_runs_non_root_and_stops(
        engine: Any, cpu_image: str, notebook_dir: Path) -> None:
    with launched_notebook(notebook_dir, ["--container", "--tag", cpu_image],
                           timeout_s=240) as first:
        assert "in a container" in first.text()
        check_token_auth(first)
        container = container_on_port(engine, first.port)
        container.reload()
        # Never root: not in the config, not in a process inside.
        user = container.attrs["Config"]["User"]
        assert user and user.split(":")[0] not in ("0", "root"), user
        exit_code, output = container.exec_run(["id", "-u"])
        assert exit_code == 0 and output.decode().strip() != "0", output
        # Published on the loopback address only.
        bindings = container.attrs["HostConfig"]["PortBindings"]
        assert all(entry["HostIp"] == "127.0.0.1" for entries in bindings.values()
                   for entry in entries), bindings
        # No Linux capabilities, and no way to gain privileges (setuid), asked for and had.
        host_config = container.attrs["HostConfig"]
        assert host_config["CapDrop"] == ["ALL"], host_config["CapDrop"]
        assert "no-new-privileges" in (host_config["SecurityOpt"] or []), host_config
        exit_code, output = container.exec_run(["grep", "-E", "^(CapEff|NoNewPrivs):",
                                                "/proc/self/status"])
        status = dict(line.split(":\t") for line in output.decode().strip().splitlines())
        assert exit_code == 0 and status == {"CapEff": "0000000000000000", "NoNewPrivs": "1"}, \
            output
        # `docker inspect` does not show the token (only the path of its file).
        inspected = json.dumps(container.attrs)
        assert first.token not in inspected
        assert "JUPYTER_TOKEN_FILE=" in inspected
        # Jupyter can write in the notebooks folder (as the container's user).
        exit_code, output = container.exec_run(["touch", "/workspace/notebooks/written"])
        assert exit_code == 0, output
        assert (notebook_dir / "written").exists()
        # The image's tini under the engine's init: a subreaper, without a warning each start
        assert "Tini is not running as PID 1" not in container.logs().decode("utf-8", "replace")
        first_token, name = first.token, container.name
        assert stop_launch(first, signal.SIGINT, timeout_s=90) == 130
        assert port_is_closed(first.port)
        assert name not in [c.name for c in notebook_containers(engine)], "container left over"

    with launched_notebook(notebook_dir, ["--container", "--tag", cpu_image],
                           timeout_s=240) as second:
        assert second.token != first_token
        check_token_auth(second)
        assert get(f"{second.base_url}/api/status", first_token)[0] == 403




@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)
@pytest.mark.parametrize("ip", ["127.0.0.2", "::1"])
def test_container_port_is_published_on_the_ip_asked_for(
        engine: Any, cpu_image: str, notebook_dir: Path, ip: str) -> None:
    """--container --ip X publishes the port on X of the host (docs/notebook.md), and the
    printed URL reaches the server there."""
    if ":" in ip and not ipv6_loopback_available():
        pytest.skip("this machine has no IPv6")
    with launched_notebook(notebook_dir, ["--container", "--tag", cpu_image, "--ip", ip],
                           timeout_s=240) as launch:
        host = f"[{ip}]" if ":" in ip else ip
        assert launch.base_url == f"http://{host}:{launch.port}", launch.text()
        check_token_auth(launch)
        container = container_on_port(engine, launch.port)
        bindings = container.attrs["HostConfig"]["PortBindings"]
        assert [entry["HostIp"] for entries in bindings.values() for entry in entries] == [ip]
        name = container.name
        assert stop_launch(launch, signal.SIGINT, timeout_s=90) == 130
    assert name not in [c.name for c in notebook_containers(engine)], "container left over"


def test_a_refused_container_launch_prints_no_warning_first(engine: Any,
                                                            notebook_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dlbox", "notebook", "--no-browser", "--container",
         "--ip", "0.0.0.0", "--port", "0", "--tag", "dlbox-test-no-such-image:none",
         "--notebook-dir", str(notebook_dir)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr  # as `dlbox image run --tag` of one
    assert result.stderr.splitlines()[0] == (
        "error: the image dlbox-test-no-such-image:none is not on this machine"), result.stderr
    assert "hint: check its name" in result.stderr  # not "or pass --tag", which it was given
    assert "warning:" not in result.stderr and "starting" not in result.stdout


@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)
def test_ctrl_c_between_create_and_start_leaves_no_container(
        engine: Any, cpu_image: str, notebook_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the engine starts the container: the engine has created it (state
    "created") but dlbox never got it back. The start removes it by the name it gave it."""
    import docker
    from docker.models.containers import Container

    created: list[str] = []

    def interrupted_start(self: Container, **kwargs: Any) -> None:
        created.append(self.name)
        raise KeyboardInterrupt  # Ctrl-C, right after the engine created the container

    monkeypatch.setattr(Container, "start", interrupted_start)
    server = ContainerServer(NotebookSettings(notebook_dir, port=0, container=True,
                                              image=cpu_image, startup_timeout_s=60))
    try:
        with pytest.raises(KeyboardInterrupt):
            server.start()
        assert len(created) == 1 and created[0].startswith("dlbox-notebook-"), created
        with pytest.raises(docker.errors.NotFound):
            engine.containers.get(created[0])
        assert not server.launch.path.exists()
    finally:
        for name in created:  # without the fix: do not leave it to the next test run
            try:
                engine.containers.get(name).remove(force=True)
            except docker.errors.NotFound:
                pass


def test_a_container_whose_dlbox_was_killed_is_removed_by_the_next_start(
        engine: Any, cpu_image: str, notebook_dir: Path) -> None:
    from dlbox.container.owner import OWNER_LABEL, owner_gone, owner_id
    from dlbox.jupyter.container import remove_orphans

    # Its id taken while it runs, as dlbox labels its containers: with the start time, so a
    # pid the engine's own processes reuse meanwhile is told apart (the test was flaky after
    # the thousands of processes of a whole test run)
    ended = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ended_owner = owner_id(ended.pid)
    ended.kill()
    ended.wait()
    assert owner_gone(ended_owner) and not owner_gone(owner_id())
    assert not owner_gone(f"another-host:{ended.pid}:1")  # a shared engine's other machines
    orphan = engine.containers.run(cpu_image, ["sleep", "300"], detach=True,
                                   labels={LABEL: "1", OWNER_LABEL: ended_owner})
    ours = engine.containers.run(cpu_image, ["sleep", "300"], detach=True,
                                 labels={LABEL: "1", OWNER_LABEL: owner_id()})
    try:
        assert orphan.name in remove_orphans(engine, timeout_s=1)
        names = {c.name for c in engine.containers.list(all=True, filters={"label": LABEL})}
        assert orphan.name not in names and ours.name in names
    finally:
        for container in (orphan, ours):
            try:
                container.remove(force=True)
            except Exception:  # noqa: BLE001 - removed by the test already
                pass


@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)
def test_sigkill_of_dlbox_leaves_a_container_the_next_notebook_removes(
        engine: Any, cpu_image: str, notebook_dir: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "dlbox", "notebook", "--no-browser", "--container",
               "--port", "0", "--tag", cpu_image, "--notebook-dir", str(notebook_dir)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, stdin=subprocess.DEVNULL)
    try:
        assert first.stdout is not None
        for line in first.stdout:
            if "http://" in line and "token" in line:
                break
        else:
            raise AssertionError("the first notebook printed no URL")
        left = [c for c in engine.containers.list(filters={"label": LABEL})
                if c.labels.get("dlbox.owner", "").split(":")[1:2] == [str(first.pid)]]
        assert len(left) == 1
        first.kill()  # SIGKILL: no chance to stop its container
        first.wait(timeout=30)
        left[0].reload()
        assert left[0].status == "running"
        second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, stdin=subprocess.DEVNULL)
        seen = []
        try:
            assert second.stdout is not None
            for line in second.stdout:
                seen.append(line)
                if "http://" in line and "token" in line:
                    break
            assert left[0].name not in {c.name for c in engine.containers.list(all=True)}
        finally:
            second.send_signal(signal.SIGINT)
            second.wait(timeout=60)
        assert any(f"removed notebook container {left[0].name}" in line for line in seen), seen
    finally:
        if first.poll() is None:
            first.kill()
        for container in engine.containers.list(all=True, filters={"label": LABEL}):
            if container.labels.get("dlbox.owner", "").split(":")[1:2] == [str(first.pid)]:
                container.remove(force=True)


@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)
def test_a_second_ctrl_c_while_stopping_still_removes_the_container(
        engine: Any, cpu_image: str, notebook_dir: Path) -> None:
    """An impatient user presses Ctrl-C twice: the second one, while `docker stop` waits for
    Jupyter, must not leave the container behind (it used to stay, exited, never removed)."""
    with launched_notebook(notebook_dir, ["--container", "--tag", cpu_image],
                           timeout_s=240) as launch:
        name = container_on_port(engine, launch.port).name
        launch.process.send_signal(signal.SIGINT)
        wait_for_output(launch, "stopping the Jupyter server")
        launch.process.send_signal(signal.SIGINT)  # again, while the container stops
        assert launch.process.wait(timeout=90) == 130, launch.text()
    left = [c for c in notebook_containers(engine) if c.name == name]
    for container in left:  # do not leave it to the next test run
        container.remove(force=True)
    assert not left, f"container left over: {name}"
    assert "stopped." in launch.text(), launch.text()
    assert port_is_closed(launch.port)


def test_an_image_without_jupyterlab_gets_a_hint_about_the_image(
        engine: Any, notebook_dir: Path) -> None:
    """An image that cannot run JupyterLab: the hint names the image and how to build one
    (it used to say `pip install 'dlbox[notebook]'`, which changes the host, not the image)."""
    bare = os.environ.get("DLBOX_BASE_IMAGE") or "dlbox-base:bookworm"  # no JupyterLab in it
    if not image_present(engine, bare):
        pytest.skip(f"no image without JupyterLab here ({bare})")
    result = subprocess.run(
        [sys.executable, "-m", "dlbox", "notebook", "--no-browser", "--container", "--port",
         "0", "--tag", bare, "--notebook-dir", str(notebook_dir), "--startup-timeout", "60"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result.stderr
    assert "No module named jupyterlab" in result.stderr, result.stderr
    hint = result.stderr.rstrip("\n").splitlines()[-1]
    assert hint.startswith("hint: read the container log above; the image needs JupyterLab"), \
        result.stderr
    assert "dlbox image build --cpu" in hint and "pip install" not in hint, hint
    assert not [c for c in notebook_containers(engine)
                if c.attrs["Config"]["Image"] == bare], "container left over"


@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)
def test_a_read_only_notebook_folder_gets_a_warning_in_container_mode(
        engine: Any, cpu_image: str, notebook_dir: Path, tmp_path: Path) -> None:
    """A folder on a read-only mount: its mode bits (0777 here) say the container's user may
    write, yet nobody can. dlbox used to say nothing; now it warns before it starts."""
    with read_only_folder(notebook_dir, tmp_path / "read-only") as folder:
        if not os.statvfs(folder).f_flag & os.ST_RDONLY:
            pytest.skip("needs a read-only mount (root)")
        with launched_notebook(folder, ["--container", "--tag", cpu_image],
                               timeout_s=240) as launch:
            text = wait_for_output(launch, "Press Ctrl-C")
            assert (f"warning: {folder} is read-only for the container: Jupyter cannot save "
                    "the notebook there") in text, text
            check_token_auth(launch)
            assert stop_launch(launch, signal.SIGINT, timeout_s=90) == 130


@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)
def test_a_notebook_folder_whose_path_holds_a_colon_is_served(
        engine: Any, cpu_image: str, tmp_path: Path) -> None:
    """The engine splits a bind string "src:dst:mode" at each ':': a folder named "a:b" was
    refused ("invalid volume specification"); mounts pass the path as one field."""
    folder = tmp_path / "note:books,1"
    folder.mkdir()
    (folder / "from-host.txt").write_text("hello\n")
    folder.chmod(0o777)  # when the tests run as root, the container's user (uid 1000) writes
    with launched_notebook(folder, ["--container", "--tag", cpu_image],
                           timeout_s=240) as launch:
        check_token_auth(launch)
        container = container_on_port(engine, launch.port)
        exit_code, output = container.exec_run(
            ["sh", "-c", "cat /workspace/notebooks/from-host.txt && "
                         "echo saved > /workspace/notebooks/from-container.txt"])
        assert (exit_code, output) == (0, b"hello\n"), output
        assert (folder / "from-container.txt").read_text() == "saved\n"
        assert stop_launch(launch, signal.SIGINT, timeout_s=90) == 130
