"""ImageSpec -> Dockerfile: golden files per framework and device, determinism, layer order.

The golden Dockerfiles live in tests/fixtures/dockerfiles/. After an intended template change,
regenerate them and review the diff:

    DLBOX_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_container_render.py
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from dlbox.container import spec as S
from dlbox.container.render import (
    dockerfile_string,
    fill,
    pip_index_options,
    render_dockerfile,
    render_lock_requirements,
)
from dlbox.container.spec import FrameworkBuild, ImageSpec, default_tag, image_labels

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "dockerfiles"
UPDATE = os.environ.get("DLBOX_UPDATE_GOLDEN", "") == "1"
BASE = "python:3.11-slim-bookworm"
SHA = "0123456789abcdef" * 4  # a fixed lock digest: the label must not depend on a real lock

# Fixed, deterministic framework builds (the values the resolver gives for these variants;
# written out here so a matrix update does not change the golden files).
TORCH_CPU = FrameworkBuild("torch", "2.15.0+cpu", "cpu",
                           wheel_index="https://download.pytorch.org/whl/cpu")
TORCH_CU126 = FrameworkBuild("torch", "2.14.1+cu126", "cu126", cuda="12.6", cudnn="9.10",
                             wheel_index="https://download.pytorch.org/whl/cu126",
                             min_driver="525.60.13")
TF_CPU = FrameworkBuild("tensorflow", "2.21.0", "cpu")
TF_AND_CUDA = FrameworkBuild("tensorflow", "2.21.0", "and-cuda", cuda="12.5", cudnn="9.3",
                             min_driver="525.60.13")
JAX_CPU = FrameworkBuild("jax", "0.10.2", "cpu")
JAX_CUDA12 = FrameworkBuild("jax", "0.10.2", "cuda12", cuda="12", cudnn="9.8",
                            min_driver="525.60.13")


def make_spec(framework: FrameworkBuild, **overrides: object) -> ImageSpec:
    values: dict[str, object] = dict(
        project_name="demo",
        project_kind="requirements",
        framework=framework,
        base_image=BASE,
        python="3.11.2",
        lock_sha256=SHA,
        dlbox_version="0.0.0-golden",  # fixed: a dlbox version bump must not break the files
    )
    values.update(overrides)
    return ImageSpec(**values)  # type: ignore[arg-type]


SPECS: dict[str, ImageSpec] = {
    "torch-cpu": make_spec(TORCH_CPU),
    "torch-gpu": make_spec(TORCH_CU126),
    "tensorflow-cpu": make_spec(TF_CPU, project_kind="pyproject", project_version="1.2.3",
                                install_project=True),
    "tensorflow-gpu": make_spec(TF_AND_CUDA, project_kind="pyproject", project_version="1.2.3",
                                install_project=True),
    "jax-cpu": make_spec(JAX_CPU),
    "jax-gpu": make_spec(JAX_CUDA12, base_digest="sha256:" + "f" * 64),
    # Every optional fragment at once: extra CA, wheelhouse, offline, install of the project.
    "torch-gpu-offline": make_spec(
        TORCH_CU126, project_name="dlbox", project_kind="builtin", project_version="0.1.0",
        install_project=True, wheelhouse=True, offline=True, ca_cert=True,
        command=("dlbox", "--help"), pip_flags=("--pre",)),
}


def golden_path(name: str) -> Path:
    return GOLDEN_DIR / f"{name}.Dockerfile"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_render_matches_golden_file(name: str) -> None:
    text = render_dockerfile(SPECS[name])
    path = golden_path(name)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} is missing: run with DLBOX_UPDATE_GOLDEN=1 to write it"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, (
        f"{path.name} differs from the rendered Dockerfile; if the change is intended, "
        "regenerate with DLBOX_UPDATE_GOLDEN=1 and review the diff")


def test_every_golden_file_has_a_spec() -> None:
    # A stale golden file (spec renamed or removed) would otherwise rot unnoticed.
    names = {path.name.removesuffix(".Dockerfile") for path in GOLDEN_DIR.glob("*.Dockerfile")}
    assert names == set(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_render_is_deterministic(name: str) -> None:
    spec = SPECS[name]
    first = render_dockerfile(spec)
    # An equal spec built anew renders the same bytes (no clock, no environment, no ids).
    again = ImageSpec(**{field: getattr(spec, field) for field in spec.__dataclass_fields__})
    assert render_dockerfile(again) == first
    assert render_dockerfile(spec) == first


def test_render_ignores_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    before = render_dockerfile(SPECS["torch-gpu"])
    monkeypatch.setenv(S.BASE_IMAGE_ENV, "example.org/other:1")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    assert render_dockerfile(SPECS["torch-gpu"]) == before


def _line_index(lines: list[str], pattern: str) -> int:
    for number, line in enumerate(lines):
        if re.search(pattern, line):
            return number
    raise AssertionError(f"no line matches {pattern!r}")


@pytest.mark.parametrize("name", sorted(SPECS))
def test_deps_stage_comes_before_the_project_copy(name: str) -> None:
    lines = render_dockerfile(SPECS[name]).splitlines()
    system = _line_index(lines, r"^FROM .* AS system$")
    venv = _line_index(lines, r"^FROM system AS venv$")
    deps = _line_index(lines, r"^FROM venv AS deps$")
    lock_copy = _line_index(lines, r"^COPY dlbox/requirements\.lock\.txt ")
    install = _line_index(lines, r"^RUN pip install --no-deps")
    image = _line_index(lines, r"^FROM system$")
    venv_copy = _line_index(lines, r"^COPY --from=deps /opt/venv /opt/venv$")
    code_copy = _line_index(lines, r"^COPY --chown=1000:1000 project/ /workspace/$")
    user = _line_index(lines, r"^USER ")
    assert system < venv < deps < lock_copy < install < image < venv_copy < code_copy < user
    # The code is copied exactly once and only in the last stage: a code change keeps the
    # (expensive) dependency layers cached.
    assert sum(line.startswith("COPY --chown") for line in lines) == 1
    instructions = [line.split()[0] for line in lines
                    if line and not line.startswith((" ", "#"))]
    assert instructions[-4:] == ["USER", "ENTRYPOINT", "CMD", "LABEL"]


def _stages(dockerfile: str) -> dict[str, tuple[str, list[str]]]:
    """{stage name: (the stage it is FROM, its lines)}; the unnamed last stage is "image"."""
    stages: dict[str, tuple[str, list[str]]] = {}
    current: list[str] = []
    for line in dockerfile.splitlines():
        match = re.match(r"^FROM (\S+)(?: AS (\S+))?$", line)
        if match:
            current = []
            stages[match.group(2) or "image"] = (match.group(1), current)
        elif stages:
            current.append(line)
    return stages


@pytest.mark.parametrize("name", sorted(SPECS))
def test_the_image_venv_is_exactly_the_deps_stage_venv(name: str) -> None:
    # The image's venv is copied from deps onto a stage without one: with a venv of its own
    # underneath, COPY --from=deps overlaid it, and what pip had removed in deps (the base
    # venv's setuptools 66 when the lock pins 84) came back beside it: pip check failed.
    stages = _stages(render_dockerfile(SPECS[name]))
    assert list(stages) == ["system", "venv", "deps", "image"]
    assert stages["venv"][0] == "system" and stages["deps"][0] == "venv"
    assert stages["image"][0] == "system"
    venv_lines = [(stage, line) for stage, (_, lines) in stages.items() for line in lines
                  if "-m venv" in line]
    assert venv_lines == [("venv", "RUN python3 -m venv /opt/venv")]
    assert stages["image"][1][0] == "COPY --from=deps /opt/venv /opt/venv"
    # The lock is resolved in the build up to deps: that part ends with the venv stage.
    from dlbox.container.build import _system_only

    head = _stages(_system_only(render_dockerfile(SPECS[name])))
    assert list(head) == ["system", "venv"]


def test_gpu_image_sets_nvidia_env_and_cpu_image_does_not() -> None:
    gpu = render_dockerfile(SPECS["torch-gpu"])
    cpu = render_dockerfile(SPECS["torch-cpu"])
    for key, value in S.NVIDIA_ENV:
        assert f"    {key}={value}" in gpu
        assert key not in cpu
    assert 'dlbox.device="gpu"' in gpu and 'dlbox.device="cpu"' in cpu


def test_an_image_from_nvidia_cuda_turns_off_its_driver_requirement() -> None:
    # Review: nvidia/cuda:11.8.0 sets NVIDIA_REQUIRE_CUDA "cuda>=11.8 brand=tesla,driver>=450,
    # driver<451 ...", so the toolkit refused drivers 455-469 that dlbox accepts under
    # minor-version compatibility ("unsatisfied condition: cuda>=11.8").
    system = FrameworkBuild("tensorflow", "2.12.1", "cuda-system", cuda="11.8", cudnn="8.6",
                            min_driver="450.80.02")
    text = render_dockerfile(make_spec(
        system, base_image="nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04", python="3.10.12"))
    assert "    NVIDIA_DISABLE_REQUIRE=1" in text
    for key, value in S.NVIDIA_ENV:
        assert f"    {key}={value}" in text
    for name in ("torch-gpu", "tensorflow-gpu", "jax-gpu", "torch-cpu"):
        assert "NVIDIA_DISABLE_REQUIRE" not in render_dockerfile(SPECS[name])


@pytest.mark.parametrize("base", [
    "nvidia/cuda:12.6.0-runtime-ubuntu22.04",
    "docker.io/nvidia/cuda:12.6.0-runtime-ubuntu22.04",
    "registry-1.docker.io/nvidia/cuda:12.6.0-runtime-ubuntu22.04",
    "nvcr.io/nvidia/cuda:12.6.0-runtime-ubuntu22.04",
    "nvidia/cuda@sha256:" + "ab" * 32,
    "docker.io/nvidia/cuda:12.6.0-runtime-ubuntu22.04@sha256:" + "ab" * 32,
])
def test_any_spelling_of_an_nvidia_cuda_base_turns_off_its_driver_requirement(base: str) -> None:
    # Review: only "nvidia/cuda:..." was seen; docker.io/, registry-1.docker.io/, nvcr.io/ and
    # a digest reference of the same image kept NVIDIA_REQUIRE_CUDA's refusal.
    assert S.is_nvidia_cuda_image(base)
    text = render_dockerfile(make_spec(TORCH_CU126, base_image=base, python="3.10.12"))
    assert "    NVIDIA_DISABLE_REQUIRE=1" in text


@pytest.mark.parametrize("base", [BASE, "nvidia/cudagl:11.4.2-runtime-ubuntu20.04",
                                  "example.com/nvidia/cuda-like:1", "mynvidia/cuda:12.6.0",
                                  "ghcr.io/someone/nvidia/cuda:12.6.0"])
def test_other_bases_are_not_nvidia_cuda(base: str) -> None:
    assert not S.is_nvidia_cuda_image(base)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_non_root_user_and_tini_entrypoint(name: str) -> None:
    text = render_dockerfile(SPECS[name])
    assert "\nUSER 1000:1000\n" in text
    assert '\nENTRYPOINT ["/usr/bin/tini", "--"]\n' in text
    # USER comes after every RUN: nothing of the final image runs as root at start.
    assert text.rindex("\nRUN ") < text.index("\nUSER 1000:1000\n")


def test_install_project_fragment_only_when_installable() -> None:
    assert "pip install --no-deps --no-build-isolation --no-index /tmp/dlbox-project" in \
        render_dockerfile(SPECS["tensorflow-cpu"])
    assert "/tmp/dlbox-project" not in render_dockerfile(SPECS["torch-cpu"])


def test_optional_fragments() -> None:
    text = render_dockerfile(SPECS["torch-gpu-offline"])
    assert "COPY dlbox/extra-ca.crt /usr/local/share/ca-certificates/dlbox-extra-ca.crt" in text
    assert "COPY dlbox/wheelhouse/ /opt/dlbox/wheelhouse/" in text
    assert "--no-index" in text and "--find-links=/opt/dlbox/wheelhouse" in text
    assert "--extra-index-url" not in text  # offline: no index at all
    assert 'CMD ["dlbox", "--help"]' in text
    # The CA goes in before pip runs; the wheelhouse is in the deps stage only.
    assert text.index("extra-ca.crt") < text.index("RUN pip install")
    assert text.index("FROM venv AS deps") < text.index("COPY dlbox/wheelhouse/") \
        < text.index("\nFROM system\n")
    plain = render_dockerfile(SPECS["torch-gpu"])
    assert "extra-ca.crt" not in plain and "wheelhouse" not in plain


def test_pip_index_options_order() -> None:
    spec = make_spec(TORCH_CU126, index_url="https://mirror.example/simple",
                     extra_index_urls=("https://extra.example/simple",
                                       "https://download.pytorch.org/whl/cu126"),
                     pip_flags=("--pre",), wheelhouse=True)
    assert pip_index_options(spec) == (
        "--index-url=https://mirror.example/simple",
        "--extra-index-url=https://extra.example/simple",
        "--extra-index-url=https://download.pytorch.org/whl/cu126",  # not repeated
        "--find-links=/opt/dlbox/wheelhouse",
        "--pre",
    )
    # The framework's index goes first when the project does not list it itself.
    assert pip_index_options(make_spec(TORCH_CU126, extra_index_urls=("https://x/simple",))) \
        == ("--extra-index-url=https://download.pytorch.org/whl/cu126",
            "--extra-index-url=https://x/simple")
    assert pip_index_options(make_spec(TF_CPU)) == ()
    assert pip_index_options(make_spec(TORCH_CU126, offline=True)) == ("--no-index",)


def test_pip_options_are_shell_quoted() -> None:
    spec = make_spec(TF_CPU, index_url="https://user:p w@mirror.example/simple?x=1")
    assert "'--index-url=https://user:p w@mirror.example/simple?x=1'" in render_dockerfile(spec)


def test_labels() -> None:
    labels = dict(image_labels(SPECS["torch-gpu"]))
    assert labels["dlbox.framework"] == "torch"
    assert labels["dlbox.framework.version"] == "2.14.1+cu126"
    assert labels["dlbox.cuda"] == "12.6" and labels["dlbox.min_driver"] == "525.60.13"
    assert labels["dlbox.lock.sha256"] == SHA
    assert labels["dlbox.version"] == "0.0.0-golden"
    assert labels["dlbox.user"] == "1000:1000"
    assert labels["org.opencontainers.image.base.name"] == BASE
    keys = [key for key, _ in image_labels(SPECS["torch-gpu"])]
    assert keys == sorted(keys)
    # Unknown values are left out rather than written empty.
    cpu = dict(image_labels(SPECS["torch-cpu"]))
    assert "dlbox.cuda" not in cpu and "org.opencontainers.image.version" not in cpu
    extra = dict(image_labels(make_spec(TF_CPU, extra_labels=(("team", "vision"),))))
    assert extra["team"] == "vision"


def test_dockerfile_string_escapes() -> None:
    assert dockerfile_string('a "b" \\ c\nd') == '"a \\"b\\" \\\\ c d"'
    assert dockerfile_string("$HOME ${PATH}") == '"\\$HOME \\${PATH}"'
    assert dockerfile_string("a\r\nb\rc") == '"a b c"'


def docker_label_values(dockerfile: str) -> dict[str, str]:
    """LABEL key="value" pairs as the engine reads them: in a double-quoted word, \\ escapes
    only ", $ and \\ (any other backslash stays), and an unescaped $ would be expanded."""
    instruction = dockerfile.rsplit("\nLABEL ", 1)[1]  # the image's (the last; deps has one)
    text = re.sub(r"\\\n\s*", " ", instruction.rstrip("\n"))  # line continuations
    assert "\n" not in text, "a line break inside the LABEL instruction"
    labels: dict[str, str] = {}
    i = 0
    while i < len(text):
        if text[i] == " ":
            i += 1
            continue
        key = text[i:].split('="', 1)[0]
        i += len(key) + 2
        value = []
        while text[i] != '"':
            if text[i] == "\\" and text[i + 1] in '"$\\':
                i += 1
            else:
                assert text[i] != "$", f"{key}: an unescaped $ the engine would expand"
            value.append(text[i])
            i += 1
        labels[key] = "".join(value)
        i += 1
    return labels


