"""What a built wheel of dlbox carries: every package under src/, its data files, and the
notebook, which `dlbox notebook` then finds in an installed (not editable) dlbox; its license
(PEP 639); and what the sdist carries besides: the license, docs, tests, scripts, no caches."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import tomllib
from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "first_pytorch_classifier.ipynb"


def test_the_package_list_names_every_package_under_src() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = config["tool"]["setuptools"]["packages"]
    assert sorted(listed) == sorted([*find_packages(str(ROOT / "src")), "dlbox.notebooks"])


# The build backend's hooks, called as pip calls them without build isolation (the venv's
# setuptools): their output (setuptools' warnings, shown whatever PYTHONWARNINGS says) is
# the test's to read.
BUILD = ("import sys; from setuptools import build_meta; "
         "print(getattr(build_meta, sys.argv[1])(sys.argv[2]))")


def build(hook: str, source: Path, out: Path) -> tuple[Path, str]:
    """(the built file, the build's output) of `build_meta.<hook>` run in `source`."""
    done = subprocess.run([sys.executable, "-W", "default", "-c", BUILD, hook, str(out)],
                          cwd=source, check=True, capture_output=True, text=True)
    return out / done.stdout.strip().splitlines()[-1], done.stdout + done.stderr


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout's files (tracked, or new and not ignored), so the build's own
    egg-info and build/ stay out of the repo; with caches, as a used checkout has them."""
    copy = tmp_path_factory.mktemp("source")
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)  # with its mode: scripts stay executable
    for cache in ("tests/unit/__pycache__/test_x.cpython-311.pyc", "tests/stray.pyc",
                  "scripts/.cache/x", "docs/.venv/bin/python", ".venv/bin/python",
                  "tests/.pytest_cache/v/x", "benchmarks/__pycache__/x.pyc"):
        (copy / cache).parent.mkdir(parents=True, exist_ok=True)
        (copy / cache).write_bytes(b"cache")
    return copy


@pytest.fixture(scope="module")
def sdist_build(source: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return build("build_sdist", source, tmp_path_factory.mktemp("sdist"))


@pytest.fixture(scope="module")
def wheel_build(source: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return build("build_wheel", source, tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def wheel(wheel_build: tuple[Path, str]) -> Path:
    return wheel_build[0]


def sdist_names(sdist: Path) -> dict[str, tarfile.TarInfo]:
    """The sdist's members by their path under its top folder (dlbox-0.1.0/)."""
    with tarfile.open(sdist) as archive:
        return {member.name.partition("/")[2]: member for member in archive.getmembers()
                if member.isfile()}


def test_the_sdist_carries_the_license_docs_tests_and_scripts(
        sdist_build: tuple[Path, str]) -> None:
    names = sdist_names(sdist_build[0])
    for name in ("LICENSE", "README.md", "pyproject.toml", "docs/training.md",
                 "tests/conftest.py", "tests/unit/test_packaging.py",
                 "tests/fixtures/hosts/README.md", "scripts/setup.sh", "scripts/lib.sh",
                 "benchmarks/image_build.py", ".ci/run", f"notebooks/{NOTEBOOK}",
                 "src/dlbox/__init__.py"):
        assert name in names, name
    assert names["LICENSE"].mode & 0o111 == 0
    assert names["scripts/setup.sh"].mode & 0o111  # runnable, as in the checkout
    assert names[".ci/run"].mode & 0o111


def test_the_sdist_carries_no_caches(sdist_build: tuple[Path, str]) -> None:
    caches = [name for name in sdist_names(sdist_build[0])
              if name.endswith(".pyc") or {"__pycache__", ".cache", ".venv", ".pytest_cache",
                                           "build", "dist"} & set(name.split("/")[:-1])]
    assert caches == []


def test_the_wheel_declares_its_license_and_carries_its_text(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("dlbox-0.1.0.dist-info/METADATA").decode().split("\n\n")[0]
        fields = metadata.splitlines()
        assert "License-Expression: MIT" in fields
        assert "License-File: LICENSE" in fields
        assert not any(line.startswith(("License: ", "Classifier: License ::"))
                       for line in fields)  # PEP 639: the expression alone
        text = archive.read("dlbox-0.1.0.dist-info/licenses/LICENSE")
    assert text == (ROOT / "LICENSE").read_bytes()
    assert text.startswith(b"MIT License") and b"Copyright (c) 2026 the dlbox developers" in text


def test_the_wheel_holds_only_the_package_and_its_metadata(wheel: Path) -> None:
    # what MANIFEST.in adds to the sdist (docs, tests, scripts) stays out of the wheel
    names = zipfile.ZipFile(wheel).namelist()
    assert [name for name in names
            if not name.startswith(("dlbox/", "dlbox-0.1.0.dist-info/"))] == []
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)


def test_building_gives_no_deprecation_warning_about_the_license(
        sdist_build: tuple[Path, str], wheel_build: tuple[Path, str]) -> None:
    # setuptools >= 77 deprecates `license = { text = ... }` (to fail from 2027-Feb-18)
    for _, output in (sdist_build, wheel_build):
        warned = [line for line in output.splitlines()
                  if "SetuptoolsDeprecationWarning" in line and "license" in line.lower()]
        assert warned == [], output


def test_the_wheel_built_from_the_sdist_is_the_wheel_of_the_checkout(
        sdist_build: tuple[Path, str], wheel: Path, tmp_path: Path) -> None:
    with tarfile.open(sdist_build[0]) as archive:
        if hasattr(tarfile, "data_filter"):  # Python 3.10.12, 3.11.4 and later
            archive.extractall(tmp_path, filter="data")
        else:
            archive.extractall(tmp_path)
    (unpacked,) = (path for path in tmp_path.iterdir() if path.is_dir())
    out = tmp_path / "out"
    out.mkdir()
    rebuilt, _ = build("build_wheel", unpacked, out)
    assert sorted(zipfile.ZipFile(rebuilt).namelist()) == sorted(
        zipfile.ZipFile(wheel).namelist())


def test_the_dev_extra_asks_for_what_the_build_system_requires() -> None:
    # the tests build without isolation, with the venv's setuptools and packaging
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    build_system = config["build-system"]["requires"]
    assert "setuptools>=77" in build_system  # 77: PEP 639 license expressions
    assert "packaging>=24.2" in build_system  # packaging.licenses, which setuptools imports
    dev = config["project"]["optional-dependencies"]["dev"]
    assert [line for line in build_system if line != "wheel"] == [
        line for line in dev if line.startswith(("setuptools", "packaging"))]


def test_the_wheel_carries_the_notebook_and_the_data_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert f"dlbox/notebooks/{NOTEBOOK}" in names
    assert "dlbox/py.typed" in names
    assert any(name.startswith("dlbox/hostenv/matrix/") and name.endswith(".json")
               for name in names)
    assert any(name.startswith("dlbox/container/templates/") for name in names)
    assert "dlbox/cli/__init__.py" in names


def test_an_installed_dlbox_serves_a_user_copy_of_its_notebook(wheel: Path,
                                                                tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--disable-pip-version-check", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"  # no ./notebooks, and no checkout above the install
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "XDG_DATA_HOME": str(tmp_path / "data")}
    served = subprocess.run(
        [sys.executable, "-c", "import dlbox; from dlbox.jupyter.notebooks import "
         "resolve_notebook_dir; print(dlbox.__file__); print(resolve_notebook_dir(None))"],
        cwd=elsewhere, env=env, check=True, capture_output=True, text=True).stdout.split()
    assert served[0].startswith(str(target))  # the installed copy, not the checkout's
    folder = Path(served[1])
    assert folder.is_relative_to(tmp_path / "data")
    assert (folder / NOTEBOOK).read_bytes() == (ROOT / "notebooks" / NOTEBOOK).read_bytes()


def test_no_message_sends_an_installed_dlbox_to_a_scripts_folder_it_lacks() -> None:
    # a wheel carries no scripts/ (review: the hint of an unpullable base image said "build
    # it (scripts/build-base-image.sh)"): a message naming one says it is a checkout's
    said = []
    for path in sorted((ROOT / "src" / "dlbox").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef
                                    | ast.AsyncFunctionDef)
                      and node.body and isinstance(node.body[0], ast.Expr)}
        said += [f"{path.relative_to(ROOT)}:{node.lineno}: {node.value}"
                 for node in ast.walk(tree)
                 if isinstance(node, ast.Constant) and isinstance(node.value, str)
                 and id(node) not in docstrings and "scripts/" in node.value
                 and "checkout" not in node.value]
    assert said == []
