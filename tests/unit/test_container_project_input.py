"""What a project gives `dlbox image build`: setup.py, pyproject.toml fields of the wrong type,
Poetry, files that are not UTF-8, --hash options, bare URL requirements, the wheelhouse inside
the project, and the secrets and weights that never reach the image."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import pytest

from dlbox.container.context import copy_project, iter_project_files, write_context
from dlbox.container.dockerignore import DEFAULT_PATTERNS, IgnoreMatcher, project_patterns
from dlbox.container.project import detect_project, setup_py_requirements
from dlbox.errors import EXIT_USAGE, UsageError


def write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def dry_run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`dlbox image build ... --cpu --dry-run`: (exit code, stderr)."""
    from dlbox.cli import main

    code = main(["image", "build", *argv, "--cpu", "--dry-run"])
    return code, capsys.readouterr().err


SETUP_PY = '''
from setuptools import setup

REQUIRED = ["numpy>=1.24"]

setup(
    name="proj",
    version="0.1",
    install_requires=REQUIRED + ["Pillow"],
)
'''


# ---- 1. setup.py ---------------------------------------------------------------------------

def test_a_setup_py_only_project_is_a_usage_error_that_says_where_dependencies_go(
        tmp_path: Path) -> None:
    write(tmp_path / "setup.py", SETUP_PY)
    with pytest.raises(UsageError) as info:
        detect_project(tmp_path)
    message, hint = info.value.message, info.value.hint or ""
    assert "requirements.txt or pyproject.toml ([project] dependencies)" in message
    assert "does not run setup.py" in message
    assert "PROJECT_DIR" not in hint  # leaving it out takes this folder again
    assert "requirements.txt" in hint and "numpy>=1.24, Pillow" in hint
    # A pyproject.toml holding only [build-system] (or tool settings) says no more.
    write(tmp_path / "pyproject.toml", '[build-system]\nrequires = ["setuptools"]\n')
    with pytest.raises(UsageError, match="does not run setup.py"):
        detect_project(tmp_path)


def test_setup_py_only_in_the_current_folder_exits_2_with_a_true_hint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "setup.py", SETUP_PY)
    monkeypatch.chdir(tmp_path)  # no PROJECT_DIR: this folder is the project
    code, err = dry_run_cli([], capsys)
    assert code == EXIT_USAGE
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: ") and "does not run setup.py" in lines[0]
    assert lines[1].startswith("hint: ") and "leave PROJECT_DIR out" not in lines[1]
    assert not (tmp_path / "dlbox.lock").exists()


def test_setup_py_install_requires_join_the_requirements(tmp_path: Path) -> None:
    write(tmp_path / "setup.py", SETUP_PY)
    write(tmp_path / "requirements.txt", "rich\n")
    project = detect_project(tmp_path)
    assert project.requirements == ("numpy>=1.24", "pillow", "rich")
    assert project.installable and project.notes == ()
    # Beside a pyproject.toml that holds only tool settings, it is installed all the same.
    write(tmp_path / "pyproject.toml", "[tool.ruff]\nline-length = 100\n")
    project = detect_project(tmp_path)
    assert project.installable and "numpy>=1.24" in project.requirements


def test_a_computed_install_requires_is_a_note(tmp_path: Path) -> None:
    write(tmp_path / "setup.py", "from setuptools import setup\n"
          "setup(name='p', install_requires=open('requirements.txt').read().split())\n")
    write(tmp_path / "requirements.txt", "rich\n")
    project = detect_project(tmp_path)
    assert project.requirements == ("rich",)
    assert len(project.notes) == 1
    assert "install_requires is computed" in project.notes[0]
    assert "does not run setup.py" in project.notes[0]


@pytest.mark.parametrize("source, expected", [
    ("setup(install_requires=['a', 'b>=1'])", ["a", "b>=1"]),
    ("import setuptools\nsetuptools.setup(install_requires=('a',))", ["a"]),
    ("setup(install_requires='a\\n# c\\nb  # why\\n')", ["a", "b"]),
    ("setup(name='p')", []),
])
def test_setup_py_requirements_reads_literals(tmp_path: Path, source: str,
                                              expected: list[str]) -> None:
    write(tmp_path / "setup.py", source + "\n")
    assert setup_py_requirements(tmp_path / "setup.py") == (expected, None)


