"""`dlbox evaluate|predict|notebook` with a path given an empty value ("$VAR" unset): argparse's
`type=Path` made "" into ".", so `evaluate ""` run from inside a run dir evaluated that folder
and `notebook --notebook-dir ""` served the current one. Each is now a usage error (exit 2,
`error:` and `hint:` lines, nothing on stdout) before anything is read or written. An empty
IMAGE of `predict` is that file's own one-line error, as for any file it cannot read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlbox.cli import main
from dlbox.errors import EXIT_ERROR, EXIT_PARTIAL, EXIT_USAGE


def a_run_dir(folder: Path) -> list[str]:
    """Make `folder` look like a run dir (what "." would have been taken for); its names."""
    (folder / "config.json").write_text("{}\n")
    (folder / "checkpoints").mkdir()
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("argv, error", [
    (["evaluate", ""], "RUN_DIR was given as an empty path"),
    (["evaluate", " "], "RUN_DIR was given as an empty path"),
    (["evaluate", "", "--json"], "RUN_DIR was given as an empty path"),
    (["evaluate", "", "--checkpoint", ""], "RUN_DIR was given as an empty path"),
    (["evaluate", "run", "--data", ""], "--data was given an empty path"),
    (["evaluate", "run", "--checkpoint", ""], "--checkpoint needs a name or a path"),
    (["evaluate", "nowhere", "--checkpoint", " "], "--checkpoint needs a name or a path"),
    (["predict", "", "x.png"], "RUN_DIR was given as an empty path"),
    (["predict", "", ""], "RUN_DIR was given as an empty path"),
    (["predict", "", "x.png", "--json"], "RUN_DIR was given as an empty path"),
    (["predict", "run", "x.png", "--checkpoint", ""], "--checkpoint needs a name or a path"),
    (["predict", "nowhere", "x.png", "--checkpoint", ""], "--checkpoint needs a name or a path"),
    (["notebook", "--notebook-dir", "", "--no-browser"], "--notebook-dir was given an empty path"),
    (["notebook", "--notebook-dir", " ", "--no-browser", "--container"],
     "--notebook-dir was given an empty path"),
])
def test_an_empty_path_is_a_usage_error_not_the_current_folder(
        argv: list[str], error: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLBOX_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # no engine needed
    before = a_run_dir(tmp_path)  # "." is a run dir, as when run from inside one
    (tmp_path / "run").mkdir()
    inside = a_run_dir(tmp_path / "run")
    assert main(argv) == EXIT_USAGE
    captured = capsys.readouterr()
    first, hint = captured.err.strip().splitlines()
    assert first.startswith(f"error: {error}") and "empty" in first
    assert hint.startswith("hint: ")
    assert captured.out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "run"])
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == inside  # no lock file
    assert not any((tmp_path / "checkpoints").iterdir())


def test_the_run_dir_message_is_worded_as_project_dirs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "", "x.png"]) == EXIT_USAGE
    assert capsys.readouterr().err.splitlines() == [
        "error: RUN_DIR was given as an empty path",
        "hint: pass the directory `dlbox train` wrote (is the shell variable you used set?)"]
    assert main(["notebook", "--notebook-dir", ""]) == EXIT_USAGE
    assert capsys.readouterr().err.splitlines() == [
        "error: --notebook-dir was given an empty path",
        "hint: pass a path after --notebook-dir (is the shell variable you used set?), or "
        "leave the flag out for its default"]


@pytest.fixture()
def fake_predict(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """predict_images without a model: every path it is given gets a `cat` prediction."""
    import dlbox.training.predict as predict
    from dlbox.training.predict import PredictionResult

    calls: list[list[str]] = []

    def predict_images(run_dir: object, paths: list[str], **kwargs: object) -> list[object]:
        calls.append(list(paths))
        return [PredictionResult(str(p), "cat", 0.9, (("cat", 0.9),)) for p in paths]

    monkeypatch.setattr(predict, "predict_images", predict_images)
    return calls


@pytest.mark.parametrize("images, code", [
    (["a.png", "", "b.png"], EXIT_PARTIAL),
    ([" ", "a.png"], EXIT_PARTIAL),
    ([""], EXIT_ERROR),
])
def test_an_empty_image_path_is_that_files_own_error(
        images: list[str], code: int, fake_predict: list[list[str]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Not `error: : no such file`: the empty name is shown as "" with the likely cause, and
    the other files still get their predictions, in the order given."""
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "run", *images]) == code
    captured = capsys.readouterr()
    named = [image for image in images if image.strip()]
    assert fake_predict == [named]
    assert captured.out.splitlines() == [f"{image}: cat  (cat 90.0 %)" for image in named]
    empty = len(images) - len(named)
    assert captured.err.splitlines() == [
        *[f'error: "{image}": an empty path, not an image file (is the shell variable you '
          'used set?)' for image in images if not image.strip()],
        f"{empty} of {len(images)} file{'s' if len(images) > 1 else ''} failed"]
    assert list(tmp_path.iterdir()) == []

    assert main(["predict", "run", *images, "--json"]) == code
    listed = json.loads(capsys.readouterr().out)
    assert [entry["path"] for entry in listed] == images
    assert [entry["ok"] for entry in listed] == [bool(image.strip()) for image in images]
