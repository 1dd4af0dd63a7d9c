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
from conftest import require
from test_notebook_server import (
    check_token_auth,
    get,
    launched_notebook,
    port_is_closed,
    stop_launch,
)

from dlbox.jupyter.container import LABEL, default_image_tag

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
    if Path("/opt/wheels").is_dir():  # a local torch wheelhouse makes the build fast
        command += ["--wheelhouse", "/opt/wheels"]
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
        # `docker inspect` does not show the token (only the path of its file).
        inspected = json.dumps(container.attrs)
        assert first.token not in inspected
        assert "JUPYTER_TOKEN_FILE=" in inspected
        # Jupyter can write in the notebooks folder (as the container's user).
        exit_code, output = container.exec_run(["touch", "/workspace/notebooks/written"])
        assert exit_code == 0, output
        assert (notebook_dir / "written").exists()
        first_token, name = first.token, container.name
        assert stop_launch(first, signal.SIGINT, timeout_s=90) == 130
        assert port_is_closed(first.port)
        assert name not in [c.name for c in notebook_containers(engine)], "container left over"

    with launched_notebook(notebook_dir, ["--container", "--tag", cpu_image],
                           timeout_s=240) as second:
        assert second.token != first_token
        check_token_auth(second)
        assert get(f"{second.base_url}/api/status", first_token)[0] == 403
