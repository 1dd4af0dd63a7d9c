"""The build context: .dockerignore rules, what the archive holds, wheelhouse selection."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from dlbox.container import spec as S
from dlbox.container.context import (
    Distribution,
    iter_project_files,
    scan_wheelhouse,
    wheels_for_pins,
    write_context,
)
from dlbox.container.dockerignore import (
    DEFAULT_PATTERNS,
    IgnoreMatcher,
    parse_dockerignore,
    project_patterns,
    render_dockerignore,
)
from dlbox.container.project import detect_project
from dlbox.errors import UsageError

# ---- default patterns --------------------------------------------------------------------

DEFAULT = IgnoreMatcher(DEFAULT_PATTERNS)


@pytest.mark.parametrize("path", [
    ".git", ".git/config", ".git/objects/ab/cdef",
    "data", "data/cifar-10-batches-py/data_batch_1",
    "runs", "runs/2026-01-01_resnet/checkpoints/last.pt", "runs/x/model_weights.pt",
    "checkpoints/last.pt", "experiments/a/checkpoints/epoch3.pt",
    ".venv/bin/python", "venv/lib/site.py",
    "src/pkg/__pycache__/mod.cpython-311.pyc", "src/pkg/mod.pyc",
    "notebooks/.ipynb_checkpoints/x.ipynb",
    "build/lib/x.py", "dist/x.whl", "src/x.egg-info/PKG-INFO",
    ".env", "config/prod.env", "wandb/run-1/files", "mlruns/0/meta.yaml",
    "lightning_logs/version_0/hparams.yaml", ".pytest_cache/v", "dlbox.lock.abc.tmp",
    # weights anywhere, not only in checkpoints folders
    "model.pt", "weights/best.pth", "outputs/epoch=3.ckpt", "hf/model.safetensors",
])
def test_default_patterns_leave_out(path: str) -> None:
    assert DEFAULT.ignored(path), path


@pytest.mark.parametrize("path", [
    "train.py", "requirements.txt", "pyproject.toml", "dlbox.lock", "README.md",
    "src/pkg/data/__init__.py",  # `data` is only the top-level folder
    "src/pkg/runs.py", "src/dataset.py", "configs/data.yaml", ".dockerignore",
    "src/pkg/environment.py",
])
def test_default_patterns_keep(path: str) -> None:
    assert not DEFAULT.ignored(path), path


# ---- Docker's pattern semantics ----------------------------------------------------------

def test_star_does_not_cross_folders_and_double_star_does() -> None:
    m = IgnoreMatcher(["*.log", "docs/**/*.png", "a?c"])
    assert m.ignored("x.log") and not m.ignored("logs/x.log")
    assert m.ignored("docs/x.png") and m.ignored("docs/a/b/x.png")
    assert not m.ignored("img/x.png")
    assert m.ignored("abc") and not m.ignored("abbc") and not m.ignored("a/c")
    anywhere = IgnoreMatcher(["**/*.log"])
    assert anywhere.ignored("x.log") and anywhere.ignored("a/b/x.log")
    assert IgnoreMatcher(["a/**"]).ignored("a/b/c")


def test_folder_pattern_excludes_everything_below() -> None:
    m = IgnoreMatcher(["assets"])
    assert m.ignored("assets") and m.ignored("assets/big/file.bin")
    assert not m.ignored("src/assets/file.bin") and not m.ignored("assets2")


def test_negation_and_last_match_wins() -> None:
    m = IgnoreMatcher(["*.md", "!README.md"])
    assert m.ignored("CHANGES.md") and not m.ignored("README.md")
    reverse = IgnoreMatcher(["!README.md", "*.md"])
    assert reverse.ignored("README.md")
    keep_one = IgnoreMatcher(["data", "!data/labels.csv"])
    assert keep_one.ignored("data/images/1.png") and not keep_one.ignored("data/labels.csv")
    assert keep_one.has_exceptions and not IgnoreMatcher(["data"]).has_exceptions


def test_character_classes_and_escapes() -> None:
    m = IgnoreMatcher(["file[0-9].txt", "not[^a].x", "lit\\*.y"])
    assert m.ignored("file3.txt") and not m.ignored("filex.txt")
    assert m.ignored("notb.x") and not m.ignored("nota.x")
    assert m.ignored("lit*.y") and not m.ignored("litz.y")


def test_a_bang_in_a_character_class_is_a_character_as_in_docker() -> None:
    """Found by review: `[!a]*.py` was read as "not a" (as a shell or .gitignore reads it)
    and shipped a.py; Docker's pattern matcher (Go's filepath.Match syntax, where only `^`
    negates a class) reads it as the class of '!' and 'a', and leaves a.py out."""
    m = IgnoreMatcher(["[!a]*.py"])
    assert m.ignored("a.py") and m.ignored("!x.py")
    assert not m.ignored("b.py")


def test_patterns_are_cleaned_like_docker() -> None:
    m = IgnoreMatcher(["/secrets/", "./cache//x"])
    assert m.ignored("secrets/key.pem") and m.ignored("cache/x")
    assert parse_dockerignore("# c\n\n  /out/  \n!./keep.txt\n! spaced\n") == (
        "out", "!keep.txt", "!spaced")


def test_prune_only_when_nothing_below_can_come_back() -> None:
    m = IgnoreMatcher(["data", "!data/labels.csv"])
    assert not m.prune("data")  # the exception reaches into it: walk it
    assert IgnoreMatcher(["data"]).prune("data")
    assert not IgnoreMatcher(["data"]).prune("src")
    assert not IgnoreMatcher(["runs", "!**/keep.txt"]).prune("runs")


def test_render_dockerignore_with_prefix() -> None:
    text = render_dockerignore(("data", "!data/labels.csv", "/abs"), prefix="project/")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == ["project/data", "!project/data/labels.csv", "project/abs"]
    assert render_dockerignore().splitlines()[2] == ".git"


def test_project_dockerignore_is_applied_after_the_defaults(tmp_path: Path) -> None:
    assert project_patterns(tmp_path) == DEFAULT_PATTERNS
    (tmp_path / ".dockerignore").write_text("*.csv\n!data/small.csv\n")
    patterns = project_patterns(tmp_path)
    assert patterns[: len(DEFAULT_PATTERNS)] == DEFAULT_PATTERNS
    assert patterns[len(DEFAULT_PATTERNS):] == ("*.csv", "!data/small.csv")


# ---- the archive for a real project folder -----------------------------------------------

def write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    write(root / "requirements.txt", "numpy>=1.24\ntorch>=2.0\n")
    write(root / "train.py", "print('train')\n")
    write(root / "src" / "mypkg" / "__init__.py")
    write(root / "src" / "mypkg" / "data" / "__init__.py")  # nested "data": kept
    write(root / "src" / "mypkg" / "__pycache__" / "x.cpython-311.pyc")
    write(root / ".git" / "config", "[core]\n")
    write(root / ".git" / "objects" / "ab" / "cdef")
    write(root / "data" / "cifar-10-batches-py" / "data_batch_1", "0" * 1000)
    write(root / "runs" / "r1" / "metrics.json", "{}")
    write(root / "runs" / "r1" / "checkpoints" / "last.pt", "weights")
    write(root / "checkpoints" / "best.pt", "weights")
    write(root / "models" / "checkpoints" / "epoch1.pt", "weights")
    write(root / ".venv" / "bin" / "python")
    write(root / ".env", "SECRET=1\n")
    return root


def archive_names(tar_path: Path) -> list[str]:
    with tarfile.open(tar_path) as tar:
        return tar.getnames()


def test_iter_project_files_leaves_out_ignored(project_dir: Path) -> None:
    project = detect_project(project_dir)
    rels = [rel for rel, _ in iter_project_files(project)]
    assert sorted(rels) == [
        "models",  # kept as an (empty) folder: only its checkpoints/ is left out
        "requirements.txt", "src", "src/mypkg", "src/mypkg/__init__.py", "src/mypkg/data",
        "src/mypkg/data/__init__.py", "train.py",
    ]
    assert rels == [rel for rel, _ in iter_project_files(project)]  # same order every time


def test_virtual_environments_are_left_out_whatever_their_name(project_dir: Path) -> None:
    # `python -m venv env` (or a venv below the top, a conda env) went into the image: only
    # `.venv` and `venv` at the top were left out, and such a folder holds the host's whole
    # site-packages (gigabytes with torch).
    write(project_dir / "env" / "pyvenv.cfg", "home = /usr/bin\n")
    write(project_dir / "env" / "lib" / "python3.11" / "site-packages" / "torch" / "x.py")
    write(project_dir / "tools" / ".venv" / "pyvenv.cfg", "home = /usr/bin\n")
    write(project_dir / "tools" / "lint.py")
    write(project_dir / "envs" / "py311" / "conda-meta" / "history")
    write(project_dir / "envs" / "py311" / "bin" / "python")
    write(project_dir / "environment" / "settings.py")  # a folder named like one: kept
    rels = {rel for rel, _ in iter_project_files(detect_project(project_dir))}
    assert {"tools", "tools/lint.py", "envs", "environment/settings.py"} <= rels
    assert not any(rel.startswith(("env/", "tools/.venv", "envs/py311")) or rel == "env"
                   for rel in rels)


def test_write_context_archive(project_dir: Path, tmp_path: Path) -> None:
    project = detect_project(project_dir)
    tar_path = tmp_path / "context.tar"
    summary = write_context(tar_path, project, "FROM scratch\n", "numpy==2.1.0\n")
    names = archive_names(tar_path)
    assert names[:4] == ["Dockerfile", ".dockerignore", "dlbox", S.CONTEXT_LOCK]
    project_names = sorted(n for n in names if n.startswith("project/"))
    assert project_names == sorted([
        "project/models", "project/requirements.txt", "project/train.py", "project/src",
        "project/src/mypkg",
        "project/src/mypkg/__init__.py", "project/src/mypkg/data",
        "project/src/mypkg/data/__init__.py",
    ])
    for name in names:
        assert not name.endswith(".pt"), name
        assert "/.git" not in name and "/data/cifar" not in name and "/runs" not in name
        assert "__pycache__" not in name and ".venv" not in name and not name.endswith(".env")
    with tarfile.open(tar_path) as tar:
        assert tar.extractfile("Dockerfile").read() == b"FROM scratch\n"  # type: ignore[union-attr]
        assert tar.extractfile(S.CONTEXT_LOCK).read() == b"numpy==2.1.0\n"  # type: ignore[union-attr]
        ignore = tar.extractfile(".dockerignore").read().decode()  # type: ignore[union-attr]
        member = tar.getmember("project/train.py")
        assert (member.uid, member.gid, member.uname) == (0, 0, "")
    assert "project/.git\n" in ignore and "project/data\n" in ignore
    assert summary.files == 4  # the project's regular files
    assert summary.project_bytes == sum(
        (project_dir / rel).stat().st_size
        for rel in ("requirements.txt", "train.py", "src/mypkg/__init__.py",
                    "src/mypkg/data/__init__.py"))
    assert summary.largest[0][0] == "requirements.txt"


def test_project_dockerignore_can_exclude_and_re_include(project_dir: Path,
                                                         tmp_path: Path) -> None:
    write(project_dir / "data" / "labels.csv", "a,b\n")
    write(project_dir / "notes" / "big.bin", "0" * 100)
    (project_dir / ".dockerignore").write_text("notes\n!data/labels.csv\n")
    project = detect_project(project_dir)
    rels = {rel for rel, _ in iter_project_files(project)}
    assert "data/labels.csv" in rels  # re-included by the project
    assert "data/cifar-10-batches-py/data_batch_1" not in rels  # still out
    assert not any(rel.startswith("notes") for rel in rels)
    assert ".dockerignore" in rels
    names = archive_names(write_context(tmp_path / "c.tar", project, "", "").path)
    assert "project/data/labels.csv" in names


def test_include_list_limits_top_level_entries(project_dir: Path) -> None:
    import dataclasses

    project = dataclasses.replace(detect_project(project_dir), include=("src",))
    rels = [rel for rel, _ in iter_project_files(project)]
    assert rels and all(rel == "src" or rel.startswith("src/") for rel in rels)
    empty = dataclasses.replace(project, include=())
    assert list(iter_project_files(empty)) == []


def test_symlink_is_archived_as_a_link(project_dir: Path, tmp_path: Path) -> None:
    os.symlink("train.py", project_dir / "main.py")
    os.symlink(str(project_dir / "data"), project_dir / "data-link")
    project = detect_project(project_dir)
    tar_path = write_context(tmp_path / "c.tar", project, "", "").path
    with tarfile.open(tar_path) as tar:
        link = tar.getmember("project/main.py")
        assert link.issym() and link.linkname == "train.py"
        # A link to an ignored folder is kept as a link: its target is not copied in.
        assert tar.getmember("project/data-link").issym()
        assert not any(n.startswith("project/data-link/") for n in tar.getnames())


def test_ca_cert_in_context(project_dir: Path, tmp_path: Path) -> None:
    project = detect_project(project_dir)
    pem = write(tmp_path / "ca.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n"
                                     "-----END CERTIFICATE-----")
    tar_path = write_context(tmp_path / "c.tar", project, "", "", ca_cert=pem).path
    with tarfile.open(tar_path) as tar:
        data = tar.extractfile(S.CONTEXT_CA_CERT).read()  # type: ignore[union-attr]
    assert data.endswith(b"-----END CERTIFICATE-----\n")
    with pytest.raises(UsageError, match="no PEM certificate"):
        write_context(tmp_path / "d.tar", project, "", "",
                      ca_cert=write(tmp_path / "bad.der", "binary"))
    with pytest.raises(UsageError, match="cannot read --ca-cert"):
        write_context(tmp_path / "e.tar", project, "", "", ca_cert=tmp_path / "missing.pem")


# ---- wheelhouse ----------------------------------------------------------------------------

def test_scan_wheelhouse_and_pick_wheels_for_pins(tmp_path: Path) -> None:
    house = tmp_path / "wheels"
    for name in ("numpy-2.1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                 "numpy-2.1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
                 "rich-13.7.1-py3-none-any.whl",
                 "torch-2.15.0+cpu-cp311-cp311-linux_x86_64.whl",
                 "Typing_Extensions-4.12.2-py3-none-any.whl",
                 "mylib-0.1.tar.gz",
                 "macos_only-1.0-cp311-cp311-macosx_11_0_arm64.whl",
                 "not-a-wheel.whl", "README.txt"):
        write(house / name)
    (house / "subdir").mkdir()
    dists = scan_wheelhouse(house)
    names = sorted((d.name, d.version) for d in dists)
    assert ("typing-extensions", "4.12.2") in names and ("mylib", "0.1") in names
    assert all(d.path.parent == house for d in dists) and len(dists) == 7
    selected, uncovered = wheels_for_pins(
        dists, ["numpy==2.1.0", "rich==13.7.1", "torch==2.15.0+cpu", "typing_extensions==4.12.2",
                "mylib==0.1", "macos-only==1.0", "pillow==11.0.0", "x @ https://e/x.whl"],
        "3.11.2")
    assert sorted(d.path.name for d in selected) == sorted([
        "numpy-2.1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "rich-13.7.1-py3-none-any.whl",
        "torch-2.15.0+cpu-cp311-cp311-linux_x86_64.whl",
        "Typing_Extensions-4.12.2-py3-none-any.whl", "mylib-0.1.tar.gz"])
    assert uncovered == ("macos-only==1.0", "pillow==11.0.0", "x @ https://e/x.whl")
    with pytest.raises(UsageError):
        scan_wheelhouse(tmp_path / "nope")


def test_distribution_fits_python() -> None:
    path = Path("x.whl")
    abi3 = Distribution(path, "x", "1", frozenset({("cp38", "abi3", "manylinux_2_17_x86_64")}))
    assert abi3.fits_python("3.11") and not abi3.fits_python("3.7")
    cp311 = Distribution(path, "x", "1", frozenset({("cp311", "cp311", "linux_x86_64")}))
    assert cp311.fits_python("3.11.4") and not cp311.fits_python("3.12")
    assert cp311.fits_python(None)
    windows = Distribution(path, "x", "1", frozenset({("py3", "none", "win_amd64")}))
    assert not windows.fits_python("3.11")


def test_copy_project_copies_exactly_what_the_image_gets(project_dir: Path,
                                                        tmp_path: Path) -> None:
    from dlbox.container.context import copy_project

    project = detect_project(project_dir)
    copy = copy_project(project, tmp_path / "copy")
    copied = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*"))
    assert copied == sorted(rel for rel, _ in iter_project_files(project))
    assert (copy / "train.py").read_text() == "print('train')\n"
    assert not (copy / ".git").exists() and not (copy / "runs").exists()
    with pytest.raises(FileExistsError):  # never merges into an existing folder
        copy_project(project, copy)


def test_project_dockerignore_can_bring_a_weight_file_back(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("!weights/backbone.pt\n")
    matcher = IgnoreMatcher(project_patterns(tmp_path))
    assert not matcher.ignored("weights/backbone.pt")
    assert matcher.ignored("weights/other.pt") and matcher.ignored("model.ckpt")


def test_a_dockerignore_that_is_not_utf8_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_bytes(b"data\n\xff\xfe caf\xe9\n")
    with pytest.raises(UsageError, match=r"\.dockerignore is not UTF-8 text") as caught:
        project_patterns(tmp_path)
    assert "UTF-8" in (caught.value.hint or "")


def test_a_package_the_default_patterns_leave_out_gets_a_note(tmp_path: Path) -> None:
    # `data/` (a Python package here, `from data.loader import load`) was left out of the
    # image without a word: the build passed and the image's first run failed.
    from dlbox.container import build as B
    from dlbox.container.context import left_out_packages

    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "data" / "__init__.py").write_text("")
    (root / "data" / "loader.py").write_text("def load():\n    return 1\n")
    (root / "runs").mkdir()  # no package: nothing to say
    (root / "requirements.txt").write_text("numpy\n")
    (root / "train.py").write_text("from data.loader import load\n")
    notes = left_out_packages(root)
    assert len(notes) == 1 and notes[0].startswith("data/ is a Python package")
    assert "!data" in notes[0]
    assert "data/loader.py" not in [rel for rel, _ in iter_project_files(detect_project(root))]
    _, dry_notes = B.dry_run(B.BuildRequest(project_dir=root, device="cpu"),
                             facts=lambda: None)
    assert any(note.startswith("data/ is a Python package") for note in dry_notes), dry_notes

    (root / ".dockerignore").write_text("!data\n")  # the fix the note gives
    assert left_out_packages(root) == []
    assert "data/loader.py" in [rel for rel, _ in iter_project_files(detect_project(root))]
    (root / ".dockerignore").write_text("data\n")  # left out on purpose: no note
    assert left_out_packages(root) == []


def test_weight_files_the_default_patterns_leave_out_get_a_note(tmp_path: Path) -> None:
    """Found by review: a predictor's model.pt, which its code loads, was left out of the
    image without a word: the build passed, and the first run failed (FileNotFoundError)."""
    from dlbox.container import build as B
    from dlbox.container.context import left_out_weights

    root = tmp_path / "proj"
    (root / "models").mkdir(parents=True)
    (root / "runs").mkdir()
    (root / "requirements.txt").write_text("torch\n")
    (root / "predict.py").write_text("import torch\nmodel = torch.load('model.pt')\n")
    for name in ("model.pt", "models/b.safetensors", "models/c.onnx", "models/d.bin",
                 "runs/old.pt"):  # runs/ is left out as a folder: no word on its files
        (root / name).write_bytes(b"w")
    assert left_out_weights(root) == [
        "weight files are left out of the image by default (model.pt, models/b.safetensors, "
        "models/c.onnx and 1 more): mount them at run time, or add the line !model.pt (one "
        "per file) to the project's .dockerignore to ship them"]
    _, notes = B.dry_run(B.BuildRequest(project_dir=root, device="cpu"), facts=lambda: None)
    assert any(note.startswith("weight files are left out") for note in notes), notes
    (root / ".dockerignore").write_text("!model.pt\nmodels\n")  # shipped, or left on purpose
    assert left_out_weights(root) == []
    assert "model.pt" in [rel for rel, _ in iter_project_files(detect_project(root))]


def _linked_project(root: Path) -> None:
    """A project with a config folder and a link inside it that works in the image."""
    (root / "conf").mkdir(parents=True)
    (root / "requirements.txt").write_text("numpy\n")
    (root / "conf" / "local.yaml").write_text("x: 1\n")
    (root / "inside").symlink_to("conf/local.yaml")  # inside: shipped and working


def _link_notes(root: Path) -> list[str]:
    """The dry run's notes about links, sorted."""
    from dlbox.container import build as B

    _, notes = B.dry_run(B.BuildRequest(project_dir=root, device="cpu"), facts=lambda: None)
    return sorted(note for note in notes if " is a link to " in note)


