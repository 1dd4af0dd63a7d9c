"""The built-in project from a dlbox that is installed, not run from its checkout.

Found by review of dlbox installed from a wheel: `dlbox image build` outside a project said
to pass a dlbox checkout as PROJECT_DIR, but a checkout so passed was read as any pyproject
project (no `notebook` extra, so no JupyterLab for `dlbox notebook --container`; CMD
python3; the whole folder as context); and the help and the hints of a missing image named
`dlbox image build`, which such a dlbox cannot run without PROJECT_DIR.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dlbox.container import build as B
from dlbox.container import project as P
from dlbox.container.run import RunOptions, missing_image_hint

CHECKOUT = Path(__file__).resolve().parents[2]  # the dlbox checkout these tests run from


def dlbox_tree(folder: Path) -> Path:
    """A copy of what a dlbox source tree (a checkout, an unpacked sdist) holds of the
    built-in project: its pyproject.toml, README.md and the package's __init__.py."""
    (folder / "src" / "dlbox").mkdir(parents=True)
    shutil.copy(CHECKOUT / "pyproject.toml", folder / "pyproject.toml")
    shutil.copy(CHECKOUT / "README.md", folder / "README.md")
    shutil.copy(CHECKOUT / "src" / "dlbox" / "__init__.py", folder / "src" / "dlbox")
    (folder / "notebooks").mkdir()
    (folder / "notebooks" / "demo.ipynb").write_text("{}\n")
    (folder / "scratch.txt").write_text("not in the image\n")  # outside BUILTIN_INCLUDE
    return folder


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """dlbox as installed from a wheel: no checkout above its package."""
    monkeypatch.setattr(P, "_builtin_root", lambda: None)


@pytest.mark.parametrize("from_checkout", [True, False])
def test_a_dlbox_tree_passed_as_project_dir_is_the_builtin_project(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, from_checkout: bool) -> None:
    tree = dlbox_tree(tmp_path / "dlbox-0.1.0")
    if not from_checkout:
        monkeypatch.setattr(P, "_builtin_root", lambda: None)
    project = P.detect_project(tree)
    assert project.kind == "builtin" and project.name == "dlbox"
    assert project.extras == ("notebook",)
    assert any(line.startswith("jupyterlab") for line in project.requirements)
    assert any(line.startswith("ipykernel") for line in project.requirements)
    assert project.command == ("dlbox", "--help")
    assert project.include == P.BUILTIN_INCLUDE
    dockerfile, _ = B.dry_run(B.BuildRequest(project_dir=tree, device="cpu"),
                              facts=lambda: None)
    assert 'CMD ["dlbox", "--help"]' in dockerfile
    assert 'dlbox.project.kind="builtin"' in dockerfile


def test_only_a_dlbox_tree_is_the_builtin_project(tmp_path: Path) -> None:
    # named dlbox, but without dlbox's package: a project of its own
    named = tmp_path / "named"
    named.mkdir()
    (named / "pyproject.toml").write_text('[project]\nname = "dlbox"\nversion = "1"\n')
    assert P.detect_project(named).kind == "pyproject"
    # dlbox's package, under another project's name: that project's
    other = dlbox_tree(tmp_path / "other")
    text = (other / "pyproject.toml").read_text().replace('name = "dlbox"', 'name = "fork"', 1)
    (other / "pyproject.toml").write_text(text)
    assert P.detect_project(other).kind == "pyproject"


def test_the_running_checkout_is_still_the_builtin_project() -> None:
    assert P.detect_project(None).root == CHECKOUT
    assert P.detect_project(CHECKOUT).kind == "builtin"


def test_image_build_outside_a_project_names_a_checkout_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        installed: None) -> None:
    from dlbox.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["image", "build", "--cpu", "--dry-run"]) != 0
    err = capsys.readouterr().err
    assert "dlbox image build DLBOX_CHECKOUT" in err, err


def test_missing_image_hints_name_a_checkout_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installed: None) -> None:
    from dlbox.jupyter.container import builtin_build_command

    monkeypatch.chdir(tmp_path)
    bare = missing_image_hint(None, RunOptions(image="dlbox:latest"))
    assert "dlbox image build DLBOX_CHECKOUT" in bare, bare
    named = missing_image_hint(None, RunOptions(image="dlbox:latest", named=True))
    assert "dlbox image build DLBOX_CHECKOUT --tag dlbox:latest" in named, named
    for tag in ("dlbox", "dlbox:gpu"):  # re-review: only dlbox:latest was the built-in's
        named = missing_image_hint(None, RunOptions(image=tag, named=True))
        assert f"dlbox image build DLBOX_CHECKOUT --tag {tag}" in named, named
        assert "docker pull" not in named
    assert "dlbox image build DLBOX_CHECKOUT --cpu" in builtin_build_command()
    (tmp_path / "requirements.txt").write_text("numpy\n")  # a project here: the same
    assert "dlbox image build DLBOX_CHECKOUT --cpu" in builtin_build_command()


def test_the_hints_are_unchanged_from_a_checkout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dlbox.jupyter.container import builtin_build_command

    monkeypatch.chdir(tmp_path)
    assert missing_image_hint(None, RunOptions(image="dlbox:latest")) == (
        "build it first: dlbox image build (or pass --tag IMAGE)")
    assert builtin_build_command() == "`dlbox image build --cpu`"


def test_the_help_says_where_the_builtin_project_comes_from(
        capsys: pytest.CaptureFixture[str]) -> None:
    from dlbox.cli import main

    with pytest.raises(SystemExit):
        main(["image", "build", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "checkout" in text
