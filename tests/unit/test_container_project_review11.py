"""Review 11 on reading a project: other tools' files beside a requirements.txt (cog.yaml,
repo2docker's runtime.txt, postBuild, start), misspelled [project] keys, and a framework pin
whose local label (+cu121) the build for the target replaces."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from test_container_project_input import dry_run_cli, write

from dlbox.container import build as B
from dlbox.container import framework as F
from dlbox.container.context import scan_wheelhouse
from dlbox.container.lock import write_lock
from dlbox.container.project import detect_project
from dlbox.errors import UsageError
from dlbox.hostenv.facts import HostFacts
from dlbox.hostenv.resolve import Target

COG_YAML = """\
build:
  python_version: "3.12"
  python_packages:
    - "six==1.16.0"
  system_packages:
    - "libsndfile1"
    - ffmpeg   # audio
  run:
    - "echo hi"
    - command: pip install extra
      mounts:
        - type: secret
predict: "predict.py:Predictor"
"""


# ---- cog.yaml and repo2docker files beside a requirements.txt --------------------------------

def _plan_notes(root: Path) -> tuple[str, ...]:
    """The project's notes as a --cpu build of `root` says them (no lock: dlbox's base)."""
    return B.plan(B.BuildRequest(project_dir=root, device="cpu"), facts=no_probe).project.notes


def test_cog_yaml_beside_requirements_names_what_is_not_done(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: cog.yaml (system_packages, run, python_version) beside a
    requirements.txt was ignored without a word: libsndfile1 not in the image, the run steps
    not run, the base image's Python used."""
    write(tmp_path / "requirements.txt", "six==1.16.0\n")
    write(tmp_path / "cog.yaml", COG_YAML)
    write(tmp_path / "apt.txt", "ffmpeg\n")  # already listed: not named again
    project = detect_project(tmp_path)
    notes = project.notes
    assert project.python_requests == (("cog.yaml", "3.12"),)  # said once the base is known
    assert any(note.startswith("cog.yaml (Cog's) is not read: the image gets the packages "
                               "of requirements.txt") for note in notes), notes
    system = [note for note in notes if "system_packages" in note]
    assert len(system) == 1 and "libsndfile1" in system[0] and "apt.txt" in system[0]
    assert "ffmpeg" not in system[0]
    assert any("build.run" in note and "2 steps" in note and "not run" in note
               for note in notes), notes
    notes = _plan_notes(tmp_path)  # the build's, on dlbox's default base image
    assert any("python_version" in note and "3.12" in note
               and "--base-image python:3.12-slim-bookworm" in note for note in notes), notes
    code, err = dry_run_cli([str(tmp_path)], capsys)  # the dry run says them
    assert code == 0 and "# cog.yaml's build.system_packages (libsndfile1)" in err


