"""The pure half of `dlbox image build`: project detection, target, framework build, spec.

The resolver's answers below are checked against the shipped matrix
(src/dlbox/hostenv/matrix/torch.json and cuda.json); each test says why the answer is right.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from dlbox.container import build as B
from dlbox.container import framework as F
from dlbox.container import pins as PN
from dlbox.container import spec as S
from dlbox.container import tags as T
from dlbox.container.lock import LockEntry
from dlbox.container.project import (
    DEFAULT_BUILD_REQUIRES,
    Project,
    detect_framework,
    detect_project,
    read_requirements_file,
)
from dlbox.errors import ContainerError, HostEnvError, UsageError
from dlbox.hostenv.facts import DockerFacts, GpuFacts, HostFacts, NvidiaFacts
from dlbox.hostenv.matrix import load_matrix
from dlbox.hostenv.resolve import Target


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def gpu_host(driver: str = "560.35.03", *caps: str) -> HostFacts:
    gpus = tuple(GpuFacts(index=i, name=f"GPU {i}", compute_capability=cc)
                 for i, cc in enumerate(caps or ("8.6",)))
    return HostFacts(nvidia=NvidiaFacts(source="nvml", driver_version=driver, gpus=gpus),
                     docker=DockerFacts(reachable=True, runtimes=("nvidia", "runc")))


CPU_HOST = HostFacts()


def no_probe() -> HostFacts:
    raise AssertionError("this request must not probe the host")


# ---- project detection ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["requirements.txt", "pyproject.toml"])
@pytest.mark.parametrize("kind", ["dangling link", "folder"])
def test_a_project_file_that_is_not_a_file_is_named(tmp_path: Path, name: str,
                                                   kind: str) -> None:
    """Found by review: a requirements.txt that was a link to nothing, or a folder, read as
    "has neither requirements.txt nor pyproject.toml" with the hint to add one."""
    path = tmp_path / name
    if kind == "folder":
        path.mkdir()
    else:
        path.symlink_to(tmp_path / "moved-away.txt")
    with pytest.raises(UsageError) as caught:
        detect_project(tmp_path)
    if kind == "folder":
        assert caught.value.message == f"{path} is a folder, not a file"
        assert caught.value.hint == f"{name} must be a file; rename the folder"
    else:
        assert caught.value.message == (f"{path} is a link to nothing "
                                        f"({tmp_path / 'moved-away.txt'})")
        assert caught.value.hint == f"point it at the real {name}, or replace it with the file"


@pytest.mark.parametrize("code, included, hint", [
    (errno.EACCES, False, "make it readable (`chmod a+r {path}`)"),
    (errno.EACCES, True, "make it readable (`chmod a+r {path}`)"),
    (errno.ENOENT, True, "check the -r include path in your requirements file"),
    (errno.EISDIR, True, "requirements.txt must be a file; rename the folder"),
])
def test_an_unreadable_requirements_file_gets_the_fix_for_its_reason(
        tmp_path: Path, code: int, included: bool, hint: str) -> None:
    """Found by review: a top-level requirements.txt that may not be read was told to "check
    the -r include path", the hint for a broken include."""
    from dlbox.container.project import unreadable_project_file

    path = tmp_path / "requirements.txt"
    error = unreadable_project_file(path, OSError(code, os.strerror(code)), included=included)
    assert error.message == f"cannot read {path}: {os.strerror(code)}"
    assert error.hint == hint.format(path=path)


def test_a_missing_include_says_to_check_its_path(tmp_path: Path) -> None:
    write(tmp_path / "requirements.txt", "-r base.txt\n")
    with pytest.raises(UsageError) as caught:
        detect_project(tmp_path)
    assert caught.value.message == f"cannot read {tmp_path / 'base.txt'}: No such file or directory"
    assert caught.value.hint == "check the -r include path in your requirements file"


def test_requirements_txt_project(tmp_path: Path) -> None:
    root = tmp_path / "My_Proj"
    write(root / "requirements.txt",
          "# deps\nNumPy>=1.24  # inline comment\n--extra-index-url https://extra.example/simple\n"
          "torch==2.5.1 \\\n    --hash=sha256:abc\nrich\n.\n-r more.txt\n")
    write(root / "more.txt", "Pillow_SIMD>=9\n--pre\n")
    project = detect_project(root)
    assert project.kind == "requirements" and project.name == "My_Proj"
    assert project.image_name == "my_proj"
    assert project.requirements == ("numpy>=1.24", "pillow-simd>=9", "rich", "torch==2.5.1")
    assert project.pip_options == ("--extra-index-url=https://extra.example/simple", "--pre")
    assert not project.installable and project.build_requirements == ()
    assert project.include is None and project.command == ("python3",)
    assert detect_framework(project.requirements) == "torch"


