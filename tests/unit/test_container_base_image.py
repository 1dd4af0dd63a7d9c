"""The nvidia/cuda base image of builds that need CUDA installed on the system (cuda-system).

Every TensorFlow release of the shipped matrix that has no `tensorflow[and-cuda]` (<= 2.13)
resolves to such a build; each must get a tag NVIDIA publishes, or an error telling the user
to bring a base with that CUDA (NVIDIA deleted the CUDA 10.x and older tags in 2023).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from dlbox.container import build as B
from dlbox.container import framework as F
from dlbox.container import spec as S
from dlbox.errors import ContainerError, UsageError
from dlbox.hostenv.matrix import TensorflowRelease, load_matrix
from dlbox.hostenv.resolve import ResolvedBuild, Target

# A V100 on CUDA 12.2's driver: every TensorFlow GPU build of the matrix runs on it (CUDA 8.0
# to 12.5; compute capability 7.0 meets both 3.5 and 5.0), so pinning each release resolves.
V100 = Target(driver="535.104.05", compute_capabilities=("7.0",))
SYSTEM_CUDA_RELEASES = [row for row in load_matrix().tensorflow if not row.pip_cuda_extra]


def resolved_tensorflow(release: str) -> ResolvedBuild:
    build = F.resolve_framework("tensorflow", V100, version=release)
    assert build.variant == "cuda-system", release
    return build


def test_the_matrix_has_cuda_system_builds_of_every_kind() -> None:
    # The table below must cover what the matrix can resolve: CUDA 11.x and 10.x and older.
    cudas = {row.cuda for row in SYSTEM_CUDA_RELEASES}
    assert cudas == {"11.8", "11.2", "11.0", "10.1", "10.0", "9.0", "8.0"}


@pytest.mark.parametrize("row", SYSTEM_CUDA_RELEASES, ids=lambda row: row.release)
def test_each_cuda_system_build_gets_a_published_tag_or_the_error(
        row: TensorflowRelease) -> None:
    build = resolved_tensorflow(row.latest)
    assert build.cuda and build.cudnn
    major = int(build.cuda.split(".")[0])
    if major >= 11:
        image = F.default_base_image(build)
        entry = F.cuda_base_image(build)
        assert image == entry.image
        # nvidia/cuda:<major.minor.update>-cudnn<N>-runtime-ubuntu<release>, of that CUDA
        # release and cuDNN major; the Ubuntu's Python is one the TensorFlow release supports.
        match = re.fullmatch(r"nvidia/cuda:(\d+\.\d+)\.\d+-cudnn(\d+)-runtime-ubuntu\d\d\.04",
                             image)
        assert match
        assert match.groups() == (build.cuda, build.cudnn.split(".")[0])
        assert entry.python in row.python
    else:
        with pytest.raises(ContainerError) as info:
            F.default_base_image(build)
        assert f"needs CUDA {build.cuda} and cuDNN {build.cudnn}" in info.value.message
        assert "NVIDIA removed the nvidia/cuda images of CUDA 10.x and older" in \
            info.value.message
        assert info.value.hint is not None and info.value.hint.startswith("pass --base-image")
        assert f"CUDA {build.cuda}" in info.value.hint


def test_the_tags_dlbox_uses() -> None:
    # NVIDIA keeps only the last update of each CUDA minor (11.2.2, 11.0.3); ubuntu22.04
    # images start at CUDA 11.7, so the older ones are ubuntu20.04.
    assert F.default_base_image(resolved_tensorflow("2.13")) == \
        "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04"
    assert F.default_base_image(resolved_tensorflow("2.12")) == \
        "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04"
    for release in ("2.11", "2.8", "2.5"):
        assert F.default_base_image(resolved_tensorflow(release)) == \
            "nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04"
    assert F.default_base_image(resolved_tensorflow("2.4")) == \
        "nvidia/cuda:11.0.3-cudnn8-runtime-ubuntu20.04"


def test_cuda_10_has_no_image_and_says_what_to_do() -> None:
    with pytest.raises(ContainerError) as info:
        F.default_base_image(resolved_tensorflow("1.15"))
    assert info.value.message == (
        "tensorflow 1.15.5 needs CUDA 10.0 and cuDNN 7.4 installed in the image, and NVIDIA "
        "removed the nvidia/cuda images of CUDA 10.x and older from Docker Hub")
    assert info.value.hint == ("pass --base-image IMAGE: an Ubuntu image with CUDA 10.0 and "
                               "cuDNN 7.4 installed (one you build, or a copy you keep)")


def test_a_cudnn_major_without_an_image_is_the_error_too() -> None:
    # CUDA 11.8 images carry cuDNN 8; a build wanting cuDNN 9 from the system has none.
    build = dataclasses.replace(resolved_tensorflow("2.13"), cudnn="9.1")
    with pytest.raises(ContainerError) as info:
        F.default_base_image(build)
    assert info.value.message.endswith("dlbox knows no published nvidia/cuda image with them")
    assert "CUDA 11.8 and cuDNN 9.1" in (info.value.hint or "")


def test_the_table_names_valid_images_of_known_cuda() -> None:
    cudas = {row.cuda for row in load_matrix().cuda_releases}
    for entry in S.CUDA_BASE_IMAGES:
        assert S.check_image_reference(entry.image, "--base-image") == entry.image
        assert entry.cuda in cudas
        # ubuntu22.04 tags exist from CUDA 11.7 on only
        if entry.image.endswith("ubuntu22.04"):
            assert tuple(map(int, entry.cuda.split("."))) >= (11, 7)


def test_the_env_base_does_not_replace_the_cuda_image(monkeypatch: pytest.MonkeyPatch) -> None:
    # DLBOX_BASE_IMAGE replaces the CPU/pip default, which has no CUDA: a cuda-system build
    # keeps its nvidia/cuda image.
    monkeypatch.setenv(S.BASE_IMAGE_ENV, "dlbox-base:test")
    assert F.default_base_image(resolved_tensorflow("2.13")) == \
        "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04"


@pytest.mark.parametrize("value", ["bad image", "Upper:case", "x:" + "t" * 200])
def test_a_bad_env_base_is_refused_before_the_build_as_the_flag_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """Found by review: DLBOX_BASE_IMAGE='bad image' went unchecked into `FROM bad image`
    (a dry run exited 0 with it; a build failed with the engine's parse error and a hint about
    lines that were not there). It is refused, naming the variable, as --base-image is."""
    (tmp_path / "requirements.txt").write_text("numpy\n")
    monkeypatch.setenv(S.BASE_IMAGE_ENV, value)
    with pytest.raises(UsageError) as caught:
        B.dry_run(B.BuildRequest(project_dir=tmp_path, device="cpu"))
    assert caught.value.message.startswith(f"$DLBOX_BASE_IMAGE {value!r} is not a valid image "
                                           "name: ")
    assert caught.value.hint == ("set DLBOX_BASE_IMAGE to an image name such as "
                                 f"{S.DEFAULT_BASE_IMAGE}, or unset it")
    assert not (tmp_path / "dlbox.lock").exists()
    monkeypatch.setenv(S.BASE_IMAGE_ENV, "dlbox-base:test")  # a good one is taken
    assert "FROM dlbox-base:test AS system" in B.dry_run(
        B.BuildRequest(project_dir=tmp_path, device="cpu"))[0]


def test_base_image_flag_is_the_way_out(tmp_path: Path) -> None:
    # Without --base-image a dry run of tensorflow 2.13 (Python 3.11: its default base's) names
    # the CUDA 11.8 image; with it, the Dockerfile starts from the user's image.
    (tmp_path / "requirements.txt").write_text("tensorflow==2.13.1\n")
    request = B.BuildRequest(project_dir=tmp_path, device="gpu", driver="535.104.05",
                             compute_capabilities=("7.0",))
    dockerfile, notes = B.dry_run(request)
    assert "base nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04" in notes[0]
    assert "FROM nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04" in dockerfile
    own = dataclasses.replace(request, base_image="registry.local/cuda:11.8-tf")
    dockerfile, notes = B.dry_run(own)
    assert "FROM registry.local/cuda:11.8-tf" in dockerfile


def test_a_dry_run_assumes_the_python_of_the_cuda_image_it_will_start_from(
        tmp_path: Path) -> None:
    """Found by a review: a dry run assumed Python 3.11 (the CPU base's) before any lock, so
    tensorflow==2.11.0 (Python 3.7 to 3.10) was refused, whereas the real build starts from
    CUDA 11.2's Ubuntu 20.04 image, finds its Python 3.8, and builds it."""
    (tmp_path / "requirements.txt").write_text("tensorflow==2.11.0\n")
    request = B.BuildRequest(project_dir=tmp_path, device="gpu", driver="535.104.05",
                             compute_capabilities=("8.6",))
    dockerfile, notes = B.dry_run(request)
    assert notes[0].startswith("tensorflow 2.11.0 ")
    assert "FROM nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04 AS system" in dockerfile
    assert any("assuming Python 3.8" in note for note in notes), notes