def test_setup_py_requirements_of_a_file_that_is_not_python(tmp_path: Path) -> None:
    write(tmp_path / "setup.py", "setup(install_requires=[\n")
    found, note = setup_py_requirements(tmp_path / "setup.py")
    assert found is None and note and "does not parse as Python" in note
    write(tmp_path / "setup.py", "opts = dict(install_requires=deps())\nsetup(**opts)\n")
    found, note = setup_py_requirements(tmp_path / "setup.py")
    assert found is None and note and "cannot read" in note


# ---- 2. pyproject.toml fields of the wrong type, Poetry -------------------------------------

@pytest.mark.parametrize("toml, words", [
    ('[project]\nname = "p"\ndependencies = "numpy"\n',
     "pyproject.toml: [project] dependencies is a string, not an array of strings"),
    ('[project]\nname = "p"\ndependencies = ["torch", 5]\n',
     "pyproject.toml: [project] dependencies[1] is 5, not a string"),
    ('[project]\nname = "p"\ndependencies = ["torch", {a = 1}]\n',
     "pyproject.toml: [project] dependencies[1] is a table, not a string"),
    ('[project]\nname = "p"\n[project.optional-dependencies]\nplot = "matplotlib"\n',
     "pyproject.toml: [project.optional-dependencies] plot is a string"),
    ('[project]\nname = "p"\noptional-dependencies = ["matplotlib"]\n',
     "pyproject.toml: [project.optional-dependencies] is an array, not a table"),
    ('[project]\nname = "p"\n[project.optional-dependencies]\nplot = ["matplotlib", 3]\n',
     "pyproject.toml: [project.optional-dependencies] plot[1] is 3, not a string"),
    ('[build-system]\nrequires = "setuptools"\n[project]\nname = "p"\n',
     "pyproject.toml: [build-system] requires is a string, not an array of strings"),
    ('[build-system]\nrequires = ["setuptools", true]\n[project]\nname = "p"\n',
     "pyproject.toml: [build-system] requires[1] is True, not a string"),
    ('[project]\nname = "p"\nrequires-python = 3.10\n',
     "pyproject.toml: [project] requires-python is a float, not a string"),
    ('project = "p"\n', "pyproject.toml: [project] is a string, not a table"),
    ('[project]\nname = 5\n', "pyproject.toml: [project] name is an integer, not a string"),
])
def test_pyproject_fields_of_the_wrong_type_are_usage_errors(tmp_path: Path, toml: str,
                                                              words: str) -> None:
    write(tmp_path / "pyproject.toml", toml)
    with pytest.raises(UsageError) as info:
        detect_project(tmp_path, extras=())
    assert info.value.message.startswith(words), info.value.message
    assert info.value.hint


@pytest.mark.parametrize("toml, words", [
    ('[project]\nversion = "1"\ndependencies = ["six"]\n',
     "pyproject.toml: [project] name is missing"),
    ('[project]\nname = ""\nversion = "1"\n', "pyproject.toml: [project] name is missing"),
    ('[project]\nname = "p"\ndependencies = ["six"]\n',
     "pyproject.toml: [project] version is missing"),
    ('[project]\nname = "p"\ndynamic = ["readme"]\n',
     "pyproject.toml: [project] version is missing"),
])
def test_a_pyproject_without_name_or_version_is_refused(tmp_path: Path, toml: str,
                                                          words: str,
                                                          capsys: pytest.CaptureFixture[str],
                                                          ) -> None:
    """Found by review: [project] without name passed dlbox's checks and --dry-run, and pip
    failed with a traceback at step 17/23 (PEP 621: name is required, version too unless
    listed in dynamic; setuptools refuses either)."""
    write(tmp_path / "pyproject.toml", toml)
    with pytest.raises(UsageError) as info:
        detect_project(tmp_path, extras=())
    assert info.value.message.startswith(words), info.value.message
    assert "\n" not in info.value.message
    field = words.rsplit(" ", 3)[-3]
    assert f"{field} = " in (info.value.hint or "")
    code, err = dry_run_cli([str(tmp_path)], capsys)
    assert code == EXIT_USAGE and words in err