def test_hostile_label_values_come_back_unchanged() -> None:
    hostile = {
        "env": "$HOME and ${PATH:-/bin} and $(id)",
        "quotes": 'say "hi"; RUN rm -rf / #',
        "backslashes": "C:\\temp\\ \\$HOME \\\\",
        "trailing": "ends in a backslash \\",
        "lines": "one\nLABEL evil=1\r\ntwo",
    }
    spec = make_spec(TF_CPU, project_name="demo\nRUN evil", extra_labels=tuple(hostile.items()))
    dockerfile = render_dockerfile(spec)
    labels = docker_label_values(dockerfile)
    for key, value in hostile.items():
        assert labels[key] == value.replace("\r\n", " ").replace("\n", " ")
    assert labels["dlbox.framework"] == "tensorflow"
    assert labels["dlbox.project"] == "demo RUN evil"
    assert "\nLABEL evil" not in dockerfile and "\nRUN evil" not in dockerfile
    assert dockerfile.startswith("# Dockerfile for demo RUN evil, rendered by dlbox")


def test_fill_requires_every_hole() -> None:
    assert fill("x={{ a }} y={{b}}", {"a": 1, "b": "two"}) == "x=1 y=two"
    with pytest.raises(KeyError):
        fill("{{missing}}", {})


