"""What a built wheel of dlbox carries: every package under src/, its data files, and the
notebook, which `dlbox notebook` then finds in an installed (not editable) dlbox."""

from __future__ import annotations

import os
import subprocess
import sys
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


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # A copy of the tracked files, so the build's own egg-info and build/ stay out of the repo.
    source = tmp_path_factory.mktemp("source")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                             capture_output=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "--disable-pip-version-check", "-w", str(out),
                    str(source)], check=True, capture_output=True)
    (built,) = out.glob("dlbox-*.whl")
    return built


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