def test_pyproject_project(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", """
[build-system]
requires = ["hatchling>=1.20"]
build-backend = "hatchling.build"

[project]
name = "vision_kit"
version = "1.2.3"
requires-python = ">=3.10"
dependencies = ["tensorflow>=2.15", "numpy"]

[project.optional-dependencies]
plot = ["matplotlib>=3.8"]
all = ["vision_kit[plot]", "rich"]
""")
    project = detect_project(tmp_path)
    assert (project.kind, project.name, project.version) == ("pyproject", "vision_kit", "1.2.3")
    assert project.installable and project.build_requirements == ("hatchling>=1.20",)
    assert project.requires_python == ">=3.10"
    assert project.requirements == ("numpy", "tensorflow>=2.15")
    assert detect_framework(project.requirements) == "tensorflow"
    assert project.input_requirements() == ("hatchling>=1.20", "numpy", "tensorflow>=2.15")
    extras = detect_project(tmp_path, extras=("all",))
    assert extras.requirements == ("matplotlib>=3.8", "numpy", "rich", "tensorflow>=2.15")
    with pytest.raises(UsageError, match="no extra 'gpu'"):
        detect_project(tmp_path, extras=("gpu",))


def test_pyproject_and_requirements_together(tmp_path: Path) -> None:
    # [project] without [build-system]: pip's PEP 517 fallback (setuptools) builds it.
    write(tmp_path / "pyproject.toml",
          '[project]\nname = "p"\nversion = "1"\ndependencies = ["jax"]\n')
    write(tmp_path / "requirements.txt", "rich==13.7.1\n-e .\n")
    project = detect_project(tmp_path)
    assert project.kind == "pyproject"
    assert project.requirements == ("jax", "rich==13.7.1")
    assert project.build_requirements == tuple(sorted(DEFAULT_BUILD_REQUIRES))
    assert detect_framework(project.requirements) == "jax"


def test_framework_detection() -> None:
    assert detect_framework(("numpy",)) is None
    assert detect_framework(("tensorflow-cpu==2.15.0",)) == "tensorflow"
    assert detect_framework(("jaxlib",)) == "jax"
    assert detect_framework(("jax", "torch")) == "torch"  # torch first


def test_folder_with_neither_file_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "train.py", "print(1)\n")
    with pytest.raises(UsageError) as info:
        detect_project(tmp_path)
    assert "neither requirements.txt nor pyproject.toml" in info.value.message
    assert "requirements.txt" in (info.value.hint or "")
    with pytest.raises(UsageError, match="does not exist"):
        detect_project(tmp_path / "missing")


@pytest.mark.parametrize("line, words", [
    ("-c constraints.txt", "constraints files"),
    ("-e ../other", "editable install"),
    ("--find-links ./wheels", "--wheelhouse"),
    ("../lib", "local path requirement"),
    ("numpy>>1", "not a valid requirement"),
    ("--no-deps", "not supported"),
    ("-r", "needs a file name"),
    ("-r nope.txt", "cannot read"),
])
def test_requirement_lines_dlbox_cannot_ship(tmp_path: Path, line: str, words: str) -> None:
    write(tmp_path / "requirements.txt", f"rich\n{line}\n")
    with pytest.raises(UsageError) as info:
        detect_project(tmp_path)
    assert words in info.value.message + (info.value.hint or "")
    assert "\n" not in info.value.message  # one line (packaging's own error adds a caret line)
    if "cannot read" not in words:
        assert "requirements.txt:2" in info.value.message  # names the line


@pytest.mark.parametrize("line, shown", [
    ("--index-url https://user:token@pypi.example/simple",
     "--index-url https://***@pypi.example/simple"),
    ("--index-url=https://user:token@pypi.example/simple",
     "--index-url=https://***@pypi.example/simple"),
    ("-i https://ghp_token@pypi.example/simple", "-i https://***@pypi.example/simple"),
    ("--extra-index-url https://user:p%40ss@pypi.example/simple",
     "--extra-index-url https://***@pypi.example/simple"),
    ("--find-links https://user:p@ss@files.example/wheels",  # an @ in the password
     "--find-links https://***@files.example/wheels"),
    ("mypkg @ https://user:pw@host.example/mypkg-1.0-py3-none-any.whl",
     "mypkg @ https://***@host.example/mypkg-1.0-py3-none-any.whl"),
    ("mypkg @ git+https://token@git.example/org/mypkg.git@v1",
     "mypkg @ git+https://***@git.example/org/mypkg.git@v1"),
])
def test_urls_with_credentials_are_refused(tmp_path: Path, line: str, shown: str) -> None:
    write(tmp_path / "requirements.txt", f"rich\n{line}\n")
    with pytest.raises(UsageError) as info:
        detect_project(tmp_path)
    message = info.value.message
    assert message == (f"requirements.txt:2: {shown!r} has credentials in a URL, and dlbox "
                       "never bakes secrets into an image")
    assert "token" not in message and "pw@" not in message and "ss@" not in message
    assert "remove the credentials" in (info.value.hint or "")
    assert "--wheelhouse DIR" in (info.value.hint or "")
    assert "pip download" in (info.value.hint or "")
    # Before anything is built: the dry run (and so the build) stops at the project.
    with pytest.raises(UsageError, match="credentials"):
        B.dry_run(B.BuildRequest(project_dir=tmp_path, device="cpu"), facts=no_probe)


def test_urls_without_credentials_pass(tmp_path: Path) -> None:
    write(tmp_path / "requirements.txt",
          "--index-url https://pypi.example/simple\n"
          "mypkg @ https://host.example/mypkg-1.0-py3-none-any.whl#sha256=ab\n"
          "other @ git+ssh://git@git.example/org/other.git@v1\n")  # a login, not a secret
    project = detect_project(tmp_path)
    assert project.pip_options == ("--index-url=https://pypi.example/simple",)
    assert len(project.requirements) == 2


def test_credentials_in_an_included_file_and_in_pyproject(tmp_path: Path) -> None:
    write(tmp_path / "requirements.txt", "rich\n-r private.txt\n")
    write(tmp_path / "private.txt", "# private index\n\n"
          "--extra-index-url https://u:hunter2@pypi.example/simple\n")
    with pytest.raises(UsageError, match=r"^private\.txt:3: ") as info:
        detect_project(tmp_path)
    assert "hunter2" not in info.value.message
    other = tmp_path / "pyproject-project"
    write(other / "pyproject.toml", '[project]\nname = "p"\ndependencies = [\n  "rich",\n'
          '  "mypkg @ https://u:hunter2@host.example/mypkg-1.0-py3-none-any.whl",\n]\n')
    with pytest.raises(UsageError, match=r"^pyproject\.toml:5: ") as info:
        detect_project(other)
    assert "hunter2" not in info.value.message
    # An unparsable line does not show them either.
    write(tmp_path / "private.txt", "https://u:hunter2@host.example/x.whl\n")
    with pytest.raises(UsageError) as info:
        detect_project(tmp_path)
    assert "hunter2" not in info.value.message and "private.txt:1" in info.value.message


def test_build_args_with_credentials_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # The engine keeps its predefined proxy args out of the image's history: those may carry
    # a proxy's login; any other build arg may not.
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy.example:3128")
    request = B.BuildRequest(buildargs=(("PIP_INDEX_URL", "https://user:pw@pypi.example/s"),))
    with pytest.raises(UsageError) as info:
        B._buildargs(request)
    assert info.value.message == ("build arg PIP_INDEX_URL=https://***@pypi.example/s has "
                                  "credentials in a URL, and dlbox never bakes secrets into "
                                  "an image")
    args = B._buildargs(B.BuildRequest(buildargs=(("PIP_INDEX_URL", "https://pypi.example/s"),
                                                  ("http_proxy", "http://u:p@proxy:3128"))))
    assert args["HTTPS_PROXY"] == "http://user:pw@proxy.example:3128"
    assert args["PIP_INDEX_URL"] == "https://pypi.example/s"
    # Refused by the plan, before any engine is asked (and in a dry run).
    with pytest.raises(UsageError, match="build arg PIP_INDEX_URL"):
        B.plan(request, facts=lambda: (_ for _ in ()).throw(AssertionError("probed")))


def test_requirements_include_cycle_is_harmless(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "rich\n-r b.txt\n")
    write(tmp_path / "b.txt", "numpy\n-r a.txt\n")
    assert read_requirements_file(tmp_path / "a.txt", tmp_path) == (["rich", "numpy"], [])


def test_dynamic_dependencies_need_requirements_txt(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "p"\ndynamic = ["dependencies"]\n')
    with pytest.raises(UsageError, match="dynamic") as info:
        detect_project(tmp_path)
    assert "requirements.txt" in (info.value.hint or "")


def test_builtin_project_is_dlbox_checkout() -> None:
    project = detect_project(None)
    assert project.kind == "builtin" and project.name == "dlbox"
    assert project.include == ("pyproject.toml", "README.md", "LICENSE", "src", "notebooks")
    assert project.command == ("dlbox", "--help") and project.installable


# ---- choosing the target -----------------------------------------------------------------

def test_cpu_request_never_probes() -> None:
    assert B.choose_target(B.BuildRequest(device="cpu"), facts=no_probe) == Target(cpu=True)
    with pytest.raises(UsageError, match="--cpu cannot be combined"):
        B.choose_target(B.BuildRequest(device="cpu", driver="535.104.05"), facts=no_probe)


def test_explicit_driver_never_probes() -> None:
    request = B.BuildRequest(device="gpu", driver="535.104.05", compute_capabilities=("8.6",),
                             cuda="12.6")
    assert B.choose_target(request, facts=no_probe) == Target(
        driver="535.104.05", compute_capabilities=("8.6",), cuda="12.6")


def test_auto_follows_the_host() -> None:
    host = gpu_host("560.35.03", "8.6", "8.6", "7.5")
    target = B.choose_target(B.BuildRequest(), facts=lambda: host)
    assert target == Target(driver="560.35.03", compute_capabilities=("8.6", "7.5"),
                            listed=True)
    assert B.choose_target(B.BuildRequest(), facts=lambda: CPU_HOST) == Target(cpu=True)


@pytest.mark.parametrize("driver", ["540.4.0", "1005.23.01"])
def test_a_probed_driver_is_not_checked_as_a_typed_one(driver: str) -> None:
    """Found by review: `--gpu --compute-capability X` on a GPU host checked the driver
    nvidia-smi printed as if the user had typed it: a Jetson's 540.4.0 was refused with
    "pass it as nvidia-smi prints it", though no --driver was given."""
    from dlbox.hostenv.resolve import normalize_target

    request = B.BuildRequest(device="gpu", compute_capabilities=("8.7",))
    target = B.choose_target(request, facts=lambda: gpu_host(driver, "8.7"))
    assert normalize_target(target).driver == driver
    with pytest.raises(UsageError, match="is not a version number"):  # typed: checked
        normalize_target(B.choose_target(dataclasses.replace(request, driver="1005.23.01"),
                                         facts=no_probe))


def test_a_broken_driver_is_named_not_built_around() -> None:
    """Found by review: a GPU host whose driver failed (NVML mismatch after an upgrade,
    before the reboot) got a CPU image from the default --auto without a word, and --gpu
    said the machine had no driver."""
    host = gpu_host("560.35.03", "8.6")
    broken = HostFacts(nvidia=NvidiaFacts(driver_version="535.104.05", gpus=host.nvidia.gpus,
                                          error="Driver/library version mismatch"))
    for device in ("auto", "gpu"):
        with pytest.raises(HostEnvError) as info:
            B.choose_target(B.BuildRequest(device=device), facts=lambda: broken)
        assert info.value.message.startswith("the NVIDIA driver on this host is not working "
                                              "(Driver/library version mismatch)")
        assert info.value.hint == ("fix the driver (`dlbox doctor` says how); or choose the "
                                   "image: --cpu, or --driver VERSION for the GPU machine that "
                                   "will run it")
    assert B.choose_target(B.BuildRequest(device="cpu"), facts=lambda: broken).cpu
    given = B.choose_target(B.BuildRequest(driver="560.35.03", compute_capabilities=("8.6",)),
                            facts=lambda: broken)
    assert given.driver == "560.35.03"  # a given target needs no probe


def test_gpu_request_on_a_host_without_gpu() -> None:
    with pytest.raises(UsageError) as info:
        B.choose_target(B.BuildRequest(device="gpu"), facts=lambda: CPU_HOST)
    assert "--driver" in (info.value.hint or "")
    with pytest.raises(UsageError, match="need a GPU target"):
        B.choose_target(B.BuildRequest(cuda="12.6"), facts=lambda: CPU_HOST)
    with pytest.raises(UsageError, match="unknown device"):
        B.choose_target(B.BuildRequest(device="tpu"), facts=no_probe)


# ---- which framework build ---------------------------------------------------------------

def target_for(**request: object) -> Target:
    return B.choose_target(B.BuildRequest(**request), facts=no_probe)  # type: ignore[arg-type]


def test_driver_535_ampere_gets_cu126() -> None:
    # Driver 535.104.05 is CUDA 12.2's driver. CUDA 12.x wheels run on any driver >= 525.60.13
    # (minor-version compatibility, cuda.json), CUDA 13.x needs >= 580. The newest release,
    # torch 2.15, ships cu132/cu130 only; torch 2.14 ships cu126 too, and its arch set
    # (maxwell_hopper) holds sm_86. So: torch 2.14.1 cu126, not an older cu121/cu118 build.
    build = F.resolve_framework("torch", target_for(device="gpu", driver="535.104.05",
                                                    compute_capabilities=("8.6",)))
    assert (build.version, build.variant, build.cuda) == ("2.14.1", "cu126", "12.6")
    assert build.min_driver == "525.60.13"
    assert build.wheel_index == "https://download.pytorch.org/whl/cu126"
    assert any("cu130: driver 535.104.05 < 580" in reason for reason in build.reasons)
    assert F.framework_requirement(build) == ("torch==2.14.1+cu126",)


def test_driver_580_hopper_gets_the_newest_release() -> None:
    # 580.65.06 is CUDA 13.0's GA driver: torch 2.15.0 (the newest row) cu130 runs without
    # caveats. cu132 would run under minor-version compatibility too (13.x >= 580), but its GA
    # driver is 595.45.04, so the resolver prefers the CUDA whose GA driver the host meets.
    # sm_90 is in cu130's arch set (turing_blackwell_ptx).
    newest = load_matrix().torch[0].latest
    build = F.resolve_framework("torch", target_for(device="gpu", driver="580.65.06",
                                                    compute_capabilities=("9.0",)))
    assert build.version == newest == "2.15.0"
    assert (build.variant, build.cuda, build.min_driver) == ("cu130", "13.0", "580")
    assert build.ga_driver == "580.65.06"


def test_driver_470_k80_gets_an_old_cu118_build() -> None:
    # 470.x predates CUDA 12 (needs >= 525.60.13), so only CUDA 11.x builds can run (>=
    # 450.80.02). The K80 is sm_37; of the torch arch sets only "cu118" (and "cu117_2.0")
    # still list 3.7, and of those only builds with a cuDNN before 8.9 (which needs sm_50) run
    # convolutions on Kepler: torch 2.3.1 (cuDNN 8.7), not 2.7.1 (cuDNN 9.1).
    build = F.resolve_framework("torch", target_for(device="gpu", driver="470.82.01",
                                                    compute_capabilities=("3.7",)))
    assert (build.version, build.variant, build.cuda) == ("2.3.1", "cu118", "11.8")
    assert build.min_driver == "450.80.02"
    assert any("newer torch 2.15.0 has no build" in reason for reason in build.reasons)
    # jax has no CUDA 11 plugin left in the matrix: an error naming the driver, not a guess.
    with pytest.raises(HostEnvError) as info:
        F.resolve_framework("jax", target_for(device="gpu", driver="470.82.01",
                                              compute_capabilities=("3.7",)))
    assert "470.82.01" in info.value.message and "--cpu" in (info.value.hint or "")


def test_driver_older_than_every_build_is_an_error() -> None:
    # 418.x is below CUDA 11's minimum 450.80.02, the lowest any torch variant needs.
    with pytest.raises(HostEnvError) as info:
        F.resolve_framework("torch", target_for(device="gpu", driver="418.67",
                                                compute_capabilities=("7.5",)))
    assert "older than every torch build" in info.value.message
    assert ">= 450.80.02" in (info.value.hint or "")


def test_cpu_target_gets_cpu_variants() -> None:
    target = target_for(device="cpu")
    torch = F.resolve_framework("torch", target)
    assert (torch.version, torch.variant, torch.cuda) == ("2.15.0", "cpu", None)
    assert torch.wheel_index == "https://download.pytorch.org/whl/cpu"
    assert F.framework_requirement(torch) == ("torch==2.15.0+cpu",)
    tf = F.resolve_framework("tensorflow", target)
    assert (tf.variant, F.framework_requirement(tf)) == ("cpu", ("tensorflow-cpu==2.21.0",))
    jax = F.resolve_framework("jax", target)
    assert (jax.variant, F.framework_requirement(jax)) == ("cpu", ("jax[cpu]==0.10.2",))


def test_pinned_framework_version() -> None:
    # torch 2.1 ships cu121 and cu118; driver 535 meets 12.1's GA driver (530.30.02).
    target = target_for(device="gpu", driver="535.104.05", compute_capabilities=("8.6",))
    build = F.resolve_framework("torch", target, version="2.1.2")
    assert (build.version, build.variant) == ("2.1.2", "cu121")
    assert F.framework_requirement(build) == ("torch==2.1.2+cu121",)
    assert build.reasons[-1] == "torch 2.1.2 requested"
    with pytest.raises(UsageError, match="not in dlbox's compatibility matrix"):
        F.resolve_framework("torch", target, version="1.0")


def test_a_patch_the_matrix_does_not_list_is_refused_for_an_old_release() -> None:
    # torch 2.1 ended at 2.1.2: 2.1.9 never existed, and pip would fail late inside the build.
    cpu = target_for(device="cpu")
    with pytest.raises(UsageError, match="torch 2.1.9 is not a torch release") as caught:
        F.resolve_framework("torch", cpu, version="2.1.9")
    assert "2.1.0, 2.1.1, 2.1.2" in (caught.value.hint or "")
    for junk in ("abc", "2", "2.x", "2.1.0.0.0"):
        with pytest.raises(UsageError):
            F.resolve_framework("torch", cpu, version=junk)
    # The newest release may have a patch newer than dlbox's data: allowed.
    newest = max(load_matrix().torch, key=lambda row: tuple(map(int, row.release.split("."))))
    later = f"{newest.release}.9"
    assert F.resolve_framework("torch", cpu, version=later).version == later


def test_a_framework_release_without_the_base_images_python_names_base_image() -> None:
    target = dataclasses.replace(target_for(device="cpu"), python="3.11")
    with pytest.raises(HostEnvError, match="tensorflow 2.3 does not support Python 3.11") \
            as caught:
        F.resolve_framework("tensorflow", target, version="2.3")
    hint = caught.value.hint or ""
    assert "--base-image" in hint and "3.8" in hint and "--python" not in hint


@pytest.mark.parametrize("field, flag, value", [
    ("framework_version", "--framework-version", " "), ("driver", "--driver", " "),
    ("cuda", "--cuda", " "), ("base_image", "--base-image", " "),
    # these two read "PROJECT has no extra ''" and "compute capability '' is not of the form
    # MAJOR.MINOR"
    ("extras", "--extras", ("",)), ("compute_capabilities", "--compute-capability", ("",))])
def test_empty_values_are_refused(field: str, flag: str, value: object) -> None:
    request = B.BuildRequest(device="gpu", **{field: value})
    with pytest.raises(UsageError, match=f"{flag} is empty") as caught:
        B.plan(request, no_probe)
    what = {"--extras": "an extra's name",
            "--compute-capability": "a value such as 8.6"}.get(flag, "a value")
    assert caught.value.hint == f"give {what}, or leave {flag} out"


def test_the_librarys_request_gets_the_clis_checks(tmp_path: Path) -> None:
    """Found by review: only the CLI refused --offline without --wheelhouse and paths that
    do not exist, so a dry run (or build) called from Python with offline=True and no
    wheelhouse gave a Dockerfile of `pip install --no-index` with no wheels to install."""
    project = write(tmp_path / "proj" / "requirements.txt", "numpy\n").parent
    cases = [
        (dict(offline=True), "--offline needs --wheelhouse DIR", "pass the folder of wheels"),
        (dict(wheelhouse=tmp_path / "nowhere"), f"--wheelhouse {tmp_path / 'nowhere'} does "
         "not exist", "pass an existing folder"),
        (dict(ca_cert=tmp_path / "no.crt"), f"--ca-cert {tmp_path / 'no.crt'} does not exist",
         "pass an existing file"),
    ]
    for values, message, hint in cases:
        request = B.BuildRequest(project_dir=project, device="cpu", **values)  # type: ignore[arg-type]
        for call in (B.dry_run, B.build_image):
            with pytest.raises(UsageError) as info:
                call(request, facts=no_probe)  # type: ignore[operator]
            assert (info.value.message, info.value.hint) == (message, hint)
    assert sorted(p.name for p in project.iterdir()) == ["requirements.txt"]


def test_a_build_in_a_removed_current_folder_is_told_so(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: plan() read the current folder (for the built-in project's note) and
    raised a bare FileNotFoundError in a shell whose folder was removed."""
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    with pytest.raises(UsageError) as info:
        B.dry_run(B.BuildRequest(device="cpu"), no_probe)
    assert info.value.message == "the current folder no longer exists (it was removed or moved)"
    assert info.value.hint == "cd to a folder that exists and run the command again"


def test_request_values_are_checked_before_a_dry_run(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--tag 'My Image' is not a valid image name"):
        B.dry_run(B.BuildRequest(device="cpu", tag="My Image"), no_probe)
    not_pem = write(tmp_path / "proxy.crt", "not a certificate\n")
    with pytest.raises(UsageError, match="holds no PEM certificate"):
        B.dry_run(B.BuildRequest(device="cpu", ca_cert=not_pem), no_probe)
    with pytest.raises(UsageError, match="is a folder"):
        B.dry_run(B.BuildRequest(device="cpu", ca_cert=tmp_path), no_probe)
    # review: 2.5.1+cu118 built 2.5.1+cu124 without a word ("torch 2.5.1+cu118 requested")
    project = write(tmp_path / "proj" / "requirements.txt", "torch\n").parent
    with pytest.raises(UsageError) as info:
        B.dry_run(B.BuildRequest(project_dir=project, device="gpu", driver="550.54.14",
                                 compute_capabilities=("8.6",),
                                 framework_version="2.5.1+cu118"), no_probe)
    assert info.value.hint == "pass --framework-version 2.5.1 with --cuda 11.8"
    # spaces around it are dropped, as doctor --resolve drops them (review: refused here only)
    from dlbox.cli import build_parser
    from dlbox.cli.image import _build_request

    args = build_parser().parse_args(["image", "build", str(project), "--cpu",
                                      "--framework-version", " 2.5 "])
    assert _build_request(args).framework_version == "2.5"


def test_a_project_dir_that_is_a_file(tmp_path: Path) -> None:
    path = write(tmp_path / "requirements.txt", "numpy\n")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        detect_project(path)


def test_image_names_from_odd_project_names_are_valid(tmp_path: Path) -> None:
    for name in ("My_Proj", "a..b", "x__-y", "__"):
        project = dataclasses.replace(detect_project(None), name=name)
        assert S.check_tag(project.image_name + ":cpu")


def test_release_version_means_its_newest_known_patch() -> None:
    # `--framework-version 2.1` is torch 2.1's newest patch in the matrix (2.1.2), not pip's
    # ==2.1 (which is 2.1.0); a patch version stays exact.
    target = target_for(device="gpu", driver="535.104.05", compute_capabilities=("8.6",))
    build = F.resolve_framework("torch", target, version="2.1")
    assert (build.version, build.variant) == ("2.1.2", "cu121")
    assert F.framework_requirement(build) == ("torch==2.1.2+cu121",)
    assert build.reasons[-1] == "torch 2.1 requested"
    exact = F.resolve_framework("torch", target, version="2.1.0")
    assert F.framework_requirement(exact) == ("torch==2.1.0+cu121",)
    cpu = target_for(device="cpu")
    tf = F.resolve_framework("tensorflow", cpu, version="2.16")
    assert F.framework_requirement(tf) == ("tensorflow-cpu==2.16.2",)
    jax = F.resolve_framework("jax", cpu, version="0.4")
    assert F.framework_requirement(jax) == ("jax[cpu]==0.4.38",)


def test_wheelhouse_build_wins_when_the_target_runs_it(tmp_path: Path) -> None:
    house = tmp_path / "wheels"
    for name in ("torch-2.5.1+cpu-cp311-cp311-linux_x86_64.whl",
                 "torch-2.6.0+cu126-cp311-cp311-linux_x86_64.whl",  # a GPU wheel: no use
                 "torch-2.7.0-cp312-cp312-linux_x86_64.whl"):  # other Python
        write(house / name, "")
    from dlbox.container.context import scan_wheelhouse

    wheels = scan_wheelhouse(house)
    target = dataclasses.replace(target_for(device="cpu"), python="3.11")
    build = F.resolve_framework("torch", target, wheels)
    assert (build.version, build.variant) == ("2.5.1", "cpu")
    assert build.reasons[-1] == ("torch 2.5.1+cpu is in the wheelhouse: used instead of the "
                                 "newest release 2.15.0, so the build needs no download of it")
    assert not any("requested" in reason for reason in build.reasons)
    # Nothing usable in it: the newest release.
    assert F.resolve_framework("torch", target, wheels[1:]).version == "2.15.0"
    # Found by review: the newest release itself in the wheelhouse was "used instead of the
    # newest release 2.15.0", the same version named twice.
    write(house / "torch-2.15.0+cpu-cp311-cp311-linux_x86_64.whl", "")
    newest = F.resolve_framework("torch", target, scan_wheelhouse(house))
    assert newest.reasons[-1] == ("torch 2.15.0+cpu is in the wheelhouse: used, so the build "
                                  "needs no download of it")


def test_a_wheelhouse_build_keeps_the_resolvers_reasons(tmp_path: Path) -> None:
    """Found by review: the wheelhouse's build dropped every reason with "requested" in it,
    to leave out its own "torch 2.14.1 requested" (the version came from the wheelhouse, not
    the user), and so lost the resolver's "CUDA 12.6 was requested" too, in dlbox.lock and
    the dry run's `why:` lines."""
    from dlbox.container.context import scan_wheelhouse

    target = dataclasses.replace(target_for(device="gpu", driver="560.35.03", cuda="12.6",
                                            compute_capabilities=("8.6",)), python="3.11")
    plain = F.resolve_framework("torch", target)
    assert "CUDA 12.6 was requested" in plain.reasons
    write(tmp_path / f"torch-{plain.version}+cu126-cp311-cp311-manylinux_2_28_x86_64.whl", "")
    project = Project(root=tmp_path, name="demo", version=None, kind="requirements",
                      requirements=(f"torch=={plain.version}",), build_requirements=(),
                      installable=False, requires_python=None, pip_options=(), include=None)
    for pins in ((), F.project_pins(project, "torch")):
        used = F.resolve_framework("torch", target, scan_wheelhouse(tmp_path), pins=pins)
        assert (used.version, used.variant) == (plain.version, "cu126")
        assert "is in the wheelhouse" in used.reasons[-1]
        assert "CUDA 12.6 was requested" in used.reasons
        assert f"torch {plain.version} requested" not in used.reasons  # not the user's ask


def test_default_base_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(S.BASE_IMAGE_ENV, raising=False)
    cpu = F.resolve_framework("torch", Target(cpu=True))
    assert F.default_base_image(cpu) == S.DEFAULT_BASE_IMAGE
    monkeypatch.setenv(S.BASE_IMAGE_ENV, "dlbox-base:test")
    assert F.default_base_image(cpu) == "dlbox-base:test"
    system = dataclasses.replace(cpu, variant="cuda-system", cuda="11.8", cudnn="8.6")
    assert F.default_base_image(system) == "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04"


# ---- merging requirements ----------------------------------------------------------------

def make_project(tmp_path: Path, requirements: tuple[str, ...],
                 build: tuple[str, ...] = (), **overrides: object) -> Project:
    values: dict[str, object] = dict(
        root=tmp_path, name="demo", version=None, kind="requirements",
        requirements=requirements, build_requirements=build, installable=bool(build),
        requires_python=None, pip_options=(), include=None)
    values.update(overrides)
    return Project(**values)  # type: ignore[arg-type]


def test_check_project_allows(tmp_path: Path) -> None:
    project = make_project(tmp_path, ("numpy", "torch>=2.0,<2.6"))
    F.check_project_allows(project, "torch", "2.5.1+cu124")
    with pytest.raises(ContainerError) as info:
        F.check_project_allows(project, "torch", "2.15.0")
    assert "torch>=2.0,<2.6" in info.value.message
    assert "--framework-version" in (info.value.hint or "")
    # A line whose marker does not apply here, or without a version, does not restrict.
    loose = make_project(tmp_path, ('torch<2.0; python_version < "3"', "torch"))
    F.check_project_allows(loose, "torch", "2.15.0")
    # Another framework's pin is not this one's business; tensorflow-cpu counts for tensorflow.
    F.check_project_allows(project, "tensorflow", "2.21.0")
    tf = make_project(tmp_path, ("tensorflow-cpu==2.15.0",))
    with pytest.raises(ContainerError):
        F.check_project_allows(tf, "tensorflow", "2.21.0")


def test_requirements_input_replaces_the_framework_lines(tmp_path: Path) -> None:
    project = make_project(tmp_path, ("numpy>=1.24", "rich", "torch>=2.0"),
                           build=("setuptools>=40.8.0", "wheel"))
    assert F.requirements_input(project, "torch", ("torch==2.15.0+cpu",)) == (
        "numpy>=1.24", "rich", "setuptools>=40.8.0", "torch==2.15.0+cpu", "wheel")
    tf = make_project(tmp_path, ("tensorflow-gpu", "tensorflow>=2.10", "numpy"))
    assert F.requirements_input(tf, "tensorflow", ("tensorflow[and-cuda]==2.21.0",)) == (
        "numpy", "tensorflow[and-cuda]==2.21.0")
    jax = make_project(tmp_path, ("jax", "jaxlib==0.4.1", "optax"))
    assert F.requirements_input(jax, "jax", ("jax[cuda12]==0.10.2",)) == (
        "jax[cuda12]==0.10.2", "optax")


def test_split_pip_options_and_pip_args(tmp_path: Path) -> None:
    options = ("--index-url=https://mirror/simple", "--extra-index-url=https://a/simple",
               "--extra-index-url=https://download.pytorch.org/whl/cpu", "--pre",
               "--trusted-host=mirror")
    assert PN.split_pip_options(options) == (
        "https://mirror/simple",
        ("https://a/simple", "https://download.pytorch.org/whl/cpu"),
        ("--pre", "--trusted-host=mirror"))
    project = make_project(tmp_path, (), pip_options=options)
    assert PN.pip_args_for(project, "https://download.pytorch.org/whl/cpu", "/w", False) == (
        "--index-url=https://mirror/simple",
        "--extra-index-url=https://download.pytorch.org/whl/cpu",
        "--extra-index-url=https://a/simple",
        "--find-links=/w", "--pre", "--trusted-host=mirror")
    assert PN.pip_args_for(project, None, "/w", True) == (
        "--no-index", "--find-links=/w", "--pre", "--trusted-host=mirror")


# ---- the spec from a lock entry ----------------------------------------------------------

def entry_for(**overrides: object) -> LockEntry:
    values: dict[str, object] = dict(
        key="torch-gpu", framework="torch", framework_version="2.14.1+cu126", variant="cu126",
        cuda="12.6", cudnn="9.10", wheel_index="https://download.pytorch.org/whl/cu126",
        min_driver="525.60.13", python="3.11.2", base_image="python:3.11-slim-bookworm",
        base_id=None, project_requirements=("numpy",),
        project_pip_options=("--index-url=https://mirror/simple", "--pre"),
        requirements_in=(), pinned=("numpy==2.1.0", "torch==2.14.1+cu126"))
    values.update(overrides)
    return LockEntry(**values)  # type: ignore[arg-type]


def test_spec_for(tmp_path: Path) -> None:
    project = make_project(tmp_path, ("numpy",), build=("setuptools",), kind="pyproject",
                           version="1.0", command=("python3", "train.py"))
    entry = entry_for()
    spec = B.spec_for(project, entry, base_digest="sha256:abc", wheelhouse=True, ca_cert=True)
    assert spec.framework == S.FrameworkBuild(
        "torch", "2.14.1+cu126", "cu126", cuda="12.6", cudnn="9.10",
        wheel_index="https://download.pytorch.org/whl/cu126", min_driver="525.60.13")
    assert (spec.project_name, spec.project_kind, spec.project_version) == (
        "demo", "pyproject", "1.0")
    assert spec.install_project and spec.gpu and spec.wheelhouse and spec.ca_cert
    assert not spec.offline
    assert (spec.index_url, spec.extra_index_urls, spec.pip_flags) == (
        "https://mirror/simple", (), ("--pre",))
    assert spec.base_image == entry.base_image and spec.base_digest == "sha256:abc"
    assert spec.python == "3.11.2" and spec.lock_sha256 == entry.sha256()
    assert spec.command == ("python3", "train.py")
    text = B.lock_requirements_text(entry)
    assert text.splitlines()[-2:] == ["numpy==2.1.0", "torch==2.14.1+cu126"]
    assert text.startswith("# dlbox.lock torch-gpu: torch 2.14.1+cu126, Python 3.11.2")


# ---- plan and dry run (no engine, fake host) ---------------------------------------------

def test_dry_run_on_a_gpu_host_without_lock(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(S.BASE_IMAGE_ENV, raising=False)
    write(tmp_path / "requirements.txt", "torch>=2.0\nnumpy\n")
    calls: list[int] = []

    def facts() -> HostFacts:
        calls.append(1)
        return gpu_host("560.35.03", "8.6")

    dockerfile, notes = B.dry_run(B.BuildRequest(project_dir=tmp_path), facts=facts)
    assert calls  # auto: the host decided
    # 560.35.03 meets CUDA 12.6's GA driver (560.28.03) but not 13.x's minimum (580).
    assert 'dlbox.framework.version="2.14.1+cu126"' in dockerfile
    assert "NVIDIA_VISIBLE_DEVICES=all" in dockerfile
    assert "--extra-index-url=https://download.pytorch.org/whl/cu126" in dockerfile
    assert "FROM python:3.11-slim-bookworm AS system" in dockerfile
    assert "dlbox.python" not in dockerfile  # not known before the lock
    assert notes[0].startswith("torch 2.14.1+cu126 (cu126) for GPU")
    assert any("no torch-gpu entry in dlbox.lock yet" in note for note in notes)
    assert any(note.startswith("why: ") for note in notes)
    assert not (tmp_path / "dlbox.lock").exists()  # a dry run writes nothing


def test_the_build_shows_the_resolvers_warnings(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # `doctor --resolve` warned that 535 is below CUDA 12.6's GA driver (PTX JIT may fail
    # there); `image build` chose the same build and said nothing.
    monkeypatch.delenv(S.BASE_IMAGE_ENV, raising=False)
    write(tmp_path / "requirements.txt", "torch>=2.0\n")
    _, notes = B.dry_run(B.BuildRequest(project_dir=tmp_path),
                         facts=lambda: gpu_host("535.104.05", "8.6"))
    assert any(note.startswith("warning: driver 535.104.05 is below CUDA 12.6's GA driver")
               for note in notes), notes
    _, quiet = B.dry_run(B.BuildRequest(project_dir=tmp_path),
                         facts=lambda: gpu_host("560.35.03", "8.6"))
    assert not any("GA driver 560" in note and note.startswith("warning: ") for note in quiet)


def test_dry_run_cpu_tensorflow_project(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml",
          '[project]\nname = "tfp"\nversion = "0.1"\ndependencies = ["tensorflow>=2.15"]\n')
    dockerfile, notes = B.dry_run(B.BuildRequest(project_dir=tmp_path, device="cpu"),
                                  facts=no_probe)
    assert 'dlbox.framework="tensorflow"' in dockerfile
    assert 'dlbox.framework.variant="cpu"' in dockerfile
    assert "NVIDIA_" not in dockerfile
    assert "/tmp/dlbox-project" in dockerfile  # a [project] table is installed
    assert notes[0].startswith("tensorflow 2.21.0 (cpu) for CPU")


def test_dry_run_json_holds_the_notes_and_the_dockerfile(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from dlbox.cli import main

    write(tmp_path / "requirements.txt", "torch\nnumpy\n")
    assert main(["image", "build", str(tmp_path), "--cpu", "--dry-run", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["dry_run"] is True
    assert document["dockerfile"].startswith("# syntax=") or "FROM " in document["dockerfile"]
    assert any("for CPU" in note for note in document["notes"])
    assert not (tmp_path / "dlbox.lock").exists()


def test_dry_run_rejects_a_framework_pin_the_project_excludes(tmp_path: Path) -> None:
    write(tmp_path / "requirements.txt", "torch<2.0\n")
    with pytest.raises(ContainerError, match="the project requires torch<2.0"):
        B.dry_run(B.BuildRequest(project_dir=tmp_path, device="cpu"), facts=no_probe)


def test_a_release_the_projects_pin_rules_out_is_refused_before_the_lock_check(
        tmp_path: Path) -> None:
    """Review: with a lock, --framework-version 2.12 against the project's torch==2.13.0 was
    first told the lock no longer matches (hint: --relock), and the relock then met the real
    error, the project's own pin."""
    from dlbox.container.lock import write_lock

    write(tmp_path / "requirements.txt", "torch==2.13.0\n")
    write_lock(tmp_path / "dlbox.lock", {"torch-cpu": entry_for(
        key="torch-cpu", framework_version="2.13.0+cpu", variant="cpu", cuda=None, cudnn=None,
        wheel_index="https://download.pytorch.org/whl/cpu", min_driver=None,
        project_requirements=("torch==2.13.0",), project_pip_options=(),
        pinned=("torch==2.13.0+cpu",))})
    request = B.BuildRequest(project_dir=tmp_path, device="cpu", framework_version="2.12")
    with pytest.raises(ContainerError) as info:
        B.plan(request, facts=no_probe)
    assert info.value.message.startswith("the project requires torch==2.13.0, but ")
    assert "--relock" not in (info.value.hint or "")


def test_offline_with_apt_packages_does_not_promise_an_online_build_helps(
        tmp_path: Path) -> None:
    """Review: the hint said to build once online, but --offline with apt.txt is refused
    whatever the engine has cached."""
    write(tmp_path / "requirements.txt", "numpy\n")
    write(tmp_path / "apt.txt", "git\n")
    (tmp_path / "wheels").mkdir()  # --offline needs one
    with pytest.raises(UsageError) as info:
        B.plan(B.BuildRequest(project_dir=tmp_path, device="cpu", offline=True,
                              wheelhouse=tmp_path / "wheels"), no_probe)
    assert info.value.message == ("--offline, but apt.txt lists 1 Debian packages (git), which "
                                  "apt must download")
    assert info.value.hint == ("leave --offline out: apt needs the network for apt.txt's "
                               "packages; or drop them from apt.txt")


def test_a_release_asked_for_takes_the_patch_the_project_pins(tmp_path: Path) -> None:
    # torch 2.1 has 2.1.0, 2.1.1 and 2.1.2: "2.1" alone means 2.1.2, but a project pinning
    # an older patch gets that one instead of a clash with its own pin.
    write(tmp_path / "requirements.txt", "torch==2.1.0\n")
    request = B.BuildRequest(project_dir=tmp_path, device="cpu", framework_version="2.1")
    assert B.plan(request, facts=no_probe).framework_version == "2.1.0"
    dockerfile, notes = B.dry_run(request, facts=no_probe)
    assert notes[0].startswith("torch 2.1.0+cpu (cpu) for CPU")
    write(tmp_path / "requirements.txt", "torch<2.1.2\n")
    assert B.plan(request, facts=no_probe).framework_version == "2.1.1"
    write(tmp_path / "requirements.txt", "numpy\n")  # no pin: the release's newest patch
    assert B.dry_run(request, facts=no_probe)[1][0].startswith("torch 2.1.2+cpu (cpu)")
    write(tmp_path / "requirements.txt", "torch>=2.0\n")  # admits it: the request stays 2.1
    assert B.plan(request, facts=no_probe).framework_version == "2.1"
    # A local label in the pin names a build, which dlbox picks for the target itself.
    write(tmp_path / "requirements.txt", "torch==2.1.0+cu118\n")
    assert B.plan(request, facts=no_probe).framework_version == "2.1.0"
    assert B.dry_run(request, facts=no_probe)[1][0].startswith("torch 2.1.0+cpu (cpu)")
    # A patch version is taken as given, and a release the pin rules out still clashes.
    write(tmp_path / "requirements.txt", "torch==2.1.0\n")
    with pytest.raises(ContainerError, match="the project requires torch==2.1.0"):
        B.dry_run(dataclasses.replace(request, framework_version="2.1.2"), facts=no_probe)
    with pytest.raises(ContainerError, match="the project requires torch==2.1.0"):
        B.dry_run(dataclasses.replace(request, framework_version="2.2"), facts=no_probe)


def test_a_pinned_project_without_the_asked_cuda_names_the_pins_cuda_builds(
        tmp_path: Path) -> None:
    """Found by review: a project pinning torch==2.13.0 built with --cuda 12.4 was told "no
    torch release in the matrix has a CUDA 12.4 build" (torch 2.4 to 2.6 have one, as its
    own hint went on to say). The pin's CUDA builds are named now."""
    write(tmp_path / "requirements.txt", "torch==2.13.0\n")
    request = B.BuildRequest(project_dir=tmp_path, device="gpu", driver="550.54.15",
                             cuda="12.4")
    with pytest.raises(ContainerError) as caught:
        B.dry_run(request, facts=no_probe)
    assert caught.value.message == (
        "the project requires torch==2.13.0, and no torch build of the versions it admits "
        "(2.13.0) runs on this target: torch 2.13.0 has no CUDA 12.4 build (its CUDA builds: "
        "12.6, 13.0, 13.2)")
    assert (caught.value.hint or "").startswith("pick one of those CUDA versions with --cuda")
    assert "require torch==2.6.0" in (caught.value.hint or "")


def test_plan_framework_choice(tmp_path: Path) -> None:
    write(tmp_path / "requirements.txt", "jax\n")
    assert B.plan(B.BuildRequest(project_dir=tmp_path, device="cpu"),
                  facts=no_probe).key == "jax-cpu"
    assert B.plan(B.BuildRequest(project_dir=tmp_path, device="cpu", framework="PyTorch"),
                  facts=no_probe).framework == "torch"
    with pytest.raises(UsageError, match="unknown framework"):
        B.plan(B.BuildRequest(project_dir=tmp_path, device="cpu", framework="mxnet"),
               facts=no_probe)
    write(tmp_path / "requirements.txt", "numpy\n")
    assert B.plan(B.BuildRequest(project_dir=tmp_path, device="cpu"),
                  facts=no_probe).framework == "torch"  # no framework named: torch


def test_gpu_attachable() -> None:
    assert B.gpu_attachable(gpu_host()) == (True, "")
    ok, why = B.gpu_attachable(CPU_HOST)
    assert not ok and why == "this host has no working NVIDIA driver"  # as image run says it


@pytest.mark.parametrize("tool", ["nvidia-container-cli", "nvidia-container-runtime-hook"])
def test_gpu_attachable_is_what_the_facts_say_as_for_image_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tool: str) -> None:
    """Found by review: the build's smoke test took a GPU as attachable when
    nvidia-container-cli was on PATH (which `docker run --gpus` cannot use without the
    toolkit's hook), where `image run --gpus` and doctor, from the same facts, said the
    engine has no NVIDIA runtime. The probe's facts decide, for all three."""
    from dlbox.container import engine
    from dlbox.container.run import check_gpus_available

    write(tmp_path / "bin" / tool, "#!/bin/sh\n").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    no_runtime = dataclasses.replace(gpu_host(), docker=DockerFacts(reachable=True,
                                                                    runtimes=("runc",)))
    assert not no_runtime.docker.gpu_capable
    ok, why = B.gpu_attachable(no_runtime)
    assert not ok and why == "the Docker engine has no NVIDIA runtime (NVIDIA Container Toolkit)"
    with pytest.raises(HostEnvError, match="no NVIDIA runtime"):
        check_gpus_available(engine.GpuRequest(count=-1), no_runtime)
    hook = dataclasses.replace(no_runtime, docker=dataclasses.replace(no_runtime.docker,
                                                                      nvidia_hook=True))
    assert B.gpu_attachable(hook) == (True, "")  # the probe found the hook: as image run
    check_gpus_available(engine.GpuRequest(count=-1), hook)
    # an engine the probe could not reach gives the smoke test no GPU
    gone = dataclasses.replace(hook, docker=DockerFacts(error="Docker engine not reachable"))
    assert B.gpu_attachable(gone) == (False, "Docker engine not reachable")


def test_the_current_folder_is_the_default_project_when_it_is_one(tmp_path: Path) -> None:
    from dlbox.container.project import default_project_dir

    assert default_project_dir(tmp_path) is None  # no project here: the built-in one
    write(tmp_path / "notes.txt", "x\n")
    assert default_project_dir(tmp_path) is None
    for marker in ("requirements.txt", "pyproject.toml", "setup.py"):
        folder = tmp_path / marker.replace(".", "_")
        write(folder / marker, "\n")
        assert default_project_dir(folder) == folder


# ---- a project that pins its framework ---------------------------------------------------

@pytest.mark.parametrize("line, version", [
    ("torch==2.12.0", "2.12.0+cpu"),
    ("torch~=2.10.0", "2.10.0+cpu"),  # >=2.10.0, ==2.10.*
    ("torch==2.12.*", "2.12.1+cpu"),  # the release's newest patch
    ("torch>=2.14", "2.15.0+cpu"),
    ("torch>=2.9,<2.14", "2.13.0+cpu"),
    ("torch==2.15.3", "2.15.3+cpu"),  # the newest release may have a patch newer than the data
    ("tensorflow-cpu==2.15.0", "2.15.0"),
    ("jax<0.6", "0.5.3"),
])
def test_a_project_pin_gets_the_newest_version_it_admits(tmp_path: Path, line: str,
                                                         version: str) -> None:
    # Before, the newest release was chosen regardless, and the project's own pin refused it:
    # "the project requires torch==2.12.0, but the torch build for this target is 2.15.0".
    write(tmp_path / "requirements.txt", f"{line}\nnumpy\n")
    request = B.BuildRequest(project_dir=tmp_path, device="cpu",
                             base_image="dlbox-base:bookworm")
    dockerfile, notes = B.dry_run(request, facts=no_probe)
    assert f'dlbox.framework.version="{version}"' in dockerfile
    assert any(note.startswith("why: the project requires") for note in notes), notes


def test_a_wheelhouse_wheel_is_used_only_when_the_pins_admit_it(tmp_path: Path) -> None:
    house = tmp_path / "wheels"
    write(house / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl", "")
    project = tmp_path / "proj"

    def chosen(line: str) -> tuple[str, list[str]]:
        write(project / "requirements.txt", f"{line}\n")
        dockerfile, notes = B.dry_run(B.BuildRequest(project_dir=project, device="cpu",
                                                     wheelhouse=house), facts=no_probe)
        return dockerfile.split('dlbox.framework.version="', 1)[1].split('"', 1)[0], notes

    # The wheel's 2.13.0 won, and the project's torch>=2.14 then refused it.
    assert chosen("torch>=2.14")[0] == "2.15.0+cpu"
    assert chosen("torch==2.12.0")[0] == "2.12.0+cpu"
    version, notes = chosen("torch>=2.13,<2.14")
    assert version == "2.13.0+cpu"
    assert any("is in the wheelhouse" in note for note in notes)
    assert chosen("torch")[0] == "2.13.0+cpu"  # no pin: the wheel wins, as before


def test_a_pin_no_known_version_meets_names_the_pin_and_a_version(tmp_path: Path) -> None:
    write(tmp_path / "requirements.txt", "torch<2.0\n")
    request = B.BuildRequest(project_dir=tmp_path, device="cpu")
    with pytest.raises(ContainerError) as info:
        B.dry_run(request, facts=no_probe)
    assert info.value.message == ("the project requires torch<2.0, and no torch version dlbox "
                                  "knows meets it (it knows torch 2.0.0 to 2.15.0)")
    assert info.value.hint == ("require a version dlbox knows, e.g. torch==2.15.0 (the newest "
                               "this target runs)")
    # A patch that never existed: the release's real ones.
    write(tmp_path / "requirements.txt", "torch==2.1.9\n")
    with pytest.raises(ContainerError) as info:
        B.dry_run(request, facts=no_probe)
    assert "torch==2.1.9" in info.value.message
    assert info.value.hint == ("require a version dlbox knows, e.g. torch==2.1.2 (torch 2.1.0, "
                               "2.1.1, 2.1.2 exist)")


def test_a_pin_whose_versions_the_target_cannot_run(tmp_path: Path) -> None:
    # Driver 470 runs only CUDA 11.x builds; the newest torch with one (cu118) whose cuDNN
    # still runs on a K80 is 2.3.1.
    project = make_project(tmp_path, ("torch>=2.9",))
    pins = F.project_pins(project, "torch")
    target = target_for(device="gpu", driver="470.82.01", compute_capabilities=("3.7",))
    with pytest.raises(ContainerError) as info:
        F.resolve_framework("torch", target, pins=pins)
    message = info.value.message
    assert message.startswith("the project requires torch>=2.9, and no torch build of the "
                              "versions it admits (2.15.0, 2.14.1, 2.14.0, 2.13.0, ...) runs "
                              "on this target: ")
    assert "require torch==2.3.1 (the newest this target runs)" in (info.value.hint or "")
    # The base image's Python: no admitted release supports it.
    old = make_project(tmp_path, ("torch==2.0.1",))
    python = dataclasses.replace(target_for(device="cpu"), python="3.13")
    with pytest.raises(ContainerError) as info:
        F.resolve_framework("torch", python, pins=F.project_pins(old, "torch"))
    assert info.value.message.endswith("(2.0.1) runs on this target: none of them supports "
                                       "Python 3.13, the base image's")
    hint = info.value.hint or ""
    assert "--base-image with Python 3.8, 3.9, 3.10, 3.11" in hint
    assert "or require torch==2.15.0" in hint


K80_RECORDING = Path(__file__).resolve().parents[1] / "fixtures" / "hosts" / \
    "k80-driver470-smi-fallback"


def k80_host() -> HostFacts:
    from dlbox.hostenv.probe import facts_from_raw, load_raw

    return facts_from_raw(load_raw(K80_RECORDING))


def test_a_k80_pin_past_r470_is_not_told_to_update_the_driver(tmp_path: Path) -> None:
    # The recorded Tesla K80 host (driver 470.256.02, sm_37). torch 2.9.1's builds are all
    # CUDA 12.x (driver >= 525.60.13), and R470 is the last driver branch for Kepler
    # (cuda.json last_driver_branch), so "update the driver to >= 525.60.13" cannot be done:
    # the way out is the newest torch a K80 runs (2.3.1 cu118, cuDNN 8.7), or the CPU.
    k80 = k80_host()
    assert (k80.nvidia.driver_version, k80.nvidia.compute_capabilities) == ("470.256.02",
                                                                            ("3.7",))
    write(tmp_path / "requirements.txt", "torch==2.9.1\n")
    with pytest.raises(ContainerError) as info:
        B.dry_run(B.BuildRequest(project_dir=tmp_path, device="gpu"), facts=lambda: k80)
    assert "the lowest is 525.60.13, for torch 2.9.1 cu128" in info.value.message
    assert info.value.hint == ("R470 is the last driver branch for Kepler GPUs (sm_37), and no "
                               "torch build that torch==2.9.1 admits runs on it: require "
                               "torch==2.3.1 (the newest this target runs), or build with --cpu")
    # The same pin given as --framework-version.
    write(tmp_path / "requirements.txt", "numpy\n")
    request = B.BuildRequest(project_dir=tmp_path, device="gpu", framework_version="2.9")
    with pytest.raises(HostEnvError) as flag:
        B.dry_run(request, facts=lambda: k80)
    assert flag.value.hint == ("R470 is the last driver branch for Kepler GPUs (sm_37), and no "
                               "torch 2.9 build runs on it: pass --framework-version 2.3.1 (the "
                               "newest torch this target runs), or leave it out, or build with "
                               "--cpu")
    # The way out the hint names works on that host.
    _, notes = B.dry_run(dataclasses.replace(request, framework_version="2.3.1"),
                         facts=lambda: k80)
    assert notes[0].startswith("torch 2.3.1+cu118 (cu118) for GPU")
    # A pin whose builds need compute capability 5.0 gets the same truth, not the resolver's
    # "no tensorflow GPU build supports this GPU" (tensorflow 2.14.1 does).
    with pytest.raises(HostEnvError) as flag:
        F.resolve_framework("tensorflow", target_for(device="gpu", driver="470.256.02",
                                                     compute_capabilities=("3.7",)),
                            version="2.15")
    assert flag.value.hint == ("R470 is the last driver branch for Kepler GPUs (sm_37), and no "
                               "tensorflow 2.15 build runs on it: pass --framework-version "
                               "2.14.1 (the newest tensorflow this target runs), or leave it "
                               "out, or build with --cpu")


def test_a_driver_update_the_gpu_can_take_is_still_the_hint() -> None:
    # A K80 on driver 418: torch 2.3.1 cu118 needs 450.80.02, which R470 has: update.
    kepler = target_for(device="gpu", driver="418.87.01", compute_capabilities=("3.7",))
    with pytest.raises(HostEnvError) as info:
        F.resolve_framework("torch", kepler, version="2.3")
    assert info.value.hint == "update the NVIDIA driver to >= 450.80.02, or resolve with --cpu"
    # A Turing GPU has no last branch yet: torch 2.9's 525.60.13 is an update it can take.
    turing = target_for(device="gpu", driver="470.256.02", compute_capabilities=("7.5",))
    with pytest.raises(HostEnvError) as info:
        F.resolve_framework("torch", turing, version="2.9")
    assert info.value.hint == "update the NVIDIA driver to >= 525.60.13, or resolve with --cpu"
    # And through a project pin: the resolver's hint, plus the version to require.
    project = Project(root=Path("."), name="demo", version=None, kind="requirements",
                      requirements=("torch==2.9.1",), build_requirements=(),
                      installable=False, requires_python=None, pip_options=(), include=None)
    with pytest.raises(ContainerError) as pinned:
        F.resolve_framework("torch", turing, pins=F.project_pins(project, "torch"))
    assert pinned.value.hint == ("update the NVIDIA driver to >= 525.60.13, or resolve with "
                               "--cpu; or require torch==2.7.1 (the newest this target runs)")


# ---- the lock is written only after a good build -----------------------------------------

class FakeEngine:
    """engine.build / run_smoke / tag_image stand-ins: what a build that fails (or is
    interrupted) at a given step does, without a Docker engine."""

    def __init__(self, fail_at: str | None, error: BaseException | None = None) -> None:
        self.fail_at = fail_at
        self.error = error or ContainerError("the build failed: netifaces", hint="gcc")
        self.tagged: list[str] = []

    def build(self, client: object, context: Path, **kwargs: object) -> object:
        from dlbox.container.engine import BuildResult

        if self.fail_at == "build":
            raise self.error
        return BuildResult(image_id="sha256:" + "a" * 64)

    def smoke(self, client: object, image: str, spec: object, gpu: bool,
              compile_sources: bool = True) -> object:
        from dlbox.container.smoke import SmokeCheck, SmokeResult

        ok = self.fail_at != "smoke"
        check = SmokeCheck("pip_check", ok, "no broken requirements" if ok else
                           "torch 2.13.0+cpu has requirement setuptools>=77, but you have "
                           "setuptools 66.1.1.")
        return SmokeResult(ok, "torch", "2.15.0+cpu", "3.11.2", False, (check,), {})

    def tag(self, client: object, image_id: str, tags: list[str]) -> None:
        self.tagged += tags


FakeBuild = Callable[..., Path]


@pytest.fixture
def fake_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeBuild:
    from dlbox.container import engine

    root = tmp_path / "proj"
    write(root / "requirements.txt", "netifaces==0.11.0\ntorch\n")
    entry = entry_for(key="torch-cpu", framework_version="2.15.0+cpu", variant="cpu",
                      cuda=None, cudnn=None, min_driver=None, project_pip_options=(),
                      wheel_index="https://download.pytorch.org/whl/cpu",
                      project_requirements=("netifaces==0.11.0", "torch"),
                      pinned=("netifaces==0.11.0", "torch==2.15.0+cpu"))
    monkeypatch.setattr(B, "_lock", lambda *args: entry)
    monkeypatch.setattr(engine, "inspect_image", lambda client, name: {})

    def run(fail_at: str | None, error: BaseException | None = None,
            log: Callable[[str], None] = lambda line: None) -> Path:
        fake = FakeEngine(fail_at, error)
        monkeypatch.setattr(engine, "build", fake.build)
        monkeypatch.setattr(engine, "tag_image", fake.tag)
        monkeypatch.setattr(B, "run_smoke", fake.smoke)
        B.build_image(B.BuildRequest(project_dir=root, device="cpu"), log=log,
                      facts=no_probe, client=object())
        return root / "dlbox.lock"

    return run


def test_a_failed_or_interrupted_build_or_smoke_test_leaves_no_lock(
        tmp_path: Path, fake_build: FakeBuild) -> None:
    # Before, the lock was written as soon as pip had resolved: a first build that then
    # failed (netifaces needs gcc) or was interrupted left a lock that the next one trusted.
    lock = tmp_path / "proj" / "dlbox.lock"
    with pytest.raises(ContainerError, match="the build failed"):
        fake_build("build")
    assert not lock.exists()
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C during the build
        fake_build("build", KeyboardInterrupt())
    assert not lock.exists()
    with pytest.raises(ContainerError, match="pip_check: torch 2.13.0"):
        fake_build("smoke")
    assert not lock.exists()
    assert fake_build(None) == lock and lock.is_file()  # a good build writes it
    from dlbox.container.lock import read_lock

    assert read_lock(lock)["torch-cpu"].framework_version == "2.15.0+cpu"


def test_a_lock_inside_the_project_stays_out_of_the_files_and_their_digest(
        tmp_path: Path, fake_build: FakeBuild, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: with --lock locks/cpu.lock, `image run` right after the build warned that the
    files changed (the lock, written after), and the next build rebuilt the code layer."""
    import tarfile

    from dlbox.container import engine
    from dlbox.container.context import project_digest
    from dlbox.container.run import files_changed

    root = tmp_path / "proj"
    labels: dict[str, str] = {}
    names: list[str] = []
    fake = FakeEngine(None)

    def build(client: object, context: Path, **kwargs: object) -> object:
        labels.update(kwargs["labels"])  # type: ignore[arg-type]
        with tarfile.open(context) as tar:
            names.extend(tar.getnames())
        return fake.build(client, context)

    fake_build(None)  # the fixture's monkeypatches; its build writes dlbox.lock
    monkeypatch.setattr(engine, "build", build)
    cpu_lock = root / "locks" / "cpu.lock"
    for lock in (cpu_lock, cpu_lock, root / "dlbox.lock"):  # the second: it is there
        labels.clear()
        names.clear()
        B.build_image(B.BuildRequest(project_dir=root, device="cpu", lock_path=lock),
                      log=lambda line: None, facts=no_probe, client=object())
        assert lock.is_file()
        rel = lock.relative_to(root).as_posix()
        assert f"{S.CONTEXT_PROJECT}/{rel}" not in names, "the lock is not in the image"
        assert not files_changed(labels, root), "image run right after: no warning"
        assert labels[S.FILES_LABEL] == project_digest(detect_project(root))


def test_a_file_that_changes_while_the_image_builds_is_named(
        tmp_path: Path, fake_build: FakeBuild, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: `dlbox image build | tee build.log` in the project: each `image run`
    warned that the project's files changed, a rebuild did not help, and nothing said which
    file it was (build.log, growing while the engine took its first lines)."""
    from dlbox.container import engine

    root = tmp_path / "proj"
    fake = FakeEngine(None)
    fake_build(None)  # the fixture's monkeypatches
    (root / "build.log").write_text("building\n")

    def build(client: object, context: Path, **kwargs: object) -> object:
        with open(root / "build.log", "a") as log:
            log.write("step 2/22\n")  # the tee, meanwhile
        return fake.build(client, context)

    monkeypatch.setattr(engine, "build", build)
    outcome = B.build_image(B.BuildRequest(project_dir=root, device="cpu"),
                            log=lambda line: None, facts=no_probe, client=object())
    [said] = [note for note in outcome.notes if "changed while" in note]
    assert said == ("warning: build.log changed while the image was built (or appeared), so "
                    "the image's copy of the project differs: `dlbox image run` will warn that "
                    "the project's files changed; write such a file outside the project, or "
                    "list it in .dockerignore")
    (root / "build.log").unlink()  # one the build's output makes: named too (re-review)
    outcome = B.build_image(B.BuildRequest(project_dir=root, device="cpu"),
                            log=lambda line: None, facts=no_probe, client=object())
    assert [note for note in outcome.notes if "changed while" in note][0].startswith(
        "warning: build.log changed while the image was built")
    monkeypatch.setattr(engine, "build", fake.build)  # nothing changes: no warning
    outcome = B.build_image(B.BuildRequest(project_dir=root, device="cpu"),
                            log=lambda line: None, facts=no_probe, client=object())
    assert not [note for note in outcome.notes if "changed while" in note]


def test_an_entry_another_build_wrote_meanwhile_is_kept(
        tmp_path: Path, fake_build: FakeBuild, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: the lock was read when a build started and written whole when it
    ended, so a GPU build finishing during a CPU build's minutes lost its entry."""
    from dlbox.container.lock import read_lock, write_lock

    lock = tmp_path / "proj" / "dlbox.lock"
    checked = B.require_smoke_ok

    def and_meanwhile(*args: object) -> None:
        write_lock(lock, {"torch-gpu": entry_for()})  # the other build, done first
        checked(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(B, "require_smoke_ok", and_meanwhile)
    fake_build(None)
    assert sorted(read_lock(lock)) == ["torch-cpu", "torch-gpu"]


@pytest.mark.parametrize("wheels", [
    ("six-1.16.0-py2.py3-none-any.whl",),  # none the lock pins: a stale wheelhouse
    ("six-1.16.0-py2.py3-none-any.whl", "netifaces-0.11.0-cp311-cp311-linux_x86_64.whl",
     "torch-2.15.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"),  # every pin, and one more
])
def test_the_dry_run_prints_the_dockerfile_the_build_uses(
        tmp_path: Path, fake_build: FakeBuild, monkeypatch: pytest.MonkeyPatch,
        wheels: tuple[str, ...]) -> None:
    """Found by review: for a locked project and a wheelhouse holding a wheel the lock does
    not pin, --dry-run printed `COPY dlbox/wheelhouse/` and `--find-links`, which the build's
    Dockerfile (only the pinned wheels go to the engine: none here) has not."""
    import tarfile

    from dlbox.container import engine

    fake_build(None)  # the fixture's monkeypatches; its build writes dlbox.lock
    house = tmp_path / "wheels"
    for name in wheels:
        write(house / name, "")
    sent: list[str] = []

    def build(client: object, context: Path, **kwargs: object) -> object:
        with tarfile.open(context) as tar:
            member = tar.extractfile("Dockerfile")
            assert member is not None
            sent.append(member.read().decode())
        return FakeEngine(None).build(client, context)

    monkeypatch.setattr(engine, "build", build)
    request = B.BuildRequest(project_dir=tmp_path / "proj", device="cpu", wheelhouse=house)
    dockerfile, _ = B.dry_run(request, facts=no_probe)
    B.build_image(request, log=lambda line: None, facts=no_probe, client=object())
    assert sent == [dockerfile]


# ---- the smoke test's pip check ----------------------------------------------------------

def test_the_smoke_test_fails_on_a_broken_environment_with_pip_checks_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A venv holding an old setuptools' files beside the pinned one passed the smoke test:
    # it imported torch and ran a forward pass, and `pip check` was never run in the image.
    from dlbox.container.smoke import parse_smoke_output, require_smoke_ok, smoke_script

    script: dict[str, object] = {"__name__": "dlbox_smoke"}
    exec(compile(smoke_script(), "smoke_check.py", "exec"), script)  # noqa: S102 - our own
    check, results = script["check"], script["RESULT"]
    assert callable(check) and isinstance(results, dict)
    assert check("pip_check", script["pip_check"])  # this venv is consistent
    # A package whose requirement nothing installed meets, on the path pip check reads.
    dist = write(tmp_path / "site" / "broken_pkg-1.0.dist-info" / "METADATA",
                 "Metadata-Version: 2.1\nName: broken-pkg\nVersion: 1.0\n"
                 "Requires-Dist: dlbox-absent-dependency>=1\n")
    monkeypatch.setenv("PYTHONPATH", str(dist.parent.parent))
    assert not check("pip_check", script["pip_check"])
    failed = results["checks"][-1]
    assert failed["name"] == "pip_check" and not failed["ok"]
    assert "broken-pkg 1.0 requires dlbox-absent-dependency, which is not installed" \
        in failed["detail"]
    import json

    result = parse_smoke_output("DLBOX_SMOKE " + json.dumps(
        {"ok": False, "framework": "torch", "checks": results["checks"]}), "", 1)
    with pytest.raises(ContainerError) as info:
        require_smoke_ok(result, "sha256:" + "b" * 64)
    assert "fails its smoke test: pip_check: AssertionError: broken-pkg 1.0 requires " \
        "dlbox-absent-dependency" in info.value.message
    assert (info.value.hint or "").endswith("docker run --rm sha256:bbbbbbbbbbbb pip check")


# ---- the smoke test checks the project's own code ----------------------------------------

def test_the_smoke_test_fails_on_a_syntax_error_in_the_projects_code(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A train.py with a syntax error passed the smoke test (it only imported the framework):
    # the build said "run it: python3 train.py", and that run failed at once.
    import json

    from dlbox.container.smoke import (
        parse_smoke_output,
        require_smoke_ok,
        smoke_environment,
        smoke_script,
    )

    torch = S.FrameworkBuild("torch", "2.13.0+cpu", "cpu")
    env = smoke_environment(S.ImageSpec("proj", "requirements", torch, "base"), gpu=False)
    assert env["DLBOX_SMOKE_SOURCES"] == S.WORKDIR and env["DLBOX_SMOKE_DIST"] == ""
    installed = S.ImageSpec("mypkg", "pyproject", torch, "base", install_project=True)
    assert smoke_environment(installed, gpu=False)["DLBOX_SMOKE_DIST"] == "mypkg"
    # requirements.txt + setup.py: named after its folder, which the distribution need not be
    setup_py = S.ImageSpec("folder", "requirements", torch, "base", install_project=True)
    assert smoke_environment(setup_py, gpu=False)["DLBOX_SMOKE_DIST"] == ""
    builtin = smoke_environment(S.ImageSpec("dlbox", "builtin", torch, "base"), gpu=False)
    assert builtin["DLBOX_SMOKE_SOURCES"] == "" and builtin["DLBOX_SMOKE_DIST"] == ""
    # --no-compile-check: a project that ships templates or Python 2 files (which are not
    # meant to compile) keeps every other check, and relocks with the same flag
    unchecked = smoke_environment(installed, gpu=False, compile_sources=False)
    assert unchecked["DLBOX_SMOKE_SOURCES"] == "" and unchecked["DLBOX_SMOKE_DIST"] == "mypkg"
    from dlbox.cli import build_parser
    from dlbox.cli.image import _build_request

    args = build_parser().parse_args(["image", "build", "--cpu", "--no-compile-check"])
    request = _build_request(args)
    assert request.compile_check is False and request.smoke is True
    assert B.relock_command(request).endswith("--no-compile-check --relock")

    script: dict[str, object] = {"__name__": "dlbox_smoke"}
    exec(compile(smoke_script(), "smoke_check.py", "exec"), script)  # noqa: S102 - our own
    check, compile_sources = script["check"], script["compile_sources"]
    write(tmp_path / "main.py", "import torch\n")
    write(tmp_path / "runs" / "old.py", "def f(:\n")  # the mounted runs folder: not code
    assert check("project_sources", lambda: compile_sources(str(tmp_path)))
    write(tmp_path / "pkg" / "train.py", "x = 1\n\ndef f(:\n    pass\n")
    assert not check("project_sources", lambda: compile_sources(str(tmp_path)))
    checks = script["RESULT"]["checks"]
    result = parse_smoke_output("DLBOX_SMOKE " + json.dumps(
        {"ok": False, "framework": "torch", "checks": checks}), "", 1)
    with pytest.raises(ContainerError) as info:
        require_smoke_ok(result, "sha256:" + "b" * 64)
    assert info.value.message == "the project's code does not compile: pkg/train.py:3: " \
                                 "invalid syntax"
    assert ".dockerignore" in (info.value.hint or "")
    # review: the dependency stage kept as NAME:TAG-failed-deps (1.27 GB) went unmentioned
    with pytest.raises(ContainerError) as info:
        require_smoke_ok(result, "sha256:" + "b" * 64, "p:cpu-failed-deps")
    assert "(only the code layer is rebuilt; its dependency stage is kept as " \
           "p:cpu-failed-deps for that, until a build passes)" in (info.value.hint or "")
    # With another failure too, the smoke test's full summary is the error (pip check's
    # failure not hidden behind the compile error), and the image is kept for a look.
    both = checks + [{"name": "pip_check", "ok": False, "detail": "torch 2 requires x, "
                      "which is not installed", "seconds": 0.1}]
    result = parse_smoke_output("DLBOX_SMOKE " + json.dumps(
        {"ok": False, "framework": "torch", "checks": both}), "", 1)
    with pytest.raises(ContainerError) as info:
        require_smoke_ok(result, "sha256:" + "b" * 64)
    assert info.value.message.startswith("the new image fails its smoke test: ")
    assert "pip_check" in info.value.message and "project_sources" in info.value.message
    with pytest.raises(ContainerError) as info:
        require_smoke_ok(result, "p:cpu-failed", "p:cpu-failed-deps")
    assert (info.value.hint or "").endswith(
        "the image is kept as p:cpu-failed for a look, its dependency stage as "
        "p:cpu-failed-deps (the next build replaces them): docker run --rm p:cpu-failed pip "
        "check")


def test_the_smoke_test_imports_the_package_the_project_installs() -> None:
    # A pyproject project whose package imports a module its dependencies lack built fine;
    # the smoke test now imports the package's top-level modules, found from its metadata.
    from dlbox.container.smoke import smoke_script

    script: dict[str, object] = {"__name__": "dlbox_smoke"}
    exec(compile(smoke_script(), "smoke_check.py", "exec"), script)  # noqa: S102 - our own
    assert script["dist_modules"]("packaging") == ["packaging"]
    assert script["dist_modules"]("dlbox-no-such-distribution") == []
    # Found in review: a project's `train.py`, installed as module `train`, was imported, so
    # the smoke test ran the training script. Single-file modules are scripts: left out.
    assert script["dist_modules"]("typing_extensions") == []


def test_the_smoke_test_imports_the_frameworks_companions_and_finds_its_commands_modules(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: PyPI's torchvision (a CUDA build) beside torch+cpu passed the smoke
    test, and `import torchvision` failed in the image; a .dockerignore that left out the
    package folder passed it too ("modules of mypkg: no modules"), and the image's command
    failed with ModuleNotFoundError."""
    from typing import Any

    from dlbox.container.smoke import smoke_environment, smoke_script

    torch = S.FrameworkBuild("torch", "2.13.0+cpu", "cpu", None, ())
    env = smoke_environment(S.ImageSpec("mypkg", "pyproject", torch, "base"), gpu=False)
    assert env["DLBOX_SMOKE_COMPANIONS"] == "torchvision,torchaudio"
    # a companion built for another torch: its import fails (its operators do not register)
    write(tmp_path / "dlbox_fake_vision" / "__init__.py",
          "raise RuntimeError('operator torchvision::nms does not exist')\n")
    # an installed project whose package was left out, and whose command names it
    info = tmp_path / "dlbox_fake_proj-1.0.dist-info"
    write(info / "METADATA", "Metadata-Version: 2.1\nName: dlbox-fake-proj\nVersion: 1.0\n")
    write(info / "RECORD", "dlbox_fake_proj-1.0.dist-info/METADATA,,\n")
    write(info / "entry_points.txt", "[console_scripts]\nmytrain = dlbox_fake_pkg.cli:main\n"
                                     "myok = dlbox_fake_vision:x\n"
                                     "mydep = dlbox_fake_vision.cli:main\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name, value in {"DLBOX_SMOKE_FRAMEWORK": "torch", "DLBOX_SMOKE_VERSION": "",
                        "DLBOX_SMOKE_DIST": "dlbox-fake-proj", "DLBOX_SMOKE_IMPORTS": "",
                        "DLBOX_SMOKE_COMPANIONS": "dlbox_no_such_vision,dlbox_fake_vision",
                        "DLBOX_SMOKE_SOURCES": ""}.items():
        monkeypatch.setenv(name, value)
    script: dict[str, Any] = {"__name__": "dlbox_smoke"}
    exec(compile(smoke_script(), "smoke_check.py", "exec"), script)  # noqa: S102 - our own
    assert script["main"]() == 1
    capsys.readouterr()
    checks = {check["name"]: check for check in script["RESULT"]["checks"]}
    assert checks["import torch"]["ok"]
    assert not checks["import dlbox_fake_vision"]["ok"]
    assert checks["import dlbox_fake_vision"]["detail"].startswith(
        "RuntimeError: operator torchvision::nms does not exist")
    assert "import dlbox_no_such_vision" not in checks  # not installed: nothing to import
    assert not checks["commands of dlbox-fake-proj"]["ok"]
    assert checks["commands of dlbox-fake-proj"]["detail"].startswith(
        "ModuleNotFoundError: the commands mytrain (dlbox_fake_pkg.cli) name modules the image "
        "does not have")
    assert script["entry_point_modules"]("dlbox") == "dlbox (dlbox.cli)"


def test_commands_whose_modules_were_left_out_are_told_without_the_scripts_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: a [project.scripts] command whose package .dockerignore left out
    ended "(<string>:332)", the smoke script's own line, and the hint did not say to bring
    the package back."""
    import json
    from typing import Any

    from dlbox.container.smoke import parse_smoke_output, require_smoke_ok, smoke_script

    info = tmp_path / "dlbox_cut_proj-1.0.dist-info"
    write(info / "METADATA", "Metadata-Version: 2.1\nName: dlbox-cut-proj\nVersion: 1.0\n")
    write(info / "RECORD", "dlbox_cut_proj-1.0.dist-info/METADATA,,\n")
    write(info / "entry_points.txt", "[console_scripts]\nmytrain = dlbox_cut_pkg.cli:main\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    script: dict[str, Any] = {"__name__": "dlbox_smoke"}
    exec(compile(smoke_script(), "smoke_check.py", "exec"), script)  # noqa: S102 - our own
    assert not script["check"]("commands of dlbox-cut-proj",
                               lambda: script["entry_point_modules"]("dlbox-cut-proj"))
    failed = script["RESULT"]["checks"][-1]
    assert failed["detail"] == ("ModuleNotFoundError: the commands mytrain (dlbox_cut_pkg.cli) "
                                "name modules the image does not have (left out by "
                                ".dockerignore, or not packaged)")
    result = parse_smoke_output("DLBOX_SMOKE " + json.dumps(
        {"ok": False, "framework": "torch", "checks": [failed]}), "", 1)
    with pytest.raises(ContainerError) as refused:
        require_smoke_ok(result, "proj:latest-failed")
    assert (refused.value.hint or "").startswith(
        "bring those modules into the image (a .dockerignore line that leaves their folder "
        "out, or a package the project's build does not include), then build again; ")


def test_a_dependency_missing_from_the_requirements_is_named_in_the_smoke_tests_hint() -> None:
    """Found by review: `import mypkg: ModuleNotFoundError: No module named 'rich'` was
    hinted only with the image kept for a look, not with the fix."""
    import json

    from dlbox.container.smoke import parse_smoke_output, require_smoke_ok

    def failing(*checks: tuple[str, str]) -> str:
        result = parse_smoke_output("DLBOX_SMOKE " + json.dumps({
            "ok": False, "framework": "torch", "checks": [
                {"name": name, "ok": False, "detail": detail, "seconds": 0.1}
                for name, detail in checks]}), "", 1)
        with pytest.raises(ContainerError) as info:
            require_smoke_ok(result, "p4:cpu-failed")
        return info.value.hint or ""

    hint = failing(("import mypkg", "ModuleNotFoundError: No module named 'rich' "
                                    "(__init__.py:1)"),
                   ("import other", "ModuleNotFoundError: No module named 'yaml.x'"))
    assert hint.startswith("add the package that provides rich and yaml to the project's "
                           "requirements (or build with --extras NAME, for an optional group "
                           "that lists it), then build again; the image is kept as "
                           "p4:cpu-failed for a look"), hint
    # the project's own package missing is no dependency to add
    assert failing(("import mypkg", "ModuleNotFoundError: No module named 'mypkg'")) \
        .startswith("the image is kept as p4:cpu-failed")


def test_a_module_that_exits_when_imported_is_a_failed_check_not_a_lost_result(
        tmp_path: Path) -> None:
    """`sys.exit(main())` at import ended the smoke script before its result line, so the
    build failed with no reason. And a link whose target stayed outside the build context,
    or an unreadable file, is skipped by the compile check, not called a syntax error."""
    import sys
    from typing import Any

    from dlbox.container.smoke import smoke_script

    script: dict[str, Any] = {"__name__": "dlbox_smoke"}
    exec(compile(smoke_script(), "smoke_check.py", "exec"), script)  # noqa: S102 - our own
    assert script["check"]("import train", lambda: sys.exit(3)) is False
    last = script["RESULT"]["checks"][-1]
    assert last["name"] == "import train" and last["detail"].startswith("SystemExit: 3")
    (tmp_path / "ok.py").write_text("x = 1\n")
    (tmp_path / "common.py").symlink_to(tmp_path / "outside" / "common.py")
    assert script["compile_sources"](str(tmp_path)) == \
        "1 Python files compile (1 unreadable, skipped)"
    (tmp_path / "bad.py").write_text("def f(:\n")
    with pytest.raises(AssertionError, match=r"^bad.py:1: "):
        script["compile_sources"](str(tmp_path))


# ---- pip's resolution failing on a requirement ---------------------------------------------

def test_a_misspelt_or_impossible_requirement_is_one_error_line_naming_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # pip's two ERROR lines came through as a multi-line `error:`, with one hint for both a
    # typo ("from versions: none") and a version that was never released.
    from dlbox.container import engine

    def resolve_with(stderr: str) -> ContainerError:
        monkeypatch.setattr(engine, "run_captured",
                            lambda *args, **kwargs: engine.Captured(1, "", stderr))
        with pytest.raises(ContainerError) as info:
            PN.resolve_pins(object(), "img", ["six==99.0"], (), (), log=lambda line: None)
        return info.value

    typo = resolve_with(
        "ERROR: Could not find a version that satisfies the requirement reqeusts-xyz "
        "(from versions: none)\nERROR: No matching distribution found for reqeusts-xyz\n")
    assert typo.message == ("pip found no release of reqeusts-xyz for this image's Python "
                            "and platform")
    assert "\n" not in typo.message and "a typo?" in (typo.hint or "")
    impossible = resolve_with(
        "ERROR: Could not find a version that satisfies the requirement six==99.0 (from "
        "versions: 0.8.0, 0.9.0, 1.0b1, 1.15.0, 1.16.0, 1.17.0)\n"
        "ERROR: No matching distribution found for six==99.0\n")
    assert impossible.message == ("no release of six meets six==99.0: the index has 0.9.0, "
                                  "1.0b1, 1.15.0, 1.16.0, 1.17.0 (newest last)")
    assert (impossible.hint or "").endswith("e.g. six==1.17.0")
    # Found by review (recorded from pip with no route to PyTorch's index): "no release of
    # torch meets torch==2.15.0+cpu: the index has ..., 2.15.0", with the hint to require
    # torch==2.15.0, the version asked for. The version is there; its +cpu build is not.
    local = resolve_with(
        "ERROR: Could not find a version that satisfies the requirement torch==2.15.0+cpu "
        "(from versions: 2.12.1, 2.13.0, 2.14.0, 2.14.1, 2.15.0)\n"
        "ERROR: No matching distribution found for torch==2.15.0+cpu\n")
    assert local.message == ("no release of torch meets torch==2.15.0+cpu: the index has "
                             "2.12.1, 2.13.0, 2.14.0, 2.14.1, 2.15.0 (newest last), but not its "
                             "+cpu build")
    assert "--wheelhouse DIR holding the torch 2.15.0+cpu wheel" in (local.hint or "")
    assert "e.g. torch==" not in (local.hint or "")
    other = resolve_with("ERROR: ResolutionImpossible: a conflict\n")  # pip's own words stay
    assert "pip could not resolve the requirements" in other.message
    # Requirements that cannot go together (recorded from pip 25 on botocore and urllib3):
    # one line naming both and the dependency that clashes, not pip's fifteen.
    conflict = resolve_with(
        "INFO: pip is looking at multiple versions of botocore to determine which version is "
        "compatible with other requirements. This could take a while.\n"
        "ERROR: Cannot install botocore==1.34.0 and urllib3==2.2.0 because these package "
        "versions have conflicting dependencies.\n\n"
        "The conflict is caused by:\n"
        "    The user requested urllib3==2.2.0\n"
        "    botocore 1.34.0 depends on urllib3<2.1 and >=1.25.4; python_version >= \"3.10\"\n"
        "\nTo fix this you could try to:\n"
        "1. loosen the range of package versions you've specified\n"
        "2. remove package versions to allow pip attempt to solve the dependency conflict\n\n"
        "ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/"
        "dependency-resolution/#dealing-with-dependency-conflicts\n")
    assert conflict.message == (
        "pip cannot install botocore==1.34.0 and urllib3==2.2.0 together (conflicting "
        "dependencies): The user requested urllib3==2.2.0; botocore 1.34.0 depends on "
        "urllib3<2.1 and >=1.25.4; python_version >= \"3.10\"")
    assert (conflict.hint or "").startswith("loosen or drop one of these pins")
    # A companion package made for another torch than the one dlbox chose (review: the hint
    # blamed the project's pins; the torch pin was dlbox's): the --framework-version for it.
    companion = resolve_with(
        "ERROR: Cannot install torch==2.13.0+cpu and torchvision==0.16.0 because these "
        "package versions have conflicting dependencies.\n\n"
        "The conflict is caused by:\n"
        "    The user requested torch==2.13.0+cpu\n"
        "    torchvision 0.16.0 depends on torch==2.1.0\n\n"
        "ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/\n")
    assert companion.hint == (
        "torchvision 0.16.0 is made for torch 2.1.0, and the build's torch is 2.13.0: build "
        "with torch 2.1.0 (pin torch==2.1.0 in the project's requirements, or pass "
        "--framework-version 2.1.0), or require a torchvision made for torch 2.13.0 (or "
        "torchvision unpinned: pip picks one)")
    local = resolve_with(  # a local build and a marker on the dependency: the same hint
        "ERROR: Cannot install torch==2.13.0+cu126 and torchvision==0.16.0+cu121 because "
        "these package versions have conflicting dependencies.\n\nThe conflict is caused by:\n"
        "    The user requested torch==2.13.0+cu126\n"
        "    torchvision 0.16.0+cu121 depends on torch==2.1.0+cu121; platform_machine == "
        "\"x86_64\"\n\n")
    assert (local.hint or "").startswith("torchvision 0.16.0+cu121 is made for torch 2.1.0, "
                                         "and the build's torch is 2.13.0: ")
    # In the image, pip names a line of the requirements file dlbox wrote: the requirement
    # on that line is shown instead (recorded from a real build of that project).
    monkeypatch.setattr(engine, "run_captured", lambda *args, **kwargs: engine.Captured(
        1, "", "ERROR: Cannot install -r /tmp/dlbox-resolve/requirements.in (line 1) and "
               "urllib3==2.2.0 because these package versions have conflicting "
               "dependencies.\n"))
    with pytest.raises(ContainerError) as info:
        PN.resolve_pins(object(), "img", ["botocore==1.34.0", "urllib3==2.2.0"], (), (),
                       log=lambda line: None)
    assert info.value.message == ("pip cannot install botocore==1.34.0 and urllib3==2.2.0 "
                                  "together (conflicting dependencies)")


# Recorded from pip 24 resolving psycopg2==2.9.9 in a dlbox image (no pg_config there); the
# setuptools deprecation banner in the build's output is cut short here.
PSYCOPG2_STDOUT = """Collecting psycopg2==2.9.9
  Downloading psycopg2-2.9.9.tar.gz (384 kB)
  Preparing metadata (setup.py): started
  Preparing metadata (setup.py): finished with status 'error'
"""
PSYCOPG2_STDERR = """  error: subprocess-exited-with-error

  \u00d7 python setup.py egg_info did not run successfully.
  \u2502 exit code: 1
  \u2570\u2500> [36 lines of output]
      .../setuptools/dist.py:765: SetuptoolsDeprecationWarning: License classifiers are deprecated.
      running egg_info
      creating /tmp/pip-pip-egg-info-auittwgp/psycopg2.egg-info

      Error: pg_config executable not found.

      pg_config is required to build psycopg2 from source.  Please add the directory
      containing pg_config to the $PATH or specify the full executable path with the
      option:

      If you prefer to avoid building psycopg2 from source, please install the PyPI
      'psycopg2-binary' package instead.

      [end of output]

  note: This error originates from a subprocess, and is likely not a problem with pip.
error: metadata-generation-failed

\u00d7 Encountered error while generating package metadata.
\u2570\u2500> See above for output.

note: This is an issue with the package mentioned above, not pip.
hint: See above for details.
"""


def test_a_package_whose_source_build_fails_is_named_with_its_reason_and_fix(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: the error showed pip's last 15 lines, which began mid-sentence and held
    neither the package nor the reason, with a hint to look "above", where nothing was."""
    from dlbox.container import engine

    monkeypatch.setattr(engine, "run_captured", lambda *args, **kwargs: engine.Captured(
        1, PSYCOPG2_STDOUT, PSYCOPG2_STDERR))
    with pytest.raises(ContainerError) as info:
        PN.resolve_pins(object(), "img", ["psycopg2==2.9.9"], (), (), log=lambda line: None)
    assert info.value.message == (
        "pip could not build psycopg2==2.9.9 from source inside the image (no wheel of it "
        "fits the image, and its build failed):\n  Error: pg_config executable not found.\n"
        "  pg_config is required to build psycopg2 from source.  Please add the directory\n"
        "  If you prefer to avoid building psycopg2 from source, please install the PyPI")
    assert info.value.hint == ("the base image lacks PostgreSQL's pg_config: add the Debian "
                               "packages libpq-dev, build-essential and python3-dev to the "
                               "project's apt.txt and build again")
    # a reason dlbox knows no package for: the build's last lines, and the general fix
    monkeypatch.setattr(engine, "run_captured", lambda *args, **kwargs: engine.Captured(
        1, "Collecting odd==1.0\n", "  error: subprocess-exited-with-error\n"
        "  \u2570\u2500> [2 lines of output]\n      running egg_info\n      needs a "
        "frobnicator\n      [end of output]\nerror: metadata-generation-failed\n"))
    with pytest.raises(ContainerError) as info:
        PN.resolve_pins(object(), "img", ["odd==1.0"], (), (), log=lambda line: None)
    assert info.value.message.endswith(":\n  needs a frobnicator")
    assert "odd==1.0" in info.value.message
    assert (info.value.hint or "").startswith("where its build needs a system library or tool")
    # review, recorded from pip resolving `sklearn`: the reason is a deprecation, which the
    # lines with "error" in them left out
    monkeypatch.setattr(engine, "run_captured", lambda *args, **kwargs: engine.Captured(
        1, "Collecting sklearn\n", "  error: subprocess-exited-with-error\n"
        "  \u2570\u2500> [15 lines of output]\n"
        "      The 'sklearn' PyPI package is deprecated, use 'scikit-learn'\n"
        "      rather than 'sklearn' for pip commands.\n\n"
        "      Here is how to fix this error in the main use cases:\n"
        "      - use 'pip install scikit-learn' rather than 'pip install sklearn'\n"
        "      [end of output]\nerror: metadata-generation-failed\n"))
    with pytest.raises(ContainerError) as info:
        PN.resolve_pins(object(), "img", ["sklearn"], (), (), log=lambda line: None)
    assert "\n  The 'sklearn' PyPI package is deprecated, use 'scikit-learn'\n" in (
        info.value.message)


# Recorded from pip resolving `mylib @ git+https://github.invalid/example/mylib.git@v1.0`
# where git cannot reach the host: no "[N lines of output]" block, git's own line instead.
_CLONE = ("git clone --filter=blob:none --quiet https://github.invalid/example/mylib.git "
          "/tmp/pip-install-pgo8hh7p/mylib_cab9")
GIT_CLONE_STDOUT = ("Looking in links: /opt/wheels\n"
                    "Collecting mylib@ git+https://github.invalid/example/mylib.git@v1.0\n"
                    "  Cloning https://github.invalid/example/mylib.git (to revision v1.0) to "
                    "/tmp/pip-install-pgo8hh7p/mylib_cab9\n")
GIT_CLONE_STDERR = (
    f"  Running command {_CLONE}\n"
    "  fatal: unable to access 'https://github.invalid/example/mylib.git/': Could not resolve "
    "host: github.invalid\n"
    "  error: subprocess-exited-with-error\n  \n"
    f"  \u00d7 {_CLONE} did not run successfully.\n"
    "  \u2502 exit code: 128\n"
    "  \u2570\u2500> See above for output.\n  \n"
    "  note: This error originates from a subprocess, and is likely not a problem with pip.\n"
    "error: subprocess-exited-with-error\n\n"
    f"\u00d7 {_CLONE} did not run successfully.\n"
    "\u2502 exit code: 128\n"
    "\u2570\u2500> See above for output.\n\n"
    "note: This error originates from a subprocess, and is likely not a problem with pip.\n")


@pytest.mark.parametrize("fatal", [
    "fatal: unable to access 'https://github.invalid/example/mylib.git/': Could not resolve "
    "host: github.invalid",
    "fatal: could not read Username for 'https://github.invalid': No such device or address",
])
def test_a_vcs_requirement_whose_clone_fails_names_the_url_and_gits_reason(fatal: str) -> None:
    """Review: `mylib @ git+https://...` whose clone failed read "pip could not build mylib@
    from source ...:" with nothing after the colon, and a hint about apt.txt."""
    stderr = GIT_CLONE_STDERR.replace(
        "fatal: unable to access 'https://github.invalid/example/mylib.git/': Could not "
        "resolve host: github.invalid", fatal)
    failed = PN.source_build_failure(GIT_CLONE_STDOUT, stderr)
    assert failed is not None
    message, hint = failed
    assert message == ("pip could not clone mylib from https://github.invalid/example/mylib.git "
                       f"inside the image:\n  {fatal}")
    assert hint == ("the image build needs network access to github.invalid (and credentials "
                    "for a private repository are not passed in); or build a wheel of mylib "
                    "on the host, put it in a folder, pass --wheelhouse DIR and require "
                    "mylib by name")


def test_a_source_build_failure_without_an_output_block_still_says_why() -> None:
    """pip printed no "[N lines of output]" block: the reason is pip's own error lines, never
    nothing after the colon; the name is the package's, without the `@` of a URL."""
    failed = PN.source_build_failure(
        "Collecting odd@ https://example.org/odd-1.0.tar.gz\n",
        "  error: subprocess-exited-with-error\n\n  \u00d7 python setup.py egg_info did not run "
        "successfully.\n  \u2502 exit code: 1\n  \u2570\u2500> See above for output.\n\n"
        "  note: This error originates from a subprocess, and is likely not a problem with "
        "pip.\nerror: metadata-generation-failed\n")
    assert failed is not None
    assert failed[0].startswith("pip could not build odd from source inside the image")
    assert failed[0].endswith(":\n  \u00d7 python setup.py egg_info did not run successfully.")


# ---- the deps stage: tagged, and the one a dependency change replaces removed -------------

BUILD_LOG = [
    "Step 9/19 : COPY dlbox/requirements.lock.txt /opt/dlbox/requirements.lock.txt",
    " ---> Using cache", " ---> 3c1f2a9b8d7e",
    "Step 10/19 : RUN pip install --no-deps -r /opt/dlbox/requirements.lock.txt && pip check",
    " ---> Running in 0badc0ffee00", "No broken requirements found.",
    "Removing intermediate container 0badc0ffee00", " ---> b5ab15b3f973",
    "Step 11/19 : FROM system", " ---> 2476f2118a5a",
    "Step 12/19 : COPY --from=deps /opt/venv /opt/venv", " ---> 9e9e9e9e9e9e",
]


def test_a_dependency_change_removes_the_deps_stage_it_replaced(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Every relock left the old deps stage (the whole venv: 1.3 GB on CPU, several GB with
    # CUDA) as an untagged image that nothing referred to, until `docker image prune`.
    from dlbox.container import engine

    assert T.deps_stage_image(BUILD_LOG) == "b5ab15b3f973"
    assert T.deps_stage_image(BUILD_LOG[:8]) is None  # no image stage: nothing to tag
    assert T.deps_tag("p1:cpu") == "p1:cpu-deps"
    assert T.deps_tag("registry:5000/team/app") == "registry:5000/team/app:latest-deps"
    # Where an image that failed its smoke test is kept: within the engine's 128 characters.
    assert T.failed_tag("p1:cpu") == "p1:cpu-failed"
    assert T.failed_tag("registry:5000/team/app") == "registry:5000/team/app:latest-failed"
    assert len(T.failed_tag("p1:" + "v" * 128).split(":")[1]) == 128

    images = {"p1:cpu-deps": "sha256:" + "e" * 64}
    removed: list[str] = []

    def tag(client: object, image_id: str, tags: list[str]) -> None:
        images.update({name: "sha256:" + image_id for name in tags})

    deps_label = {"Config": {"Labels": {S.DEPS_STAGE_LABEL: "deps"}}}
    theirs = {"sha256:" + "f" * 64}  # an image the user tagged app:gpu-deps themselves
    monkeypatch.setattr(engine, "inspect_image", lambda client, name: (
        {"Id": images[name], **({} if images[name] in theirs else deps_label)}
        if name in images else None))
    monkeypatch.setattr(engine, "tag_image", tag)
    monkeypatch.setattr(engine, "remove_replaced_image", lambda client, image_id, label: (
        removed.append(image_id) or "removed" if label == S.DEPS_STAGE_LABEL else "kept"))
    notes = T.tag_deps_stage(object(), BUILD_LOG, "p1:cpu")
    assert images["p1:cpu-deps"] == "sha256:b5ab15b3f973"
    assert removed == ["sha256:" + "e" * 64]
    assert notes == ["removed the dependency stage this build replaced (eeeeeeeeeeee)"]
    removed.clear()  # a code-only rebuild: the same deps stage, nothing removed
    assert T.tag_deps_stage(object(), BUILD_LOG, "p1:cpu") == [] and removed == []
    # Found in review: NAME:TAG-deps naming the user's own image was moved and that image
    # deleted. An image without dlbox's deps-stage label is left alone, tag and all.
    images["app:gpu-deps"] = "sha256:" + "f" * 64
    notes = T.tag_deps_stage(object(), BUILD_LOG, "app:gpu")
    assert images["app:gpu-deps"] == "sha256:" + "f" * 64 and removed == []
    assert notes == ["the dependency stage b5ab15b3f973 is left untagged: app:gpu-deps names "
                     "an image that is not a dlbox dependency stage"]


def test_a_project_that_sends_data_is_told_before_the_build_not_after(
        tmp_path: Path, fake_build: FakeBuild, monkeypatch: pytest.MonkeyPatch) -> None:
    # The note about a big project (a dataset beside the code) came only with the result,
    # after the engine had copied it into the image.
    monkeypatch.setattr(B, "WARN_CONTEXT_BYTES", 1000)
    write(tmp_path / "proj" / "train.csv", "1,2\n" * 1000)
    lines: list[str] = []
    locked = B._lock  # the fixture's stand-in; the real one logs as pip resolves (minutes)
    monkeypatch.setattr(B, "_lock", lambda *args: (args[6]("resolving the lock"),
                                                    locked(*args))[1])
    fake_build(None, log=lines.append)
    warned = [i for i, line in enumerate(lines) if "the project sends" in line]
    building = [i for i, line in enumerate(lines) if line.startswith("building torch")]
    assert warned and building and warned[0] < building[0], lines  # the engine starts after
    assert "train.csv" in lines[warned[0]]
    # and before pip resolves the lock (minutes) and the context is written (the copy): from
    # the file sizes alone
    resolving = [i for i, line in enumerate(lines) if line == "resolving the lock"]
    assert resolving and warned[0] < resolving[0], lines
    assert len(warned) == 1
    # and in the dry run, where what would be sent is checked (review: it said nothing)
    _, notes = B.dry_run(B.BuildRequest(project_dir=tmp_path / "proj", device="cpu"),
                         facts=lambda: None)
    sends = [note for note in notes if note.startswith("the project sends")]
    assert len(sends) == 1 and sends[0].startswith(
        "the project sends 0 MiB to the image (biggest: train.csv (0 MiB), "), notes


def test_a_gpu_only_old_releases_serve_keeps_the_resolvers_reason() -> None:
    """Found in review: the resolver's "no tensorflow GPU build for Python 3.11 supports this
    GPU: resolve with --cpu, or another --python" was parsed as a Python error and came out as
    "no tensorflow release dlbox knows supports Python 3.11 ... pass --base-image with Python
    3.11", which is the base image's Python itself. The GPU is the reason; image build has no
    --python, so the way out names --base-image."""
    # a Tesla K40 (sm_35): only TensorFlow's CUDA 11 builds (up to 2.14) have it, and none
    # of them runs Python 3.12
    target = dataclasses.replace(target_for(device="gpu", driver="470.256.02",
                                            compute_capabilities=("3.5",)), python="3.12")
    with pytest.raises(HostEnvError) as info:
        F.resolve_framework("tensorflow", target)
    assert info.value.message.startswith("no tensorflow build runs on this target (driver "
                                         "470.256.02, sm_35): ")
    assert info.value.hint == ("no tensorflow GPU build for Python 3.12 supports this GPU: "
                               "resolve with --cpu, or --base-image with another Python")
    # no Python has one for sm_30: another base image is no way out (review)
    target = dataclasses.replace(target, compute_capabilities=("3.0",))
    with pytest.raises(HostEnvError) as info:
        F.resolve_framework("tensorflow", target)
    assert info.value.hint == "no tensorflow GPU build supports this GPU: resolve with --cpu"


def test_a_build_outside_any_project_says_it_builds_dlbox(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `dlbox image build` in a folder whose requirements.txt was forgotten quietly built the
    # built-in dlbox project instead.
    monkeypatch.chdir(tmp_path)
    _, notes = B.dry_run(B.BuildRequest(device="cpu"), facts=no_probe)
    assert any(note.startswith("building dlbox's own CIFAR-10 project: the current folder "
                               "has no requirements.txt") for note in notes), notes
    write(tmp_path / "requirements.txt", "numpy\n")
    _, notes = B.dry_run(B.BuildRequest(project_dir=tmp_path, device="cpu"), facts=no_probe)
    assert not any("dlbox's own" in note for note in notes)


def test_a_build_in_a_subfolder_of_a_project_says_so_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Review: `cd proj/src && dlbox image build` gave the CLI's warning naming the project
    # above and also the plan's note that the folder has no requirements.txt: one message.
    from dlbox.cli import main

    write(tmp_path / "proj" / "requirements.txt", "numpy\n")
    (tmp_path / "proj" / "src").mkdir()
    monkeypatch.chdir(tmp_path / "proj" / "src")
    _, notes = B.dry_run(B.BuildRequest(device="cpu"), facts=no_probe)
    assert not any("dlbox's own" in note for note in notes), notes
    assert main(["image", "build", "--cpu", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert err.count("dlbox's own CIFAR-10 project") == 1, err
    assert "warning: no project in this folder, so this builds dlbox's own" in err


@pytest.mark.parametrize("ignore, refused", [
    ("pyproject.toml\n", True), ("*.toml\n", True), ("*.toml\n!pyproject.toml\n", False),
    ("data/\n", False),
    ("setup.cfg\n", False)])  # beside a pyproject.toml it holds tool settings, not metadata
def test_a_dockerignore_that_leaves_out_pyproject_is_refused_before_the_build(
        tmp_path: Path, ignore: str, refused: bool) -> None:
    """Found by review: `.dockerignore` listing pyproject.toml built until step 17 of 23 and
    failed with pip's "Directory ... is not installable"; dlbox knows both before building."""
    write(tmp_path / "pyproject.toml",
          '[project]\nname = "p"\nversion = "0.1"\ndependencies = ["numpy"]\n'
          '[build-system]\nrequires = ["setuptools>=61"]\n'
          'build-backend = "setuptools.build_meta"\n')
    write(tmp_path / "p" / "__init__.py", "")
    write(tmp_path / "setup.cfg", "[flake8]\nmax-line-length = 100\n")
    write(tmp_path / ".dockerignore", ignore)
    request = B.BuildRequest(project_dir=tmp_path, device="cpu")
    if not refused:
        assert B.plan(request, no_probe).project.installable
        return
    with pytest.raises(UsageError) as caught:
        B.plan(request, no_probe)
    assert caught.value.message == ("the project's .dockerignore leaves out pyproject.toml, "
                                    "which installing the project in the image needs")
    assert "`!pyproject.toml`" in (caught.value.hint or "")


def test_an_environment_variable_in_a_requirement_is_named_as_one(tmp_path: Path) -> None:
    """Found by review: `numpy==${NUMPY_VERSION}` (pip expands ${NAME}) was refused as "not a
    valid requirement", without a word of the variable."""
    write(tmp_path / "requirements.txt", "rich\nnumpy==${NUMPY_VERSION}\n")
    with pytest.raises(UsageError) as caught:
        detect_project(tmp_path)
    assert caught.value.message == (
        "requirements.txt:2: 'numpy==${NUMPY_VERSION}' uses ${NUMPY_VERSION}, an environment "
        "variable: dlbox does not expand those (pip does), since the image is built and locked "
        "from the file as written")
    assert caught.value.hint == "write the value of NUMPY_VERSION into the line in its place"


def test_a_setup_cfg_holding_the_metadata_is_kept_in_the_image(tmp_path: Path) -> None:
    """Found by review of the check above: beside a pyproject.toml without [project] (a
    setuptools build), setup.cfg holds the metadata; leaving it out installs UNKNOWN-0.0.0."""
    write(tmp_path / "pyproject.toml", '[build-system]\nrequires = ["setuptools>=61"]\n'
                                       'build-backend = "setuptools.build_meta"\n')
    write(tmp_path / "setup.cfg", "[metadata]\nname = p\n[options]\npackages = p\n")
    write(tmp_path / "requirements.txt", "numpy\n")
    write(tmp_path / "p" / "__init__.py", "")
    write(tmp_path / ".dockerignore", "*.cfg\n")
    project = detect_project(tmp_path)
    if not project.installable:
        pytest.skip("this layout is not installed by dlbox")
    with pytest.raises(UsageError, match="leaves out setup.cfg"):
        B.plan(B.BuildRequest(project_dir=tmp_path, device="cpu"), no_probe)


def test_the_projects_own_conflicting_pins_are_named_as_such(tmp_path: Path) -> None:
    """Found by review: `-r base.txt` with torch>=2.14 beside torch==2.13.0 said "the torch
    build for this target is 2.13.0" and offered --framework-version, which cannot help."""
    root = tmp_path / "cf"
    root.mkdir()
    (root / "base.txt").write_text("torch>=2.14\n")
    (root / "requirements.txt").write_text("-r base.txt\ntorch==2.13.0\n")
    for version in (None, "2.13.0"):
        with pytest.raises(ContainerError) as info:
            B.dry_run(B.BuildRequest(project_dir=root, device="cpu", framework_version=version),
                      facts=no_probe)
        assert info.value.message == ("the project's requirements on torch conflict: "
                                      "torch==2.13.0, torch>=2.14 admit no version together")
        assert "--framework-version" not in (info.value.hint or "")


def test_a_python_the_project_does_not_allow_is_named_with_an_image_that_has_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: `requires-python = ">=3.12"` went by the dry run without a word, and
    the build's error (after the system stage) hinted "pass --base-image with a fitting
    Python", naming none."""
    monkeypatch.delenv(S.BASE_IMAGE_ENV, raising=False)
    write(tmp_path / "pyproject.toml", '[project]\nname = "newpy"\nversion = "0.1"\n'
          'requires-python = ">=3.12"\ndependencies = ["torch"]\n')
    write(tmp_path / "newpy" / "__init__.py", "")
    _, notes = B.dry_run(B.BuildRequest(project_dir=tmp_path, device="cpu"), facts=no_probe)
    assert ("warning: the project requires Python >=3.12; the base image "
            "python:3.11-slim-bookworm has 3.11 (assumed): the build will refuse; pass "
            "--base-image python:3.13-slim-bookworm (or another Debian/Ubuntu image with that "
            "Python)") in notes, notes
    project = detect_project(tmp_path)
    assert B.python_mismatch(project, "3.12.1", "python:3.12-slim-bookworm") is None
    assert B.python_mismatch(project, "3.11.2", "dlbox-base:bookworm") == (
        "the project requires Python >=3.12; the base image dlbox-base:bookworm has 3.11.2",
        "pass --base-image python:3.13-slim-bookworm (or another Debian/Ubuntu image with "
        "that Python)")  # the newest that fits
    # a GPU build on a CUDA base image: not a python: image, which has no CUDA libraries
    assert B.python_mismatch(project, "3.8.10", "nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04",
                             cuda_system=True)[1].startswith("pass --base-image with a CUDA image")
    # ">3.11" allows the default image's 3.11.x: the dry run's "3.11" is any of them
    write(tmp_path / "pyproject.toml", '[project]\nname = "newpy"\nversion = "0.1"\n'
          'requires-python = ">3.11"\ndependencies = ["torch"]\n')
    _, later = B.dry_run(B.BuildRequest(project_dir=tmp_path, device="cpu"), facts=no_probe)
    assert not any("requires Python" in note for note in later), later
    # a --base-image: its Python is not known before the build, so none is assumed of it
    _, given = B.dry_run(B.BuildRequest(project_dir=tmp_path, device="cpu",
                                        base_image="python:3.12-slim-bookworm"), facts=no_probe)
    assert not any("requires Python" in note for note in given), given


def test_a_framework_required_from_a_url_is_refused_not_replaced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: `torch @ https://.../torch-2.1.0%2Bcpu-...whl` built torch 2.15.0 with
    no word: the framework line was replaced by the build's, and a URL has no version."""
    from dlbox.cli import main

    project = tmp_path / "urls"
    for line, pin in (
            ("torch @ https://download.pytorch.org/whl/cpu/torch-2.1.0%2Bcpu-cp311-cp311-"
             "linux_x86_64.whl", "torch==2.1.0"),
            ("torch @ file:///wheels/my-torch.whl", "torch==VERSION")):
        write(project / "requirements.txt", f"numpy\n{line}\n")
        assert main(["image", "build", "--dry-run", "--cpu", str(project)]) == 2
        assert capsys.readouterr().err.splitlines() == [
            f"error: the project requires torch from a URL ({line.split(' @ ')[1]}), but dlbox "
            "picks the torch build (CPU or CUDA) for the target itself",
            f"hint: pin the version instead ({pin}); the build takes its wheel for the target "
            "(--cpu/--gpu) from the framework's index or --wheelhouse DIR"]
    # a URL line whose marker leaves Linux out is skipped, as pip skips it (review)
    write(project / "requirements.txt", 'torch==2.13.0 ; sys_platform == "linux"\n'
          'torch @ https://example.com/torch-2.13.0-cp311-none-macosx_11_0_arm64.whl ; '
          'sys_platform == "darwin"\n')
    assert main(["image", "build", "--dry-run", "--cpu", str(project)]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("name, whose, fix", [
    ("cog.yaml", "Cog's", "list its build.python_packages in a requirements.txt (and its "
                          "build.system_packages in an apt.txt)"),
    ("environment.yml", "conda's", "list its pip: packages, and its conda ones by their PyPI "
                                   "names, in a requirements.txt"),
    ("Pipfile", "Pipenv's", "write a requirements.txt from it: pipenv requirements > "
                            "requirements.txt"),
    ("Pipfile.lock", "Pipenv's", "write a requirements.txt from it: pipenv requirements > "
                                 "requirements.txt"),  # a lock alone: review
])
def test_another_tools_project_is_named_not_built_as_dlbox(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        name: str, whose: str, fix: str) -> None:
    """Found by review: in a Cog project (cog.yaml, predict.py) `dlbox image build` built
    dlbox's own CIFAR-10 project; given the folder, it said "has neither requirements.txt
    nor pyproject.toml", not that it found cog.yaml and does not read it."""
    from dlbox.cli import main

    project = tmp_path / "theirs"
    write(project / name, "build:\n  python_packages:\n    - torch\n")
    write(project / "predict.py", "import torch\n")
    monkeypatch.chdir(project)
    for where in ([], ["."]):
        assert main(["image", "build", "--dry-run", "--cpu", *where]) == 2
        assert capsys.readouterr().err.splitlines() == [
            f"error: {project} holds {name} ({whose}), which dlbox does not read, and no "
            "requirements.txt or pyproject.toml", f"hint: {fix}, then build again"]


def test_offline_with_a_wheelhouse_that_lacks_a_requirement_names_the_wheelhouse(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Found by review: `--wheelhouse /opt/wheels --offline` without a lock, six not in the
    wheelhouse, said "pip found no release of six ... a typo? ... or pass --wheelhouse DIR",
    though --wheelhouse was given: pip had no index to ask (--no-index)."""
    from dlbox.container import engine
    from dlbox.container.context import scan_wheelhouse

    (tmp_path / "numpy-2.1.0-cp311-cp311-manylinux_2_17_x86_64.whl").write_bytes(b"")
    wheels = scan_wheelhouse(tmp_path)
    offline = ("--no-index", "--find-links=/dlbox-resolve/wheelhouse")

    def resolve_with(stderr: str, requirement: str) -> ContainerError:
        monkeypatch.setattr(engine, "run_captured",
                            lambda *args, **kwargs: engine.Captured(1, "", stderr))
        with pytest.raises(ContainerError) as info:
            PN.resolve_pins(object(), "img", [requirement], offline, wheels,
                           log=lambda line: None)
        return info.value

    missing = resolve_with(
        "ERROR: Could not find a version that satisfies the requirement six (from versions: "
        "none)\nERROR: No matching distribution found for six\n", "six")
    assert missing.message == ("--offline, but the wheelhouse has no wheel of six for this "
                               "image's Python and platform")
    assert missing.hint == (f"fill it on a machine with network: pip download -d {tmp_path} "
                            "six; or drop --offline")
    old = resolve_with(
        "ERROR: Could not find a version that satisfies the requirement numpy>=2.2 (from "
        "versions: 2.1.0)\nERROR: No matching distribution found for numpy>=2.2\n",
        "numpy>=2.2")
    assert old.message == ("--offline, but no wheel of numpy in the wheelhouse meets "
                           "numpy>=2.2: it has 2.1.0")
    assert old.hint == (f"fill it on a machine with network: pip download -d {tmp_path} "
                        "'numpy>=2.2'; or drop --offline")


def test_a_pinned_tensorflow_hint_names_a_version_the_base_images_python_runs(
        tmp_path: Path) -> None:
    """Found in review: a GTX 1080 on driver 418 (CUDA 10 builds only: TensorFlow up to 2.3,
    Python up to 3.8) with --base-image of Python 3.11 was told to "require tensorflow==2.3.4
    (the newest this target runs)", which then failed on the base image's Python."""
    write(tmp_path / "requirements.txt", "tensorflow==2.9.1\n")
    request = B.BuildRequest(project_dir=tmp_path, device="gpu", driver="418.226.00",
                             compute_capabilities=("6.1",), base_image="dlbox-base:bookworm")
    with pytest.raises(ContainerError) as info:
        B.dry_run(request, facts=no_probe)
    assert info.value.hint == ("update the NVIDIA driver to >= 450.80.02, or resolve with "
                               "--cpu"), info.value.hint
    # --framework-version: the same, no version that fails next
    write(tmp_path / "requirements.txt", "tensorflow\n")
    pinned = dataclasses.replace(request, framework_version="2.9.1")
    with pytest.raises(HostEnvError) as info:
        B.dry_run(pinned, facts=no_probe)
    assert "--framework-version 2.3" not in (info.value.hint or ""), info.value.hint


def test_a_post_release_pin_is_its_release(tmp_path: Path) -> None:
    """Found in review: requirements.txt's tensorflow==2.15.0.post1 (a real PyPI
    post-release) was "no tensorflow version dlbox knows meets it"."""
    write(tmp_path / "requirements.txt", "tensorflow==2.15.0.post1\n")
    request = B.BuildRequest(project_dir=tmp_path, device="gpu", driver="550.54.14",
                             compute_capabilities=("8.6",), base_image="dlbox-base:bookworm")
    _, notes = B.dry_run(request, facts=no_probe)
    assert any("tensorflow 2.15.0.post1" in note for note in notes), notes
    assert F.resolve_framework("tensorflow", target_for(device="cpu"),
                               version="2.15.0.post1").requirements == (
        "tensorflow-cpu==2.15.0.post1",)


OFFLINE = ("--no-index", "--find-links=/dlbox-resolve/wheelhouse")


def _offline_resolve_fails(monkeypatch: pytest.MonkeyPatch, stderr: str) -> None:
    """The resolve step's pip, run --offline, fails with `stderr`."""
    from dlbox.container import engine

    monkeypatch.setattr(engine, "run_captured",
                        lambda *args, **kwargs: engine.Captured(1, "", stderr))


def test_offline_names_every_requirement_the_wheelhouse_lacks_at_once(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Found by review: an --offline first build named the wheels it lacked one a run (idna,
    then six, ...), and its `pip download` hint had none of the --python-version/--platform
    flags the hint gives once a lock exists (so it fetched wheels for the host's Python)."""
    import shlex

    from dlbox.container.context import scan_wheelhouse

    (tmp_path / "torch-2.13.0+cpu-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    (tmp_path / "numpy-2.1.0-cp311-cp311-manylinux_2_17_x86_64.whl").write_bytes(b"")
    wheels = scan_wheelhouse(tmp_path)
    offline = OFFLINE
    _offline_resolve_fails(monkeypatch, "ERROR: Could not find a version that satisfies the "
                           "requirement idna (from versions: none)\nERROR: No matching "
                           "distribution found for idna\n")
    requirements = ["colorama; sys_platform == 'win32'", "idna", "numpy>=2", "numpy<3",
                    "rich>=13", "six", "torch==2.13.0+cpu"]
    with pytest.raises(ContainerError) as info:
        PN.resolve_pins(object(), "img", requirements, offline, wheels, log=lambda line: None,
                       python="3.11.2", wheel_index="https://download.pytorch.org/whl/cpu")
    assert info.value.message == ("--offline, but the wheelhouse has no wheel of idna, "
                                  "rich>=13, six for this image's Python and platform")
    hint = info.value.hint or ""
    assert hint.startswith("fill it on a machine with network: pip download ")
    assert hint.endswith("; or drop --offline")
    command = shlex.split(hint.split(": ", 1)[1].rsplit(";", 1)[0])
    # every line that holds in the image, the framework's too: pip download skips the wheels
    # that are there and fetches every dependency, so the next build finds them all
    assert command[-6:] == ["idna", "numpy>=2", "numpy<3", "rich>=13", "six",
                            "torch==2.13.0+cpu"]
    for flag in ("--only-binary=:all:", "--python-version", "3.11", "--platform",
                 "--extra-index-url", "https://download.pytorch.org/whl/cpu", "-d",
                 str(tmp_path)):
        assert flag in command, command
    assert "--no-deps" not in command  # their dependencies are not in the wheelhouse either
    # a dependency of one (pip names it; every top-level line has a wheel): its hint has the
    # image's target too
    _offline_resolve_fails(monkeypatch, "ERROR: Could not find a version that satisfies the "
                           "requirement typing-extensions>=4 (from torch) (from versions: "
                           "none)\n")
    with pytest.raises(ContainerError) as info:
        PN.resolve_pins(object(), "img", ["numpy>=2", "torch==2.13.0+cpu"], offline, wheels,
                       log=lambda line: None, python="3.11.2", wheel_index=None)
    assert "no wheel of typing-extensions for this image's Python" in info.value.message
    assert "--python-version 3.11" in (info.value.hint or "")
    assert (info.value.hint or "").endswith(" 'numpy>=2' torch==2.13.0+cpu; or drop --offline")


def test_the_offline_download_hint_names_the_framework_whose_wheel_is_there(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Found by review: with torch's wheel in the wheelhouse and six missing, the hint's
    `pip download` named six alone; after it the build failed on torch's dependencies
    (filelock, sympy, ...), one a run."""
    import shlex

    from dlbox.container.context import scan_wheelhouse

    (tmp_path / "torch-2.13.0+cpu-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    wheels = scan_wheelhouse(tmp_path)
    offline = OFFLINE
    _offline_resolve_fails(monkeypatch, "ERROR: Could not find a version that satisfies the "
                           "requirement six (from versions: none)\nERROR: No matching "
                           "distribution found for six\n")
    with pytest.raises(ContainerError) as info:
        PN.resolve_pins(object(), "img", ["six", "torch==2.13.0+cpu"], offline, wheels,
                       log=lambda line: None, python="3.11.2",
                       wheel_index="https://download.pytorch.org/whl/cpu")
    assert info.value.message == ("--offline, but the wheelhouse has no wheel of six for this "
                                  "image's Python and platform")
    command = shlex.split((info.value.hint or "").split(": ", 1)[1].rsplit(";", 1)[0])
    assert command[-2:] == ["six", "torch==2.13.0+cpu"], command
    assert "--extra-index-url" in command and "--no-deps" not in command


def test_a_companion_of_another_build_is_named_in_the_smoke_tests_hint() -> None:
    """Found by review: a CPU image whose build reached PyPI but not download.pytorch.org got
    PyPI's (CUDA) torchvision beside torch+cpu; the smoke test failed with `operator
    torchvision::nms does not exist` and a hint that only said where the image was kept."""
    import json

    from dlbox.container.smoke import parse_smoke_output, require_smoke_ok

    result = parse_smoke_output("DLBOX_SMOKE " + json.dumps({
        "ok": False, "framework": "torch", "version": "2.13.0+cpu", "checks": [
            {"name": "import torchvision", "ok": False, "seconds": 0.1,
             "detail": "RuntimeError: operator torchvision::nms does not exist"}]}), "", 1)
    with pytest.raises(ContainerError) as info:
        require_smoke_ok(result, "p5:cpu-failed",
                         wheel_index="https://download.pytorch.org/whl/cpu")
    hint = info.value.hint or ""
    assert hint.startswith("torchvision does not match torch's build (torch 2.13.0+cpu): "
                           "it likely came from PyPI, because the build could not reach the "
                           "framework's index, https://download.pytorch.org/whl/cpu; put the "
                           "matching torchvision wheel (its +cpu build) into --wheelhouse DIR, "
                           "or pin it (torchvision==VERSION+cpu), then build again; the image "
                           "is kept as p5:cpu-failed for a look"), hint


def test_a_resolution_that_took_pypis_torchvision_beside_torch_cpu_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: with download.pytorch.org out of reach, pip took PyPI's torchvision
    (a CUDA build) beside the wheelhouse's torch+cpu, and only the smoke test, minutes later,
    failed (`operator torchvision::nms does not exist`). The resolution already shows it."""
    import platform

    from dlbox.container import engine
    from dlbox.container.engine import BuildResult

    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    root = tmp_path / "proj"
    write(root / "requirements.txt", "torch==2.15.0\ntorchvision\n")
    monkeypatch.setattr(engine, "build", lambda *args, **kwargs: BuildResult(
        image_id="sha256:" + "a" * 64))
    monkeypatch.setattr(engine, "inspect_image", lambda client, name: {})
    monkeypatch.setattr(B, "probe_python", lambda client, image: "3.11.2")
    pins: list[str] = []
    monkeypatch.setattr(B, "resolve_pins", lambda *args, **kwargs: ("3.11.2", tuple(pins)))
    request = B.BuildRequest(project_dir=root, device="cpu")
    p = B.plan(request, facts=no_probe)

    def lock() -> object:
        work = tmp_path / "work"
        work.mkdir(exist_ok=True)
        return B._lock(request, p, object(), work, None, {}, lambda line: None, None)

    pins[:] = ["torch==2.15.0+cpu", "torchvision==0.30.0+cpu"]
    assert lock().pinned == tuple(pins)  # type: ignore[attr-defined]
    pins[:] = ["torch==2.15.0+cpu", "torchvision==0.30.0"]
    with pytest.raises(ContainerError) as info:
        lock()
    assert info.value.message == (
        "pip resolved torchvision 0.30.0 beside torch 2.15.0+cpu: not the framework's +cpu "
        "build but PyPI's, a CUDA one, which fails to import beside it")
    hint = info.value.hint or ""
    assert "https://download.pytorch.org/whl/cpu" in hint and "--wheelhouse" in hint
    assert "torchvision-0.30.0+cpu" in hint
    # on ARM, the CPU index's torchvision has no +cpu: nothing to say
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert lock().pinned == tuple(pins)  # type: ignore[attr-defined]


def test_the_resolve_step_gets_the_wheels_a_wheelhouse_links_to(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Found by review: a wheelhouse of symlinked wheels failed inside the resolve step with
    "No such file or directory: '/tmp/dlbox-resolve/wheelhouse/torch-...whl'": the tar held
    the links, not the wheels."""
    import tarfile

    from dlbox.container import engine
    from dlbox.container.context import scan_wheelhouse

    store, house = tmp_path / "store", tmp_path / "house"
    store.mkdir()
    house.mkdir()
    name = "six-1.17.0-py2.py3-none-any.whl"
    (store / name).write_bytes(b"the wheel")
    (house / name).symlink_to(store / name)
    seen: dict[str, tuple[bool, bytes]] = {}

    def run_captured(*args: object, archive: Path | None = None,
                     **kwargs: object) -> engine.Captured:
        assert archive is not None
        with tarfile.open(archive) as tar:
            member = tar.getmember(f"dlbox-resolve/wheelhouse/{name}")
            stream = tar.extractfile(member) if member.isfile() else None
            seen[name] = (member.isfile(), stream.read() if stream else b"")
        return engine.Captured(0, 'DLBOX_RESOLVE {"python": "3.11.2", "install": []}', "")

    monkeypatch.setattr(engine, "run_captured", run_captured)
    PN.resolve_pins(object(), "img", ["six"], (), scan_wheelhouse(house), log=lambda line: None)
    assert seen[name] == (True, b"the wheel")


def test_a_tensorflow_and_cuda_build_gets_a_base_whose_python_its_extra_installs_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Review: 2.14.1 (and-cuda) on python:3.11-slim, where its tensorrt==8.5.3.1 has no
    # wheels. On 3.11 the choice is 2.13 (cuda-system), so the base is CUDA 11.8's image,
    # whose Python 3.10 the and-cuda extra of 2.14 installs on: the build the real build makes.
    monkeypatch.delenv(S.BASE_IMAGE_ENV, raising=False)
    write(tmp_path / "requirements.txt", "tensorflow\n")
    request = B.BuildRequest(project_dir=tmp_path, device="gpu", driver="470.256.02",
                             compute_capabilities=("6.1",))
    p = B.plan(request, no_probe)
    first = B.first_choice(p)
    assert first.variant == "cuda-system"
    assert F.default_base_image(first) == "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04"
    dockerfile, notes = B.dry_run(request, facts=no_probe)
    assert "FROM nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04 AS system" in dockerfile
    assert notes[0] == ("tensorflow 2.14.1 (and-cuda) for GPU, base "
                        "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04"), notes[0]
    assert "NVIDIA_DISABLE_REQUIRE=1" in dockerfile  # FROM nvidia/cuda, whatever the variant


def test_a_dry_run_does_not_refuse_on_the_assumed_python_of_a_base_image(
        tmp_path: Path) -> None:
    # Review: "none of them supports Python 3.11, the base image's" for an nvidia/cuda image
    # of Python 3.8: 3.11 was assumed; the build probes the image's Python first.
    write(tmp_path / "requirements.txt", "tensorflow==2.11.1\n")
    base = "nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04"
    dockerfile, notes = B.dry_run(B.BuildRequest(project_dir=tmp_path, device="gpu",
                                                 driver="550.54.15", base_image=base),
                                  facts=no_probe)
    assert f"FROM {base} AS system" in dockerfile
    assert notes[0].startswith("tensorflow 2.11.1 (cuda-system) for GPU")
    assert any(f"the Python of {base} is checked when the build probes the image" in note
               for note in notes), notes
    assert not any("assuming Python 3.11" in note for note in notes)


def test_no_build_for_a_cuda_system_python_names_a_cuda_image() -> None:
    target = Target(driver="550.54.15", compute_capabilities=("8.6",), python="3.11")
    with pytest.raises(HostEnvError) as info:
        F.resolve_pinned("tensorflow", target, "2.11.1")
    assert "nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04" in (info.value.hint or "")
    assert "slim-bookworm" not in (info.value.hint or "")
    cpu = Target(cpu=True, python="3.12")  # a CPU build still gets python's own image
    with pytest.raises(HostEnvError) as info:
        F.resolve_pinned("tensorflow", cpu, "2.11.1")
    assert "python:3.10-slim-bookworm" in (info.value.hint or "")


def test_a_second_framework_in_the_project_is_named_as_not_getting_a_gpu_build(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Review: torch and tensorflow listed: torch got the GPU build, tensorflow stayed as
    # written (no [and-cuda]) and ran on the CPU, with no word of it.
    from dlbox.cli import main

    monkeypatch.delenv(S.BASE_IMAGE_ENV, raising=False)
    write(tmp_path / "requirements.txt", "torch==2.7.1\ntensorflow==2.17.1\n")
    request = B.BuildRequest(project_dir=tmp_path, device="gpu", driver="550.54.15")
    _, notes = B.dry_run(request, facts=no_probe)
    warning = ("warning: the project also requires tensorflow, which keeps its line as "
               "written: only torch gets a GPU build")
    assert any(note.startswith(warning) for note in notes), notes
    assert main(["image", "build", str(tmp_path), "--gpu", "--driver", "550.54.15",
                 "--dry-run"]) == 0
    assert f"# {warning}" in capsys.readouterr().err
    _, cpu = B.dry_run(dataclasses.replace(request, device="cpu", driver=None), facts=no_probe)
    assert not any("also requires" in note for note in cpu)


@pytest.mark.parametrize(("index", "device", "kind", "fix"), [
    ("https://download.pytorch.org/whl/cu121", "cpu", "CUDA", ", or build with --gpu"),
    ("https://download.pytorch.org/whl/cpu", "gpu", "CPU", ", or build with --cpu"),
    ("https://download.pytorch.org/whl/rocm6.2/", "gpu", "ROCm (AMD GPU)",
     "(dlbox adds the framework's index itself)"),
])
def test_a_wheel_index_for_the_other_device_is_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index: str, device: str, kind: str,
        fix: str) -> None:
    # Review: a requirements.txt with PyTorch's cu121 index on a --cpu build: torch came from
    # the CPU index, torchaudio from the cu121 one, with no word of it.
    monkeypatch.delenv(S.BASE_IMAGE_ENV, raising=False)
    write(tmp_path / "requirements.txt", f"--extra-index-url {index}\ntorch\ntorchaudio\n")
    driver = "550.54.15" if device == "gpu" else None
    request = B.BuildRequest(project_dir=tmp_path, device=device, driver=driver)
    _, notes = B.dry_run(request, facts=no_probe)
    said = [note for note in notes if "adds the wheel index" in note]
    assert len(said) == 1, notes
    assert said[0].startswith(f"warning: requirements.txt adds the wheel index {index}, of "
                              f"{kind} builds")
    assert said[0].endswith(fix)
    if kind == "ROCm (AMD GPU)":  # fits neither device
        return
    other = dataclasses.replace(request, device="gpu" if device == "cpu" else "cpu",
                                driver="550.54.15" if device == "cpu" else None)
    _, fitting = B.dry_run(other, facts=no_probe)  # the index fits the other device: no word
    assert not any("adds the wheel index" in note for note in fitting), fitting
