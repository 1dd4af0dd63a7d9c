"""Review 11: a GPU project pinning a TensorFlow build whose [and-cuda] extra does not install
on the default base's Python (2.14.1: its tensorrt has no 3.11 wheels) gets the nvidia/cuda
base with a Python it does, as the same build unpinned does, instead of a refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from dlbox.container import build as B
from dlbox.container import framework as F
from dlbox.container import spec as S
from dlbox.errors import ContainerError, HostEnvError
from dlbox.hostenv.resolve import Target

CUDA_118 = "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04"


def no_probe() -> object:
    raise AssertionError("this request must not probe the host")


def project(tmp_path: Path, requirements: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "requirements.txt").write_text(requirements)
    return tmp_path


@pytest.fixture(autouse=True)
def _default_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(S.BASE_IMAGE_ENV, raising=False)


@pytest.mark.parametrize("driver", ["520.61.05", "550.54.15"])
@pytest.mark.parametrize("how", ["pin", "framework-version"])
def test_a_pinned_tensorflow_2_14_gets_the_cuda_11_8_base(tmp_path: Path, driver: str,
                                                          how: str) -> None:
    requirements = "tensorflow==2.14.1\n" if how == "pin" else "tensorflow\n"
    request = B.BuildRequest(project_dir=project(tmp_path, requirements), device="gpu",
                             driver=driver,
                             framework_version="2.14" if how == "framework-version" else None)
    dockerfile, notes = B.dry_run(request, facts=no_probe)
    assert notes[0] == f"tensorflow 2.14.1 (and-cuda) for GPU, base {CUDA_118}", notes[0]
    assert f"FROM {CUDA_118} AS system" in dockerfile
    assert "assuming Python 3.10 for the framework choice" in "\n".join(notes)


def test_the_pinned_base_is_the_unpinned_one_for_the_same_release(tmp_path: Path) -> None:
    # driver 520: the unpinned build takes 2.14.1 on that base; the pin gets the same image
    pinned = B.BuildRequest(project_dir=project(tmp_path / "a", "tensorflow==2.14.1\n"),
                            device="gpu", driver="520.61.05")
    unpinned = B.BuildRequest(project_dir=project(tmp_path / "b", "tensorflow\n"),
                              device="gpu", driver="520.61.05")
    assert B.dry_run(pinned, no_probe)[1][0] == B.dry_run(unpinned, no_probe)[1][0]


def test_a_refusal_on_a_python_3_11_image_names_the_target_not_a_gpu() -> None:
    # The image's Python is 3.11 (a --base-image python:3.11): 2.14.1's and-cuda extra does
    # not install there, and with --driver alone no GPU was given to blame
    target = Target(driver="520.61.05", python="3.11")
    with pytest.raises(HostEnvError) as info:
        F.resolve_framework("tensorflow", target, version="2.14.1")
    assert info.value.hint == ("no tensorflow GPU build for Python 3.11 supports this target: "
                               "resolve with --cpu, or --base-image with another Python")
    with pytest.raises(ContainerError) as pinned:
        F.resolve_framework("tensorflow", target,
                            pins=[("tensorflow==2.14.1", SpecifierSet("==2.14.1"))])
    assert "supports this target" in (pinned.value.hint or ""), pinned.value.hint
    assert "this GPU" not in (pinned.value.hint or "")
