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


def usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """Run `dlbox ARGV`: exit 2, nothing on stdout, and two lines on stderr: (error, hint)."""
    assert main(argv) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    error, hint = captured.err.strip().splitlines()
    return error, hint


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
    first, hint = usage_error(argv, capsys)
    assert first.startswith(f"error: {error}") and "empty" in first
    assert hint.startswith("hint: ")
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
        "leave the flag out"]
    # --record has no default to leave it out "for": without it, doctor records nothing
    assert main(["doctor", "--record", ""]) == EXIT_USAGE
    assert capsys.readouterr().err.splitlines()[1] == (
        "hint: pass a path after --record (is the shell variable you used set?), or leave the "
        "flag out")


@pytest.fixture()
def fake_predict(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """predict_images without a model: the paths expanded as it expands them (an empty one
    a failure), every file then a `cat` prediction; `calls` holds the files of each call."""
    import dlbox.training.predict as predict
    from dlbox.training.predict import PredictionResult

    calls: list[list[str]] = []

    def predict_images(run_dir: object, paths: list[str], **kwargs: object) -> list[object]:
        entries = predict.expand_image_paths(paths)
        calls.append([entry for entry in entries if isinstance(entry, str)])
        return [PredictionResult(entry, "cat", 0.9, (("cat", 0.9),))
                if isinstance(entry, str) else entry for entry in entries]

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
          "used set?); pass the image file's path" for image in images if not image.strip()],
        f"{empty} of {len(images)} file{'s' if len(images) > 1 else ''} failed"]
    assert list(tmp_path.iterdir()) == []

    assert main(["predict", "run", *images, "--json"]) == code
    listed = json.loads(capsys.readouterr().out)
    assert [entry["path"] for entry in listed] == images
    assert [entry["ok"] for entry in listed] == [bool(image.strip()) for image in images]


# ---- dlbox image build | run ----------------------------------------------------------------
# `dlbox image build|run` with a path flag given an empty value ("$VAR" unset): argparse's
# `type=Path` made "" into ".", so `image run --data ""` mounted the current folder as the
# data and `image build ""` built the current folder. Each is now the usage error the other
# commands give, before any engine is asked.

@pytest.mark.parametrize("argv, named", [
    (["image", "run", "--data", "", "--", "true"], "--data"),
    (["image", "run", "--runs", " ", "--", "true"], "--runs"),
    (["image", "build", "--dry-run", "--wheelhouse", ""], "--wheelhouse"),
    (["image", "build", "--dry-run", "--ca-cert", ""], "--ca-cert"),
    (["image", "build", "--dry-run", "--lock", ""], "--lock"),
    (["image", "build", "", "--dry-run"], "PROJECT_DIR"),
])
def test_an_empty_path_is_refused_not_taken_as_the_current_folder(
        argv: list[str], named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "requirements.txt").write_text("numpy\n")  # a project "." would build
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # no engine needed
    error, hint = usage_error(argv, capsys)
    assert error.startswith(f"error: {named} was given") and "empty path" in error
    assert hint.startswith("hint: pass ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["requirements.txt"]  # no lock, no runs


def test_a_given_path_still_reaches_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["image", "build", "--dry-run", "--wheelhouse", str(tmp_path / "nowhere")]) \
        == EXIT_USAGE
    assert f"--wheelhouse {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err


def test_env_takes_name_equals_value_or_a_name_whose_value_this_shell_has(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`--env NAME` passes this shell's value on, as `docker run -e NAME` does (it was refused
    as "not NAME=VALUE"); an unset NAME is an error, where docker drops it without a word."""
    from dlbox.cli.image import _parse_env
    from dlbox.errors import UsageError

    monkeypatch.setenv("DLBOX_TEST_TOKEN", "s3cret=1")
    monkeypatch.delenv("DLBOX_TEST_UNSET", raising=False)
    assert _parse_env(["SEED=1", "DLBOX_TEST_TOKEN", "EMPTY="]) == (
        ("SEED", "1"), ("DLBOX_TEST_TOKEN", "s3cret=1"), ("EMPTY", ""))
    with pytest.raises(UsageError) as info:
        _parse_env(["DLBOX_TEST_UNSET"])
    assert info.value.message == ("--env DLBOX_TEST_UNSET: DLBOX_TEST_UNSET is not set in this "
                                  "shell, so there is no value to pass on")
    for bad in ("=1", "A B=1", ""):
        with pytest.raises(UsageError, match="is not NAME=VALUE or NAME"):
            _parse_env([bad])


@pytest.mark.parametrize("argv, error", [
    (["image", "run", "--tag", "x:y", "--", ""], 'error: the command to run is empty (`-- ""`)'),
    (["image", "run", "--tag", "x:y", " "], 'error: the command to run is empty (`-- ""`)'),
    (["image", "run", "--tag", "x:y", "--gpus", "", "--", "echo"],
     "error: --gpus was given an empty value"),
])
def test_image_run_refuses_an_empty_command_or_gpus(
        argv: list[str], error: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: `-- "$CMD"` with CMD unset reached the container, where tini said only
    `[FATAL tini (7)] exec  failed` (exit 127); `--gpus "$GPUS"` ran with the default GPUs.
    Both are refused before the engine is asked anything."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    first, hint = usage_error(argv, capsys)
    assert first == error and hint.startswith("hint: ")
