"""scripts/build_notebook.py with a bad --output: one `error:` line and a `hint:`, a non-zero
exit, no traceback, and no file (partial or temporary) left anywhere."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILDER = ROOT / "scripts" / "build_notebook.py"
NAME = "first_pytorch_classifier.ipynb"


def build(*args: str, cwd: Path, max_file_bytes: int | None = None
          ) -> subprocess.CompletedProcess[str]:
    def limit_file_size() -> None:  # a disk that fills up while the file is written
        assert max_file_bytes is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return subprocess.run([sys.executable, str(BUILDER), *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, stdin=subprocess.DEVNULL,
                          preexec_fn=limit_file_size if max_file_bytes else None)  # noqa: PLW1509


def all_files(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int,
                          message: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert lines[1].startswith("hint: "), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize("check", [False, True], ids=["write", "check"])
def test_output_in_a_missing_folder_is_refused_and_creates_nothing(tmp_path: Path,
                                                                   check: bool) -> None:
    result = build("--output", "missing/deeper/out.ipynb", *(["--check"] if check else []),
                   cwd=tmp_path)
    assert_one_line_error(result, 2, "the folder missing/deeper does not exist")
    assert all_files(tmp_path) == []


@pytest.mark.parametrize("check", [False, True], ids=["write", "check"])
def test_output_that_is_a_folder_is_refused(tmp_path: Path, check: bool) -> None:
    (tmp_path / "notebooks").mkdir()
    result = build("--output", "notebooks", *(["--check"] if check else []), cwd=tmp_path)
    assert_one_line_error(result, 2, "--output notebooks is a folder, not a file")
    assert f"--output {Path('notebooks') / NAME}" in result.stderr
    assert all_files(tmp_path) == ["notebooks"]


def test_output_under_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    result = build("--output", "a-file/out.ipynb", cwd=tmp_path)
    assert_one_line_error(result, 2, "a-file is a file, not a folder")
    assert all_files(tmp_path) == ["a-file"]


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="needs RLIMIT_FSIZE")
def test_a_write_that_fails_half_way_keeps_the_old_file_and_leaves_no_partial_one(
        tmp_path: Path) -> None:
    old = tmp_path / "out.ipynb"
    old.write_text("the previous notebook\n")
    # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG like a full disk.
    result = build("--output", "out.ipynb", cwd=tmp_path, max_file_bytes=4096)
    assert_one_line_error(result, 1, "cannot write out.ipynb")
    assert old.read_text() == "the previous notebook\n"
    assert all_files(tmp_path) == ["out.ipynb"], "a partial or temporary file was left"


def test_a_good_output_is_written_whole_with_the_usual_mode(tmp_path: Path) -> None:
    result = build("--output", "out.ipynb", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out.ipynb"
    assert out.read_text(encoding="utf-8") == (ROOT / "notebooks" / NAME).read_text("utf-8")
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    assert all_files(tmp_path) == ["out.ipynb"]
    assert build("--check", "--output", "out.ipynb", cwd=tmp_path).returncode == 0


def test_check_tells_a_missing_notebook_from_a_stale_one_and_names_its_output(
        tmp_path: Path) -> None:
    """`--check --output X` said "X is stale: run scripts/build_notebook.py" for a missing X
    too, without `error:`, and that command (no --output) would rewrite the default notebook
    instead of X."""
    missing = build("--check", "--output", "out.ipynb", cwd=tmp_path)
    assert_one_line_error(missing, 1, "out.ipynb does not exist")
    assert missing.stderr.splitlines()[1] == (
        "hint: write it with scripts/build_notebook.py --output out.ipynb")
    (tmp_path / "out.ipynb").write_text("an older notebook\n")
    stale = build("--check", "--output", "out.ipynb", cwd=tmp_path)
    assert_one_line_error(stale, 1, "out.ipynb is stale")
    assert stale.stderr.splitlines()[1].endswith("scripts/build_notebook.py --output out.ipynb")
    assert build("--output", "out.ipynb", cwd=tmp_path).returncode == 0
    fresh = build("--check", "--output", "out.ipynb", cwd=tmp_path)
    assert (fresh.returncode, fresh.stderr) == (0, "")
    assert all_files(tmp_path) == ["out.ipynb"]


def test_what_running_the_notebook_leaves_is_not_offered_to_git() -> None:
    """Found by review: the notebook's runs (runs/ in the kernel's folder, notebooks/) and
    JupyterLab's checkpoints showed in `git status` of the checkout, a commit away from
    the repository."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    left = ["notebooks/runs/20260101-120000-tutorial/checkpoints/last.pt",
            "notebooks/.ipynb_checkpoints/first_pytorch_classifier-checkpoint.ipynb"]
    checked = subprocess.run(["git", "check-ignore", "--no-index", *left], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert checked.stdout.splitlines() == left, checked.stderr


def test_the_notebook_says_where_a_run_on_synthetic_data_goes() -> None:
    """Found by review: RUN_DIR's comment said None makes "a new folder under runs/ each
    time", and section 5 saved model_weights.pt "for use outside dlbox", while a run on the
    synthetic stand-in (the default without `dlbox data fetch`) goes to a temporary folder
    deleted when the kernel stops."""
    import nbformat

    cells = nbformat.read(ROOT / "notebooks" / NAME, as_version=4).cells
    settings = next(cell.source for cell in cells
                    if "parameters" in cell.metadata.get("tags", []))
    run_dir = settings[settings.index("RUN_DIR = None"):]
    assert "on synthetic data: a temporary folder, deleted when the kernel" in " ".join(
        line.strip().lstrip("# ") for line in run_dir.splitlines()), run_dir
    saving = next(cell.source for cell in cells if cell.source.startswith("## 5. Save"))
    assert "temporary folder" in saving and "set `RUN_DIR`" in saving, saving