def test_a_dynamic_version_needs_no_version(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "p"\ndynamic = ["version"]\n')
    assert detect_project(tmp_path, extras=()).version is None


def test_a_mistyped_dependency_exits_2_not_70(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "p"\ndependencies = ["torch", 5]\n')
    code, err = dry_run_cli([str(tmp_path)], capsys)
    assert code == EXIT_USAGE
    assert "dependencies[1] is 5, not a string" in err and "Traceback" not in err


POETRY = '''
[tool.poetry]
name = "poetry-proj"
version = "0.1.0"

[tool.poetry.dependencies]
python = "^3.10"
numpy = "^1.26"
torch = "^2.2"

[build-system]
requires = ["poetry-core"]
build-backend = "poetry.core.masonry.api"
'''


def test_a_poetry_project_without_pep621_dependencies_is_a_usage_error(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", POETRY)
    with pytest.raises(UsageError) as info:
        detect_project(tmp_path)
    assert "[tool.poetry.dependencies] (numpy, torch)" in info.value.message
    assert "PEP 621 [project] dependencies or a requirements.txt" in info.value.message
    assert "poetry export -f requirements.txt -o requirements.txt" in (info.value.hint or "")
    # Exported: fine, and installed with poetry-core.
    write(tmp_path / "requirements.txt", "numpy==1.26.4\ntorch==2.2.2\n")
    project = detect_project(tmp_path)
    assert project.requirements == ("numpy==1.26.4", "torch==2.2.2")
    assert project.installable and project.build_requirements == ("poetry-core",)


def test_a_poetry_project_that_needs_only_python_builds(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml",
          '[tool.poetry]\nname = "p"\n[tool.poetry.dependencies]\npython = "^3.10"\n')
    assert detect_project(tmp_path).requirements == ()


def test_pep621_dependencies_win_over_tool_poetry(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml",
          '[project]\nname = "p"\nversion = "1"\ndependencies = ["rich"]\n'
          + POETRY.split("[build-system]")[0])
    assert detect_project(tmp_path).requirements == ("rich",)


# ---- 3. files that are not UTF-8 ------------------------------------------------------------

def test_a_requirements_file_that_is_not_utf8_is_a_usage_error(tmp_path: Path) -> None:
    write_bytes(tmp_path / "requirements.txt", b"numpy\nrich  # caf\xe9\n")
    with pytest.raises(UsageError) as info:
        detect_project(tmp_path)
    assert info.value.message == "requirements.txt:2 is not UTF-8 text (byte 17 is 0xe9)"
    assert "UTF-8" in (info.value.hint or "")


def test_an_included_requirements_file_that_is_not_utf8_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "requirements.txt", "numpy\n-r extra/base.txt\n")
    write_bytes(tmp_path / "extra" / "base.txt", b"rich\ntqdm # \xe9\xe9\n")  # Latin-1
    with pytest.raises(UsageError, match=r"^extra/base\.txt:2 is not UTF-8 text \(byte 12 "):
        detect_project(tmp_path)
    code, err = dry_run_cli([str(tmp_path)], capsys)
    assert code == EXIT_USAGE and "extra/base.txt:2 is not UTF-8" in err


def test_an_option_with_its_value_attached_is_read_as_pip_reads_it(tmp_path: Path) -> None:
    """Found by review: `-rbase.txt` (pip takes a short option's value attached) was "pip
    option -rbase.txt is not supported here", though -r is."""
    write(tmp_path / "requirements.txt", "numpy\n-rbase.txt\n")
    write(tmp_path / "base.txt", "rich\n")
    assert detect_project(tmp_path).requirements == ("numpy", "rich")
    # quoted, as pip's shlex takes it (the re-check: -e ".[dev]" was an unsupported editable)
    write(tmp_path / "requirements.txt", 'numpy\n-r "my base.txt"\n')
    write(tmp_path / "my base.txt", "tqdm\n")
    assert detect_project(tmp_path).requirements == ("numpy", "tqdm")
    write(tmp_path / "requirements.txt", 'numpy\n-r my\\ base.txt\n')  # escaped, as shlex
    assert detect_project(tmp_path).requirements == ("numpy", "tqdm")
    write(tmp_path / "requirements.txt", '-e ".[dev]"\n')
    with pytest.raises(UsageError, match=r"is the project itself with extras"):
        detect_project(tmp_path)


def test_requirements_with_a_byte_order_mark_are_read_as_pip_reads_them(tmp_path: Path) -> None:
    write_bytes(tmp_path / "requirements.txt", "numpy\nrich\n".encode("utf-16"))  # PowerShell
    assert detect_project(tmp_path).requirements == ("numpy", "rich")
    write_bytes(tmp_path / "requirements.txt", b"\xef\xbb\xbfnumpy\n")  # Notepad's UTF-8
    assert detect_project(tmp_path).requirements == ("numpy",)
    write_bytes(tmp_path / "requirements.txt", b"\xff\xferich\n")  # a BOM, then not UTF-16
    with pytest.raises(UsageError, match="starts with a UTF-16 byte order mark, but is not"):
        detect_project(tmp_path)


def test_a_pyproject_that_is_not_utf8_or_not_toml_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_bytes(tmp_path / "pyproject.toml",
                       b'[project]\nname = "p"\ndescription = "caf\xe9"\n')
    with pytest.raises(UsageError, match=r"/pyproject\.toml:3 is not UTF-8 text \(byte 39 is "
                                         r"0xe9\), and TOML must be"):
        detect_project(tmp_path)
    code, err = dry_run_cli([str(tmp_path)], capsys)
    assert code == EXIT_USAGE and "not UTF-8" in err
    path.write_text('[project]\nname = "p"\ndependencies = ["a",\n')
    with pytest.raises(UsageError, match="is not valid TOML") as info:
        detect_project(tmp_path)
    assert "python -m tomllib" not in (info.value.hint or "")  # no such command
    assert "tomllib.load" in (info.value.hint or "")
    path.write_bytes(b'\xef\xbb\xbf[project]\nname = "p"\n')
    with pytest.raises(UsageError, match="byte order mark"):
        detect_project(tmp_path)


# ---- 4. --hash options ----------------------------------------------------------------------

def test_hash_options_are_accepted_with_a_note(tmp_path: Path) -> None:
    write(tmp_path / "requirements.txt",
          "numpy==2.1.0 \\\n    --hash=sha256:aaa \\\n    --hash=sha256:bbb\n"
          "rich==13.7.1 --hash sha256:ccc\n-r more.txt\n")
    write(tmp_path / "more.txt", "tqdm==4.66.0 --hash=sha256:ddd\n")
    project = detect_project(tmp_path)
    assert project.requirements == ("numpy==2.1.0", "rich==13.7.1", "tqdm==4.66.0")
    assert sorted(project.notes) == [
        "more.txt: the --hash options of 1 requirement are not checked: dlbox resolves every "
        "requirement into dlbox.lock, which pins versions, not hashes",
        "requirements.txt: the --hash options of 2 requirements are not checked: dlbox "
        "resolves every requirement into dlbox.lock, which pins versions, not hashes",
    ]
    write(tmp_path / "requirements.txt", "numpy==2.1.0\n")
    assert detect_project(tmp_path).notes == ()


# ---- 5. the wheelhouse inside the project ---------------------------------------------------

@pytest.fixture
def project_with_wheels(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    write(root / "requirements.txt", "rich==13.7.1\n")
    write(root / "train.py", "print(1)\n")
    write(root / "wheels" / "rich-13.7.1-py3-none-any.whl", "wheel")
    write(root / "wheels" / "other-1.0-py3-none-any.whl", "wheel")
    return root


def test_iter_project_files_leaves_out_the_excluded_wheelhouse(project_with_wheels: Path,
                                                               tmp_path: Path) -> None:
    project = detect_project(project_with_wheels)
    assert "wheels" in {rel for rel, _ in iter_project_files(project)}
    rels = [rel for rel, _ in iter_project_files(project, [project_with_wheels / "wheels"])]
    assert rels == ["requirements.txt", "train.py"]
    outside = write(tmp_path / "elsewhere" / "x-1-py3-none-any.whl").parent
    assert len(list(iter_project_files(project, [outside, project_with_wheels]))) == 5
    copy = copy_project(project, tmp_path / "copy", exclude=[project_with_wheels / "wheels"])
    assert sorted(p.name for p in copy.iterdir()) == ["requirements.txt", "train.py"]


def test_write_context_sends_the_wheels_once_not_in_the_project(
        project_with_wheels: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = detect_project(project_with_wheels)
    wheel = project_with_wheels / "wheels" / "rich-13.7.1-py3-none-any.whl"
    summary = write_context(tmp_path / "c.tar", project, "FROM scratch\n", "rich==13.7.1\n",
                            wheels=[wheel])
    with tarfile.open(summary.path) as tar:
        names = tar.getnames()
        ignore = tar.extractfile(".dockerignore").read().decode()  # type: ignore[union-attr]
    assert "dlbox/wheelhouse/rich-13.7.1-py3-none-any.whl" in names
    assert not any(name.startswith("project/wheels") for name in names)
    assert ignore.splitlines()[-1] == "project/wheels"
    assert summary.project_bytes == sum(
        (project_with_wheels / name).stat().st_size for name in ("requirements.txt", "train.py"))
    # No pinned wheel in it: the folder passed as `exclude` (relative, as --wheelhouse is).
    monkeypatch.chdir(project_with_wheels)
    summary = write_context(tmp_path / "d.tar", project, "", "", exclude=[Path("wheels")])
    with tarfile.open(summary.path) as tar:
        assert not any(name.startswith("project/wheels") for name in tar.getnames())


def test_a_wheelhouse_that_is_the_project_folder_leaves_out_only_the_wheels(
        tmp_path: Path) -> None:
    write(tmp_path / "requirements.txt", "rich==13.7.1\n")
    write(tmp_path / "train.py", "print(1)\n")
    wheel = write(tmp_path / "rich-13.7.1-py3-none-any.whl", "wheel")
    project = detect_project(tmp_path)
    summary = write_context(tmp_path.parent / f"{tmp_path.name}.tar", project, "", "",
                            wheels=[wheel], exclude=[tmp_path])
    with tarfile.open(summary.path) as tar:
        names = tar.getnames()
    assert "project/train.py" in names and "project/requirements.txt" in names
    assert "project/rich-13.7.1-py3-none-any.whl" not in names


# ---- 6. secrets and weights -----------------------------------------------------------------

DEFAULT = IgnoreMatcher(DEFAULT_PATTERNS)


@pytest.mark.parametrize("path", [
    ".env.local", "config/.env.production", "app/.envrc",
    ".netrc", "deploy/.netrc", "_netrc", ".pypirc", ".git-credentials",
    "id_rsa", "id_rsa.pub", "keys/id_ed25519", "ops/ssh/id_ecdsa", "id_dsa",
    "pytorch_model.bin", "hf/bert/pytorch_model.bin", "model.onnx", "export/model.onnx",
    "weights.h5", "keras/model.h5", "model.keras", "a/b/model.keras",
])
def test_secrets_and_weights_are_left_out_anywhere(path: str) -> None:
    assert DEFAULT.ignored(path), path


@pytest.mark.parametrize("path", [
    "src/environment.py", "env.py", "src/env/config.py", "binary_search.py", "src/bin/tool",
    "docs/onnx.md", "h5py_notes.txt", "requirements.txt",
])
def test_lookalikes_are_kept(path: str) -> None:
    assert not DEFAULT.ignored(path), path


def test_a_project_can_bring_an_onnx_model_back(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("!models/model.onnx\n")
    matcher = IgnoreMatcher(project_patterns(tmp_path))
    assert not matcher.ignored("models/model.onnx")
    assert matcher.ignored("models/other.onnx") and matcher.ignored(".env.local")


def test_the_archive_holds_no_secret_or_weight_file(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    write(root / "requirements.txt", "numpy\n")
    write(root / "train.py", "print(1)\n")
    for name in (".env.local", ".netrc", "id_rsa", "id_rsa.pub", "ssh/id_ed25519",
                 "hf/pytorch_model.bin", "model.onnx", "model.h5", "model.keras"):
        write(root / name, "secret")
    summary = write_context(tmp_path / "c.tar", detect_project(root), "", "")
    with tarfile.open(summary.path) as tar:
        files = sorted(m.name for m in tar.getmembers() if m.isfile()
                       and m.name.startswith("project/"))
    assert files == ["project/requirements.txt", "project/train.py"]


def test_apt_txt_lists_the_system_packages(tmp_path: Path) -> None:
    from dlbox.container.project import read_apt_file

    (tmp_path / "requirements.txt").write_text("numpy\n")
    assert detect_project(tmp_path).system_packages == ()
    (tmp_path / "apt.txt").write_text("# to build the C extension\nbuild-essential\n\n"
                                      "libsndfile1  # at run time\ngit\nlibfoo=1.2-3\ngit\n")
    assert detect_project(tmp_path).system_packages == (
        "build-essential", "libsndfile1", "git", "libfoo=1.2-3")
    # review: several a line, as repo2docker reads it, and an architecture were refused
    (tmp_path / "apt.txt").write_text("build-essential python3-dev\nlibc6:amd64 git\n")
    assert detect_project(tmp_path).system_packages == (
        "build-essential", "python3-dev", "libc6:amd64", "git")
    for bad in ("rm -rf /", "Git", "pkg; curl x", "$(id)"):
        (tmp_path / "apt.txt").write_text(f"git\n{bad}\n")
        with pytest.raises(UsageError, match=r"apt.txt:2: .* is not a Debian package name"):
            read_apt_file(tmp_path / "apt.txt")
    (tmp_path / "apt.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(UsageError, match="is not UTF-8"):
        read_apt_file(tmp_path / "apt.txt")


@pytest.mark.parametrize("line, package", [
    ("      error: command 'gcc' failed: No such file or directory", "build-essential"),
    ("  Cannot find command 'git' - do you have 'git' installed and in your PATH?", "git"),
    ("      netifaces.c:1:10: fatal error: Python.h: No such file or directory",
     "python3-dev"),
    ("      error: can't find Rust compiler", "cargo"),
    # review, recorded from psycopg2 2.9.9 built in a dlbox image given only libpq-dev
    ("      error: [Errno 2] No such file or directory: 'x86_64-linux-gnu-gcc'",
     "build-essential"),
    # review, recorded from pip on mysqlclient 2.2.4, pycurl 7.45.2, lxml 4.6.0, gssapi 1.8.3
    ("      Exception: Can not find valid pkg-config name.", "default-libmysqlclient-dev"),
    ("      Please specify --curl-config=/path/to/curl-config", "libcurl4-openssl-dev"),
    ("      Please make sure the libxml2 and libxslt development packages are installed.",
     "libxml2-dev"),
    ("      OSError: [Errno 2] No such file or directory: 'krb5-config'", "libkrb5-dev"),
])
def test_a_build_that_lacks_a_tool_names_the_package_for_apt_txt(line: str,
                                                                 package: str) -> None:
    from dlbox.container.engine import build_error
    from dlbox.container.pipout import missing_tool_hint

    hint = missing_tool_hint(["Collecting x", line, "error: subprocess-exited-with-error"])
    assert hint is not None and re.search(rf"Debian packages? (\S+, )*{package}[ ,]", hint)
    failed = build_error("The command ... returned a non-zero code: 1", None, ["...", line])
    assert failed.hint == hint
    assert missing_tool_hint(["Successfully installed six-1.16.0"]) is None


def test_missing_python_headers_are_named_though_the_compiler_failed_too() -> None:
    """Recorded from psycopg2 2.9.9 built with build-essential but no python3-dev: the
    compiler ran and its command "failed", which was read as no compiler."""
    from dlbox.container.pipout import missing_tool_hint

    log = ["      ./psycopg/psycopg.h:35:10: fatal error: Python.h: No such file or directory",
           "      error: Command '['x86_64-linux-gnu-gcc', '-Wsign-compare', '-DNDEBUG']' "
           "failed with exit code 1",
           "      error: command 'x86_64-linux-gnu-gcc' failed with exit code 1"]
    assert "Debian package python3-dev to" in (missing_tool_hint(log) or "")


@pytest.mark.parametrize("line, package", [
    ("\x1b[91mUnable to locate package libfoo-doesnotexist\x1b[0m", "libfoo-doesnotexist"),
    ("E: Package 'libssl1.0' has no installation candidate", "libssl1.0"),
    ("E: Version '9.9' for 'curl' was not found", "curl=9.9"),
])
def test_an_apt_txt_package_apt_cannot_find_is_named_with_the_file_to_fix(
        line: str, package: str) -> None:
    # The build said only "image build failed at step 5/7 (RUN apt-get update ...): ...
    # returned a non-zero code: 100", with the hint "the lines above show the failing
    # command's output": not which line of apt.txt to fix.
    from dlbox.container.engine import build_error

    step = {"number": 5, "total": 7, "instruction": "RUN apt-get update     && apt-get ..."}
    failed = build_error("The command ... returned a non-zero code: 100", step,
                         ["Reading package lists...", line])
    assert failed.message == (f"image build failed: apt found no Debian package {package} "
                              "(from the project's apt.txt) for the base image")
    assert "apt.txt" in (failed.hint or "")
    other = dict(step, instruction="RUN pip install --no-deps -r x")
    assert "apt.txt" not in build_error("code 1", other, ["Unable to locate package x"]).message


def test_apt_that_cannot_reach_its_mirrors_is_named_as_the_network_not_apt_txt() -> None:
    """Found in review: with no network, `apt-get update` only warns, and then every package
    is "unable to locate": the error blamed apt.txt. Recorded lines of Debian's apt."""
    from dlbox.container.engine import build_error

    step = {"number": 5, "total": 7, "instruction": "RUN apt-get update     && apt-get ..."}
    log = ["Err:1 http://deb.debian.org/debian bookworm InRelease",
           "  Temporary failure resolving 'deb.debian.org'",
           "W: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  "
           "Temporary failure resolving 'deb.debian.org'",
           "W: Some index files failed to download. They have been ignored, or old ones used "
           "instead.", "Reading package lists...", "E: Unable to locate package build-essential"]
    failed = build_error("The command ... returned a non-zero code: 100", step, log)
    assert failed.message == ("image build failed at step 5/7 (RUN apt-get update     && "
                              "apt-get ...): apt could not reach its package mirrors "
                              "(Temporary failure resolving 'deb.debian.org')")
    assert "proxy" in (failed.hint or "") and "apt.txt" not in failed.message


def test_offline_with_an_apt_txt_is_refused_before_the_build(tmp_path: Path) -> None:
    from dlbox.container.build import BuildRequest, plan

    (tmp_path / "requirements.txt").write_text("numpy\n")
    (tmp_path / "apt.txt").write_text("gcc\n")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    request = BuildRequest(project_dir=tmp_path, device="cpu", offline=True, wheelhouse=wheels,
                           lock_path=tmp_path / "dlbox.lock")
    with pytest.raises(UsageError, match="--offline, but apt.txt lists 1 Debian packages"):
        plan(request)


def test_offline_with_an_empty_wheelhouse_is_refused_naming_it(tmp_path: Path) -> None:
    """Found by the docs check: --offline with a wheelhouse holding no wheels got, after the
    first image stages, "pip download -d WHEELHOUSE ...": a placeholder, not its folder."""
    from dlbox.container.build import BuildRequest, plan

    (tmp_path / "requirements.txt").write_text("numpy==1.26.4\n")
    wheels = tmp_path / "my wheels"
    wheels.mkdir()
    request = BuildRequest(project_dir=tmp_path, device="cpu", offline=True, wheelhouse=wheels,
                           lock_path=tmp_path / "dlbox.lock")
    with pytest.raises(UsageError) as refused:
        plan(request)
    assert refused.value.message == f"--offline, but the wheelhouse {wheels} holds no wheels"
    assert refused.value.hint == (
        f"fill it on a machine with network: pip download -d '{wheels}' -r "
        f"{tmp_path / 'requirements.txt'} (and the framework's wheels); or drop --offline")
    # a pyproject.toml project: the project folder is what pip downloads the dependencies of
    (tmp_path / "requirements.txt").unlink()
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "p"\nversion = "1"\ndependencies = ["numpy==1.26.4"]\n')
    with pytest.raises(UsageError) as refused:
        plan(request)
    assert refused.value.hint == (
        f"fill it on a machine with network: pip download -d '{wheels}' {tmp_path} (and the "
        "framework's wheels); or drop --offline")


@pytest.mark.parametrize("line, expected", [
    # pip takes a bare URL; the lock needs the name: a wheel's file name gives it ...
    ("https://files.example/pkgs/Typing_Extensions-4.12.2-py3-none-any.whl",
     "typing-extensions @ https://files.example/pkgs/Typing_Extensions-4.12.2-py3-none-any.whl"),
    # ... and so does an #egg= fragment
    ("https://files.example/mylib-1.0.tar.gz#egg=my_lib",
     "my-lib @ https://files.example/mylib-1.0.tar.gz#egg=my_lib"),
    ("six @ https://files.example/six-1.16.0-py2.py3-none-any.whl",
     "six @ https://files.example/six-1.16.0-py2.py3-none-any.whl"),
])
def test_a_bare_url_requirement_is_named(tmp_path: Path, line: str, expected: str) -> None:
    write(tmp_path / "requirements.txt", f"rich\n{line}\n")
    project = detect_project(tmp_path)
    assert expected in project.requirements
    assert "rich" in project.requirements


@pytest.mark.parametrize("line, hint", [
    ("https://files.example/mylib-1.0.tar.gz", "mylib @ https://files.example/mylib-1.0.tar.gz"),
    ("git+https://git.example/org/tool.git", "tool @ git+https://git.example/org/tool.git"),
    # review: the sdist's file name was offered as the name (sdist.tar.gz @ ...)
    ("https://files.example/sdist.tar.gz", "sdist @ https://files.example/sdist.tar.gz"),
    ("https://files.example/mylib.zip", "mylib @ https://files.example/mylib.zip"),
    ("https://code.example/org/tool/archive/refs/heads/main.zip",
     "NAME @ https://code.example/org/tool/archive/refs/heads/main.zip"),
])
def test_a_bare_url_without_a_name_says_how_to_name_it(tmp_path: Path, line: str,
                                                        hint: str) -> None:
    write(tmp_path / "requirements.txt", f"rich\n{line}\n")
    with pytest.raises(UsageError) as info:
        detect_project(tmp_path)
    assert info.value.message == f"requirements.txt:2: {line!r} is a URL without a package name"
    assert info.value.hint == f"name the package: {hint}"


@pytest.mark.parametrize("line", ["./wheels/six-1.16.0-py2.py3-none-any.whl",
                                  "file:wheels/six-1.16.0-py2.py3-none-any.whl"])
def test_a_local_wheel_path_is_told_to_go_in_a_wheelhouse(tmp_path: Path, line: str) -> None:
    """Review: a wheel's path was told to "build a wheel of it", which it already is."""
    write(tmp_path / "requirements.txt", f"rich\n{line}\n")
    with pytest.raises(UsageError) as info:
        detect_project(tmp_path)
    assert info.value.message == (f"requirements.txt:2: local path requirement {line!r} is "
                                  "not supported")
    assert info.value.hint == ("put six-1.16.0-py2.py3-none-any.whl in a folder, pass "
                               "--wheelhouse DIR, and require six==1.16.0 by name")


@pytest.mark.parametrize("line", [
    "numpy @ file:///croot/numpy_1682520569166/work",
    "numpy[extra]@file:///home/me/src/numpy",
])
def test_a_named_file_url_requirement_is_refused_up_front(tmp_path: Path, line: str,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    """Found by review: what `pip freeze` writes in a conda env passed the dry run and failed
    late in the build, with pip's raw OSError."""
    write(tmp_path / "requirements.txt", f"rich\n{line}\n")
    with pytest.raises(UsageError) as info:
        detect_project(tmp_path)
    assert info.value.message == (f"requirements.txt:2: local path requirement {line!r} is "
                                  "not supported")
    assert "numpy==" in (info.value.hint or "") and "pip list --format=freeze" in (
        info.value.hint or "")
    code, err = dry_run_cli([str(tmp_path)], capsys)
    assert code == EXIT_USAGE and "requirements.txt:2: local path requirement" in err


@pytest.mark.parametrize("line", ["-e .[dev]", ".[dev]", "-e ./[dev,test]", "--editable=.[dev]"])
def test_the_project_with_extras_in_requirements_names_extras(tmp_path: Path,
                                                              line: str) -> None:
    """Found by review: `-e .[dev]` was refused as an editable install of another folder, and
    `.[dev]` was told to build a wheel into a --wheelhouse."""
    write(tmp_path / "pyproject.toml", '[project]\nname = "mine"\nversion = "1"\n'
          '[project.optional-dependencies]\ndev = ["pytest"]\ntest = ["hypothesis"]\n')
    write(tmp_path / "requirements.txt", f"rich\n{line}\n")
    with pytest.raises(UsageError) as info:
        detect_project(tmp_path)
    assert info.value.message.startswith("requirements.txt:2: ")
    assert "the project itself with extras" in info.value.message
    assert "--extras dev" in (info.value.hint or "")
    assert "remove the line" in (info.value.hint or "")
    assert "wheelhouse" not in (info.value.hint or "")
    write(tmp_path / "requirements.txt", "rich\n-e .\n.\n")  # the project itself: fine
    assert detect_project(tmp_path).requirements == ("rich",)


def test_the_frameworks_a_project_lists_besides_the_one_built() -> None:
    from dlbox.container.project import other_frameworks

    lines = ("torch==2.7.1", "tensorflow==2.17.1", "numpy")
    assert other_frameworks(lines, "torch") == ("tensorflow",)
    assert other_frameworks(lines, "tensorflow") == ("torch",)
    assert other_frameworks(("torch", "torchvision"), "torch") == ()