def test_a_link_to_outside_the_project_gets_a_note(tmp_path: Path) -> None:
    """Found by review: links to outside the project (a monorepo's shared config) were
    shipped as links to nothing, without a word; the first run failed, not the build."""
    (tmp_path / "shared.yaml").write_text("lr: 0.1\n")
    root = tmp_path / "proj"
    _linked_project(root)
    (root / "config.yaml").symlink_to(tmp_path / "shared.yaml")  # outside: a note
    (root / "up").symlink_to("../shared.yaml")  # relative, and outside too
    assert _link_notes(root) == [
        f"config.yaml is a link to {tmp_path / 'shared.yaml'}, outside the project: the image "
        "gets the link, not what it points to (copy that into the project, or add "
        "config.yaml to .dockerignore)",
        "up is a link to ../shared.yaml, outside the project: the image gets the link, not "
        "what it points to (copy that into the project, or add up to .dockerignore)"]
    (root / ".dockerignore").write_text("config.yaml\nup\n")  # the fix the note gives
    assert _link_notes(root) == []


def test_links_that_point_at_nothing_in_the_image_get_a_note(tmp_path: Path) -> None:
    """Found by review: an absolute link into the project (its path is another in the image)
    and a link to a file .dockerignore leaves out were shipped as links to nothing, without
    a word."""
    root = tmp_path / "proj"
    _linked_project(root)
    (root / "secrets.env").write_text("TOKEN=1\n")
    (root / ".dockerignore").write_text("secrets.env\n")
    (root / "conf" / "abs.yaml").symlink_to(root / "conf" / "local.yaml")
    (root / "env").symlink_to("secrets.env")
    assert _link_notes(root) == [
        f"conf/abs.yaml is a link to the absolute path {root / 'conf' / 'local.yaml'}, which the "
        "image does not have (the project has another path there): make it relative, in the "
        "project folder: `ln -sfn local.yaml conf/abs.yaml`",
        "env is a link to secrets.env, which the ignore patterns leave out of the image: the "
        "link points at nothing there (ship secrets.env, or add env to .dockerignore)"]
    # the fixes the notes give
    subprocess.run(["ln", "-sfn", "local.yaml", "conf/abs.yaml"], cwd=root, check=True)
    (root / ".dockerignore").write_text("secrets.env\nenv\n")
    assert _link_notes(root) == []
    assert (root / "conf" / "abs.yaml").read_text() == "x: 1\n"


