"""Review 15: GPUs in `dlbox image run --gpus none` and in `dlbox notebook --container`.

- A GPU image bakes in NVIDIA_VISIBLE_DEVICES=all, so where nvidia is Docker's default
  runtime the toolkit mounted every GPU even with `--gpus none` (no device request): a
  container given no GPU now gets NVIDIA_VISIBLE_DEVICES=void, the toolkit's value for none,
  unless the user's own --env sets it.
- `dlbox notebook --container --tag GPU-IMAGE` never asked for a GPU: it now gets the same
  default as `dlbox image run` (all GPUs for a GPU image, checked first; none for a CPU one).

No Docker engine is needed: the engine and the host are stand-ins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dlbox.container import engine
from dlbox.container.run import RunOptions, parse_gpus, run_request
from dlbox.errors import HostEnvError
from dlbox.hostenv.facts import DockerFacts, GpuFacts, HostFacts, NvidiaFacts
from dlbox.jupyter import container as notebook_container
from dlbox.jupyter.settings import NotebookSettings

ALL = engine.GpuRequest(count=-1)


def host(*, driver: str | None = "560.35.03", gpus: int = 1,
         runtimes: tuple[str, ...] = ("nvidia", "runc")) -> HostFacts:
    return HostFacts(
        nvidia=NvidiaFacts(source="nvml", driver_version=driver,
                           gpus=tuple(GpuFacts(i, "NVIDIA A100", "8.0") for i in range(gpus))),
        docker=DockerFacts(reachable=True, runtimes=runtimes),
    )


# ---- dlbox image run ------------------------------------------------------------------------

def test_gpus_none_on_a_gpu_image_hides_the_gpus_from_the_nvidia_runtime() -> None:
    gpus = parse_gpus("none", "gpu")
    request = run_request(RunOptions(image="proj:gpu", gpus="none"), gpus, 1000, 1000,
                          None, None)
    assert request.gpus is None
    assert dict(request.environment)["NVIDIA_VISIBLE_DEVICES"] == "void"


def test_a_cpu_image_gets_void_too_harmlessly() -> None:
    request = run_request(RunOptions(image="proj:cpu"), parse_gpus(None, "cpu"), 1000, 1000,
                          None, None, image_device="cpu")
    assert request.gpus is None
    assert dict(request.environment)["NVIDIA_VISIBLE_DEVICES"] == "void"


def test_an_image_dlbox_did_not_build_keeps_its_own_gpu_env() -> None:
    """Re-review: void for every unlabelled image hid the GPUs of a pytorch/pytorch image
    that nvidia as Docker's default runtime gave it before."""
    request = run_request(RunOptions(image="pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
                                     named=True), parse_gpus(None, None), 1000, 1000, None,
                          None)
    assert "NVIDIA_VISIBLE_DEVICES" not in dict(request.environment)


def test_a_gpu_request_leaves_the_variable_to_the_engine() -> None:
    for value in (None, "all", "2", "device=0,1"):
        gpus = parse_gpus(value, "gpu")
        request = run_request(RunOptions(image="proj:gpu", gpus=value), gpus, 1000, 1000,
                              None, None)
        assert request.gpus == gpus and gpus is not None
        assert "NVIDIA_VISIBLE_DEVICES" not in dict(request.environment)


def test_the_users_env_still_wins() -> None:
    options = RunOptions(image="proj:gpu", gpus="none",
                         environment=(("NVIDIA_VISIBLE_DEVICES", "1"),))
    request = run_request(options, None, 1000, 1000, None, None)
    assert dict(request.environment)["NVIDIA_VISIBLE_DEVICES"] == "1"


def test_the_engine_gets_void_and_no_device_request() -> None:
    pytest.importorskip("docker")
    request = run_request(RunOptions(image="proj:gpu", gpus="none"), None, 1000, 1000,
                          None, None)
    kwargs = engine._run_kwargs(request)
    assert kwargs["environment"]["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert not kwargs.get("device_requests")


# ---- dlbox notebook --container -------------------------------------------------------------

def test_the_notebook_request_passes_the_gpus_on(tmp_path: Path) -> None:
    settings = NotebookSettings(tmp_path, port=0, container=True, image="proj:gpu")
    request = notebook_container.run_request("proj:gpu", settings, 8123, 1000, 1000,
                                             tmp_path / "t", tmp_path / "c.json", None,
                                             name="n", gpus=ALL)
    assert request.gpus == ALL
    assert "NVIDIA_VISIBLE_DEVICES" not in dict(request.environment)
    cpu = notebook_container.run_request("dlbox:cpu", settings, 8123, 1000, 1000,
                                         tmp_path / "t", tmp_path / "c.json", None, name="n")
    assert cpu.gpus is None
    assert dict(cpu.environment)["NVIDIA_VISIBLE_DEVICES"] == "void"


class FakeContainer:
    status = "running"


def launch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, device: str | None,
           facts: HostFacts) -> Any:
    """The RunRequest `dlbox notebook --container` gives the engine for an image whose
    dlbox.device label is `device` (no label: None), on a host described by `facts`."""
    started: list[Any] = []
    labels = {"dlbox.device": device} if device else {}
    monkeypatch.setattr(engine, "connect", lambda *a, **k: object())
    monkeypatch.setattr(engine, "inspect_image",
                        lambda client, name: {"Config": {"Labels": labels}})
    monkeypatch.setattr(engine, "start_container",
                        lambda client, request: started.append(request) or FakeContainer())
    monkeypatch.setattr(engine, "stop_container", lambda container, timeout: None)
    monkeypatch.setattr(engine, "remove_container", lambda container: None)
    monkeypatch.setattr(notebook_container, "remove_orphans", lambda client: [])
    monkeypatch.setattr(notebook_container, "resolve_port", lambda ip, port: 8123)
    settings = NotebookSettings(tmp_path, port=0, container=True, image="proj:x")
    server = notebook_container.ContainerServer(settings)
    server.facts = lambda: facts
    try:
        server.prepare()
        server._launch()
    finally:
        server.stop()
    return started[0]


def test_the_notebook_of_a_gpu_image_gets_all_gpus(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    request = launch(tmp_path, monkeypatch, "gpu", host())
    assert request.gpus == ALL
    assert "NVIDIA_VISIBLE_DEVICES" not in dict(request.environment)


@pytest.mark.parametrize("device", ["cpu", None])
def test_the_notebook_of_a_cpu_image_gets_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               device: str | None) -> None:
    # the host is not even asked: no GPU, no check
    request = launch(tmp_path, monkeypatch, device, host(driver=None, gpus=0))
    assert request.gpus is None
    assert dict(request.environment)["NVIDIA_VISIBLE_DEVICES"] == "void"


@pytest.mark.parametrize(("facts", "missing"), [
    (host(driver=None, gpus=0), "no working NVIDIA driver"),
    (host(gpus=0), "sees no GPU"),
    (host(runtimes=("runc",)), "no NVIDIA runtime"),
])
def test_the_notebook_of_a_gpu_image_on_a_host_without_one_is_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, facts: HostFacts,
        missing: str) -> None:
    with pytest.raises(HostEnvError) as info:
        launch(tmp_path, monkeypatch, "gpu", facts)
    assert "proj:x is a GPU image" in info.value.message
    assert missing in info.value.message
    hint = info.value.hint or ""
    assert "--gpus none" not in hint  # dlbox notebook has no --gpus
    if "runtime" not in missing:
        assert "CPU image" in hint