def test_cog_yaml_alone_names_run_steps_and_python_version(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: with cog.yaml alone, the hint left out build.run and
    build.python_version."""
    write(tmp_path / "cog.yaml", COG_YAML)
    code, err = dry_run_cli([str(tmp_path)], capsys)
    assert code == 2
    hint = next(line for line in err.splitlines() if line.startswith("hint: "))
    assert "build.run" in hint and "--base-image python:3.12-slim-bookworm" in hint


def test_runtime_txt_python_is_named(tmp_path: Path) -> None:
    """Found by review: runtime.txt `python-3.12` beside a requirements.txt built on the
    base image's 3.11 without a word."""
    write(tmp_path / "requirements.txt", "six==1.16.0\n")
    write(tmp_path / "runtime.txt", "python-3.12\n")
    assert detect_project(tmp_path).python_requests == (("runtime.txt", "3.12"),)
    notes = _plan_notes(tmp_path)
    assert any(note.startswith("runtime.txt (repo2docker's) asks for Python 3.12")
               and "--base-image python:3.12-slim-bookworm" in note for note in notes), notes


@pytest.mark.parametrize("name", ["postBuild", "start"])
def test_repo2docker_scripts_are_said_not_to_run(tmp_path: Path, name: str) -> None:
    """Found by review: repo2docker's postBuild and start were not run, and nothing said so."""
    write(tmp_path / "requirements.txt", "six==1.16.0\n")
    write(tmp_path / name, "#!/bin/bash\necho hi\n")
    notes = detect_project(tmp_path).notes
    assert any(note.startswith(f"{name} (repo2docker's) is not run") for note in notes), notes


# ---- misspelled [project] keys -----------------------------------------------------------------

@pytest.mark.parametrize("key, closest", [("dependecies", "dependencies"),
                                          ("optional-dependecies", "optional-dependencies"),
                                          ("requires_python", "requires-python")])
def test_a_misspelled_project_key_is_refused_naming_the_closest(
        tmp_path: Path, key: str, closest: str) -> None:
    """Found by review: `dependecies` passed the dry run, and the real build failed 1.5 min
    later in setuptools; `optional-dependecies` made --extras say "no extras"."""
    write(tmp_path / "pyproject.toml",
          f'[project]\nname = "mypkg"\nversion = "0.1"\n{key} = ["six"]\n')
    with pytest.raises(UsageError) as raised:
        detect_project(tmp_path)
    assert "pyproject.toml" in raised.value.message and repr(key) in raised.value.message
    assert raised.value.hint is not None and closest in raised.value.hint


def test_an_unknown_project_key_without_a_close_match_names_the_table(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml",
          '[project]\nname = "mypkg"\nversion = "0.1"\nzzz = 1\n')
    with pytest.raises(UsageError) as raised:
        detect_project(tmp_path)
    assert "'zzz'" in raised.value.message
    assert raised.value.hint is not None and "[tool." in raised.value.hint


def test_known_project_keys_pass(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml",
          '[project]\nname = "mypkg"\nversion = "0.1"\ndescription = "d"\nkeywords = ["a"]\n'
          'dependencies = ["six"]\n[project.urls]\nHome = "https://example.org"\n'
          '[project.optional-dependencies]\nviz = ["rich"]\n')
    assert "rich" in detect_project(tmp_path, extras=("viz",)).requirements


# ---- a framework pin with a local label ---------------------------------------------------------

def no_probe() -> HostFacts:
    raise AssertionError("this request must not probe the host")


def cpu_target() -> Target:
    return B.choose_target(B.BuildRequest(device="cpu"), facts=no_probe)


def test_a_cuda_local_label_replaced_for_a_cpu_target_is_said() -> None:
    """Found by review: torch==2.13.0+cu121 on a CPU target said "which admits it" and built
    2.13.0+cpu: under PEP 440 ==2.13.0+cu121 does not admit +cpu."""
    from packaging.specifiers import SpecifierSet

    pins = [("torch==2.13.0+cu121", SpecifierSet("==2.13.0"))]
    build = F.resolve_framework("torch", cpu_target(), pins=pins)
    assert build.version.split("+")[0] == "2.13.0" and build.variant == "cpu"
    said = [reason for reason in build.reasons if "+cu121" in reason and "+cpu" in reason]
    assert said and "replaced" in said[0] and "--gpu" in said[0], build.reasons


def test_the_wheelhouse_reason_does_not_say_a_local_pin_admits_another_label(
        tmp_path: Path) -> None:
    from packaging.specifiers import SpecifierSet

    (tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    pins = [("torch==2.13.0+cu121", SpecifierSet("==2.13.0"))]
    build = F.resolve_framework("torch", cpu_target(), scan_wheelhouse(tmp_path), pins=pins)
    assert any("wheelhouse" in reason for reason in build.reasons), build.reasons
    assert not any(reason.endswith("which admits it") for reason in build.reasons)
    assert any("+cu121" in reason and "replaced" in reason for reason in build.reasons)



# ---- review 11b: unknown [project] keys per build backend, Python notes and --base-image,
# ---- cog.yaml flow lists and a byte order mark -------------------------------------------------

def pyproject_with(key: str, backend: str | None) -> str:
    system = (f'[build-system]\nrequires = ["x"]\nbuild-backend = "{backend}"\n'
              if backend else "")
    return f'{system}[project]\nname = "mypkg"\nversion = "0.1"\n{key} = ["pytest"]\n'


@pytest.mark.parametrize("backend", [None, "setuptools.build_meta",
                                     "setuptools.build_meta:__legacy__", "flit_core.buildapi"])
def test_an_unknown_project_key_is_refused_for_a_strict_backend(
        tmp_path: Path, backend: str | None) -> None:
    """setuptools (also without a [build-system]) and flit_core refuse unknown [project]
    keys in the real build: refused now."""
    write(tmp_path / "pyproject.toml", pyproject_with("dependecies", backend))
    with pytest.raises(UsageError) as raised:
        detect_project(tmp_path)
    assert "'dependecies'" in raised.value.message
    assert raised.value.hint is not None and "'dependencies'" in raised.value.hint


@pytest.mark.parametrize("backend", ["hatchling.build", "pdm.backend",
                                     "poetry.core.masonry.api"])
def test_an_unknown_project_key_is_a_note_for_another_backend(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str) -> None:
    """Found by review: hatchling builds a [project] with `dev-dependencies`, which dlbox
    had started to refuse for every backend; now a note says dlbox ignores it."""
    write(tmp_path / "pyproject.toml", pyproject_with("dependecies", backend))
    project = detect_project(tmp_path)
    assert "pytest" not in " ".join(project.requirements)
    said = [note for note in project.notes if "'dependecies'" in note]
    assert len(said) == 1 and "ignores it" in said[0] and "'dependencies'" in said[0], said
    code, err = dry_run_cli([str(tmp_path)], capsys)
    assert code == 0 and "'dependecies'" in err


@pytest.mark.parametrize("key", ["dev-dependencies", "dependency-groups"])
@pytest.mark.parametrize("backend", [None, "hatchling.build"])
def test_dev_dependencies_point_at_dependency_groups_not_dependencies(
        tmp_path: Path, key: str, backend: str | None) -> None:
    """Found by review: the hint for `dev-dependencies` said to rename it to
    `dependencies`, which would install dev tools in the image."""
    write(tmp_path / "pyproject.toml", pyproject_with(key, backend))
    if backend is None:
        with pytest.raises(UsageError) as raised:
            detect_project(tmp_path)
        said = raised.value.hint or ""
    else:
        said = next(note for note in detect_project(tmp_path).notes if repr(key) in note)
    assert "[dependency-groups]" in said and "rename" not in said, said
    assert "'dependencies'" not in said, said


@pytest.mark.parametrize("file, text", [("runtime.txt", "python-3.12\n"),
                                        ("cog.yaml", 'build:\n  python_version: "3.12"\n')])
def test_the_python_note_follows_the_base_image_given(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], file: str, text: str) -> None:
    """Found by review: with --base-image python:3.12-slim-bookworm, the note on
    runtime.txt's (or cog.yaml's) Python 3.12 still said to pass that very flag."""
    write(tmp_path / "requirements.txt", "six==1.16.0\n")
    write(tmp_path / file, text)
    code, err = dry_run_cli([str(tmp_path), "--base-image", "python:3.12-slim-bookworm"],
                            capsys)
    said = [line for line in err.splitlines() if "3.12" in line and file in line]
    assert code == 0 and len(said) == 1, err
    assert "python:3.12-slim-bookworm has Python 3.12" in said[0], said
    assert "pass --base-image" not in said[0] and "3.11" not in said[0], said
    code, err = dry_run_cli([str(tmp_path), "--base-image", "python:3.10-slim"], capsys)
    said = [line for line in err.splitlines() if "3.12" in line and file in line]
    assert code == 0 and len(said) == 1, err
    assert "3.10 on python:3.10-slim" in said[0], said
    assert "pass --base-image python:3.12-slim-bookworm" in said[0], said


def test_the_python_note_follows_the_base_image_of_the_lock(tmp_path: Path) -> None:
    """The base image a lock entry was made on is the one the build uses."""
    write(tmp_path / "requirements.txt", "six==1.16.0\n")
    write(tmp_path / "runtime.txt", "python-3.12\n")
    project = detect_project(tmp_path)
    entry = B.provisional_entry(project, F.resolve_framework("torch", cpu_target()),
                                "torch-cpu", "python:3.12-slim-bookworm", "3.12.4")
    entry = dataclasses.replace(entry, pinned=("six==1.16.0", f"torch=={entry.framework_version}"))
    write_lock(tmp_path / "dlbox.lock", {"torch-cpu": entry})
    p = B.plan(B.BuildRequest(project_dir=tmp_path, device="cpu"), facts=no_probe)
    assert p.entry is not None
    said = [note for note in p.project.notes if note.startswith("runtime.txt")]
    assert len(said) == 1 and "python:3.12-slim-bookworm has Python 3.12" in said[0], said


def test_cog_yaml_flow_list_over_lines_and_a_byte_order_mark(tmp_path: Path) -> None:
    """Found by review: a `[` list over several lines was read as [], and a file starting
    with a byte order mark as {}."""
    from dlbox.container.project import read_cog_build

    write(tmp_path / "a.yaml", 'build:\n  gpu: true\n  system_packages: [\n    "ffmpeg",\n'
                               '    "libsm6"  # video\n  ]\n  python_version: "3.10"\n'
                               'predict: "predict.py:Predictor"\n')
    assert read_cog_build(tmp_path / "a.yaml") == {
        "gpu": "true", "system_packages": ["ffmpeg", "libsm6"], "python_version": "3.10"}
    (tmp_path / "b.yaml").write_bytes(
        b'\xef\xbb\xbfbuild:\n  python_version: "3.12"\n  system_packages:\n    - ffmpeg\n')
    assert read_cog_build(tmp_path / "b.yaml") == {"python_version": "3.12",
                                                   "system_packages": ["ffmpeg"]}