def test_links_that_work_in_the_image_or_nowhere_get_no_note(tmp_path: Path) -> None:
    """Found by review of the link notes: a link to a folder the patterns leave out but whose
    files they bring back (`data/**`, `!data/keep/**`) works in the image, yet was noted as
    left out; and a link broken on this machine too was told to "ship" a file that does not
    exist."""
    root = tmp_path / "proj"
    _linked_project(root)
    (root / "data" / "keep").mkdir(parents=True)
    (root / "data" / "keep" / "k.txt").write_text("k")
    (root / "data" / "drop.txt").write_text("d")
    (root / ".dockerignore").write_text("data/**\n!data/keep/**\n")
    (root / "conf" / "d").symlink_to("../data/keep")
    (root / "gone").symlink_to("missing.txt")
    (root / "gone-abs").symlink_to(root / "missing.txt")
    (root / "dropped").symlink_to("data/drop.txt")  # really left out: noted
    assert _link_notes(root) == [
        "dropped is a link to data/drop.txt, which the ignore patterns leave out of the image: "
        "the link points at nothing there (ship data/drop.txt, or add dropped to "
        ".dockerignore)"]


def test_a_folder_that_cannot_be_read_is_named_with_its_fix(
        project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A folder without read permission gave "cannot use .../private/pyvenv.cfg: Permission
    # denied" (a file the user never had) and a "please report it" hint.
    private = project_dir / "private"
    private.mkdir()
    real_is_file = Path.is_file

    def is_file(self: Path) -> bool:
        if self.parent == private:
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_file(self)

    monkeypatch.setattr(Path, "is_file", is_file)
    with pytest.raises(UsageError) as info:
        list(iter_project_files(detect_project(project_dir)))
    assert info.value.message == "cannot read the project's folder private/: Permission denied"
    assert "private to the project's .dockerignore" in (info.value.hint or "")


def test_the_project_digest_follows_what_the_image_gets(tmp_path: Path) -> None:
    """`image run` compares it with the image's label: it changes with a file the image gets
    (contents, a new file, the executable bit), not with what the image leaves out."""
    from dlbox.container.context import project_digest

    (tmp_path / "requirements.txt").write_text("torch\n")
    (tmp_path / "main.py").write_text("print(1)\n")
    (tmp_path / ".dockerignore").write_text("scratch/\n")

    def digest() -> str:
        return project_digest(detect_project(tmp_path))

    first = digest()
    assert digest() == first and len(first) == 32
    for left_out in ("runs/r1/metrics.json", "scratch/notes.txt", ".venv/bin/python",
                     "__pycache__/main.cpython-311.pyc"):
        path = tmp_path / left_out
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    (tmp_path / ".venv" / "pyvenv.cfg").write_text("home = /usr\n")
    (tmp_path / "dlbox.lock").write_text("{}")  # the build writes it after the engine read
    assert digest() == first
    seen = {first}
    (tmp_path / "main.py").write_text("print(2)\n")
    seen.add(digest())
    (tmp_path / "main.py").chmod(0o755)
    seen.add(digest())
    (tmp_path / "util.py").write_text("")
    seen.add(digest())
    (tmp_path / "util.py").rename(tmp_path / "other.py")
    seen.add(digest())
    assert len(seen) == 5, "each change gives a new digest"


def test_the_project_digest_leaves_out_a_lock_of_any_name(tmp_path: Path) -> None:
    """Review: `--lock locks/cpu.lock` (written after the engine took the files, in a folder
    the write made) changed the digest, and `image run` right after the build warned."""
    from dlbox.container.context import project_digest
    from dlbox.container.lock import write_lock

    (tmp_path / "requirements.txt").write_text("torch\n")
    (tmp_path / "main.py").write_text("print(1)\n")
    first = project_digest(detect_project(tmp_path))
    write_lock(tmp_path / "locks" / "cpu.lock", {})
    assert project_digest(detect_project(tmp_path)) == first
    (tmp_path / "locks" / "notes.json").write_text('{"schema": 1}\n')  # the user's own file
    assert project_digest(detect_project(tmp_path)) != first


def test_image_run_warns_only_for_its_own_folders_changed_files(tmp_path: Path) -> None:
    from dlbox.container.context import project_digest
    from dlbox.container.run import files_changed

    (tmp_path / "requirements.txt").write_text("torch\n")
    (tmp_path / "main.py").write_text("print(1)\n")
    labels = {S.SOURCE_LABEL: S.source_id(tmp_path),
              S.FILES_LABEL: project_digest(detect_project(tmp_path))}
    assert not files_changed(labels, tmp_path)
    (tmp_path / "main.py").write_text("print(2)\n")
    assert files_changed(labels, tmp_path)
    # An image that does not say (an older dlbox's, or one dlbox did not build): no warning.
    assert not files_changed({S.SOURCE_LABEL: S.source_id(tmp_path)}, tmp_path)
    assert not files_changed({}, tmp_path)


@pytest.mark.parametrize("line, why", [("a[]b", "unterminated character set"),
                                       ("!x[z-a]", "bad character range z-a"),
                                       # was taken as a literal "[", where docker refuses it
                                       ("[", "a '[' without its closing ']'"),
                                       ("logs/[0-9", "a '[' without its closing ']'")])
def test_a_dockerignore_pattern_that_is_no_pattern_is_named(tmp_path: Path, line: str,
                                                            why: str) -> None:
    """Found in review: these raised re.error, an 'unexpected error' of dlbox."""
    (tmp_path / "requirements.txt").write_text("torch\n")
    (tmp_path / ".dockerignore").write_text(f"# mine\n*.log\n{line}\n")
    with pytest.raises(UsageError) as info:
        project_patterns(tmp_path)
    assert info.value.message == (f"{tmp_path / '.dockerignore'}: the pattern {line!r} is not "
                                  f"valid ({why})")
    (tmp_path / ".dockerignore").write_text("*.log\n[ab]*.py\n\\[x\n")  # sets, an escaped [
    matcher = IgnoreMatcher(project_patterns(tmp_path))
    assert matcher.ignored("a1.py") and matcher.ignored("[x") and not matcher.ignored("c.py")


def test_an_allowlist_dockerignore_does_not_bring_back_secrets_or_weights(
        tmp_path: Path) -> None:
    """Found by review: `*`, `!src` re-included src/.env, src/id_rsa and src/sub/model.pt
    (docker's last match wins, and `!src` matches their folder). A protected default (a
    secret, a VCS folder, a weight file) comes back only for a `!` line naming it or
    something below it."""
    from dlbox.container.context import left_out_weights

    root = tmp_path / "proj"
    (root / "src" / "sub").mkdir(parents=True)
    (root / "requirements.txt").write_text("numpy\n")
    for name in ("src/main.py", "src/.env", "src/id_rsa", "src/.netrc", "src/sub/model.pt",
                 "src/sub/util.py", "notes.txt"):
        (root / name).write_text("x\n")
    (root / ".dockerignore").write_text("*\n!src\n!requirements.txt\n")
    rels = {rel for rel, _ in iter_project_files(detect_project(root))}
    assert rels == {"requirements.txt", "src", "src/main.py", "src/sub", "src/sub/util.py"}
    assert left_out_weights(root) == [
        "weight files are left out of the image by default (src/sub/model.pt): mount them at "
        "run time, or add the line !src/sub/model.pt (one per file) to the project's "
        ".dockerignore to ship them"]
    # naming the item itself, or a pattern that matches it, brings it back
    (root / ".dockerignore").write_text("*\n!src\n!requirements.txt\n!src/.env\n!**/*.pt\n")
    rels = {rel for rel, _ in iter_project_files(detect_project(root))}
    assert {"src/.env", "src/sub/model.pt"} <= rels and "src/id_rsa" not in rels
    assert left_out_weights(root) == []


def test_protected_defaults_come_back_only_when_named() -> None:
    m = IgnoreMatcher((*DEFAULT_PATTERNS, "!src", "!.git/config", "!weights/backbone.pt"))
    assert m.ignored("src/.env") and m.ignored("src/a/id_ed25519") and m.ignored("src/x.pt")
    assert not m.ignored(".git/config") and m.ignored(".git/HEAD")
    assert not m.prune(".git")  # the exception reaches into it: walk it
    assert not m.ignored("weights/backbone.pt") and m.ignored("weights/other.pt")
    # only the protected defaults: `!src` still brings back what other patterns leave out
    assert not IgnoreMatcher((*DEFAULT_PATTERNS, "src", "!src")).ignored("src/a.py")
    assert not IgnoreMatcher((*DEFAULT_PATTERNS, "!data")).ignored("data/x.csv")
    # `!.git` names the folder itself, not the weight file below it
    assert not IgnoreMatcher((*DEFAULT_PATTERNS, "!.git")).ignored(".git/config")
    assert IgnoreMatcher((*DEFAULT_PATTERNS, "!.git")).ignored(".git/x.pt")
    assert not IgnoreMatcher((*DEFAULT_PATTERNS, "!.git", "!**/*.pt")).ignored(".git/x.pt")


@pytest.mark.parametrize("allow", ["!src/**", "!src/*", "!**", "!*", "!.*"])
def test_a_wildcard_that_names_no_file_brings_no_secret_back(allow: str) -> None:
    """Found by the re-check: the allowlist `*`, `!src/**` (or `!*`, `!**`) matches
    src/.env itself, so it came back: a `!` line brings a protected item back only when it
    names it (a literal part in its last segment: `!src/.env`, `!**/*.pt`, `!id_rsa.pub`)."""
    m = IgnoreMatcher((*DEFAULT_PATTERNS, "*", allow))
    for secret in ("src/.env", "src/id_rsa", "src/creds/.netrc", "src/model.pt", ".env",
                   ".git/config"):
        assert m.ignored(secret), secret
    if allow != "!.*":
        assert not m.ignored("src/main.py")
    named = IgnoreMatcher((*DEFAULT_PATTERNS, "*", allow, "!src/.env", "!**/*.pt"))
    assert not named.ignored("src/.env") and not named.ignored("src/model.pt")


def test_a_nested_vcs_folder_is_left_out_too() -> None:
    """Found by the re-check: a vendored clone's src/vendor/.git (whose config may hold a
    token in its remote URL) shipped: only the top-level .git was left out."""
    for folder in (".git", ".hg", ".svn"):
        assert DEFAULT.ignored(f"src/vendor/{folder}/config")
        assert DEFAULT.ignored(f"{folder}/config")


def test_a_dockerignore_with_a_byte_order_mark_keeps_its_first_pattern(tmp_path: Path) -> None:
    """Found by review: read as utf-8, the BOM made the first line '\\ufeffnotes' (docker
    strips the BOM)."""
    (tmp_path / ".dockerignore").write_bytes("\ufeffnotes\n*.log\n".encode())
    assert project_patterns(tmp_path)[len(DEFAULT_PATTERNS):] == ("notes", "*.log")


def test_an_arbitrary_equality_pin_finds_its_wheel(tmp_path: Path) -> None:
    """Found by re-review: `name===version` (a pin the lock accepts) was split on its first
    '==' and read as version '=4.12.2', so an --offline build said the wheel was missing."""
    house = tmp_path / "wheels"
    write(house / "typing_extensions-4.12.2-py3-none-any.whl")
    selected, uncovered = wheels_for_pins(scan_wheelhouse(house),
                                          ["typing_extensions===4.12.2"], "3.11.2")
    assert [d.path.name for d in selected] == ["typing_extensions-4.12.2-py3-none-any.whl"]
    assert uncovered == ()


def test_a_wheel_the_wheelhouse_links_to_travels_as_the_file(project_dir: Path,
                                                             tmp_path: Path) -> None:
    """Found by re-review: a wheelhouse of symlinks (`ln -s /opt/wheels/*.whl`) put the links
    into the build context, pointing at nothing inside it."""
    import tarfile

    real = tmp_path / "store" / "six-1.17.0-py2.py3-none-any.whl"
    real.parent.mkdir()
    real.write_bytes(b"the wheel")
    link = tmp_path / "house" / real.name
    link.parent.mkdir()
    link.symlink_to(real)
    tar_path = write_context(tmp_path / "c.tar", detect_project(project_dir), "", "",
                             wheels=[link]).path
    with tarfile.open(tar_path) as tar:
        member = tar.getmember(f"{S.CONTEXT_WHEELHOUSE}/{real.name}")
        assert member.isfile()
        extracted = tar.extractfile(member)
        assert extracted is not None and extracted.read() == b"the wheel"