def test_render_lock_requirements_sorted_with_header() -> None:
    text = render_lock_requirements(("Rich==13.7.1", "numpy==2.1.0", "attrs==24.2.0"),
                                    "line one\nline two")
    assert text == ("# line one\n# line two\nattrs==24.2.0\nnumpy==2.1.0\nRich==13.7.1\n")
    assert render_lock_requirements(()) == "\n"


def test_default_tag() -> None:
    assert default_tag("dlbox", TORCH_CPU) == "dlbox:cpu"
    assert default_tag("dlbox", TORCH_CU126) == "dlbox:cu126"
    assert default_tag("proj", TF_AND_CUDA) == "proj:tensorflow-and-cuda"
    assert default_tag("proj", JAX_CUDA12) == "proj:jax-cuda12"
    assert SPECS["jax-gpu"].device == "gpu" and SPECS["jax-cpu"].device == "cpu"


def test_apt_packages_install_in_the_system_stage_before_the_venv() -> None:
    text = render_dockerfile(make_spec(TORCH_CPU, system_packages=("build-essential", "git")))
    install = text.index("apt-get install -y --no-install-recommends \\\n        "
                         "build-essential git")
    # In the system stage, so the lock's resolution, the deps stage and the image all have
    # them (a compiler for pip, git for a VCS requirement, a library at run time).
    assert text.index("AS system") < install < text.index("AS venv")
    assert "apt-get install -y --no-install-recommends \\\n        build" not in \
        render_dockerfile(make_spec(TORCH_CPU))
