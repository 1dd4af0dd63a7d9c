"""Newcomer review 14: a URL passed to `dlbox predict` (it said "no such file"), the folder
that holds the runs passed as a run (it said "not a dlbox run directory", naming none of
the runs in it), and a $DLBOX_DATA that does not exist (it said "no CIFAR-10 data found",
where --data DIR said "does not exist")."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from dlbox.cli import main
from dlbox.data.cifar10 import CIFAR10_CLASSES
from dlbox.errors import EXIT_ERROR, EXIT_PARTIAL, RunDirError
from dlbox.text import shell_quote
from dlbox.training import predict as pr
from dlbox.training.checkpoint import read_run_config
from dlbox.training.predict import PredictionFailure

# --- 1. predict and a URL --------------------------------------------------------------------


def a_fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any RUN_DIR predicts with a model that says "airplane" for everything."""
    def model_fn(batch: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(batch.shape[0], len(CIFAR10_CLASSES))
        logits[:, 0] = 5.0
        return logits

    def fake_load(run_dir, device="auto", checkpoint="last"):  # type: ignore[no-untyped-def]
        loaded = SimpleNamespace(model=model_fn, config=SimpleNamespace(),
                                 preprocess=lambda images: images, classes=CIFAR10_CLASSES)
        return loaded, torch.device("cpu")

    monkeypatch.setattr(pr, "load_run_model", fake_load)


def url_failure(url: str, name: str, shown: str | None = None,
                run: str = "RUN_DIR") -> PredictionFailure:
    """`shown`: the URL with its password as *** (the curl then takes URL, to fill in)."""
    return PredictionFailure(
        url if shown is None else shown, "dlbox predict reads local image files, not URLs",
        f"download it first: curl -L -o {shell_quote(name)} "
        f"{shell_quote(url) if shown is None else 'URL'}, then "
        f"dlbox predict {run} {shell_quote(name)}")


@pytest.mark.parametrize("url, name", [
    ("https://example.com/cat.jpg", "cat.jpg"),
    ("HTTP://example.com/pets/dog%20one.png", "dog one.png"),
    ("ftp://example.com/a/b/bird.webp", "bird.webp"),
    ("https://example.com/cat.jpg?size=large&v=2#top", "cat.jpg"),  # not a glob pattern
    ("https://example.com/", "image.jpg"),
    ("https://example.com", "image.jpg"),
    # re-review: `dlbox predict RUN_DIR -cat.jpg` read -cat.jpg as a flag
    ("https://example.com/-cat.jpg", "./-cat.jpg"),
])
def test_a_url_is_said_to_be_one_with_a_download_command(
        url: str, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert pr.expand_image_paths([url]) == [url_failure(url, name)]


def test_a_url_with_a_password_never_shows_it(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = "https://me:s3cret@example.com/cat.jpg"
    [failure] = pr.expand_image_paths([url])
    assert isinstance(failure, PredictionFailure)
    assert "s3cret" not in failure.path + failure.error + failure.fix
    assert failure == url_failure(url, "cat.jpg", shown="https://me:***@example.com/cat.jpg")


def test_a_local_path_that_looks_like_a_url_is_read_as_a_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "https:" / "example.com").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "https:/example.com/cat.png")
    assert pr.expand_image_paths(["https://example.com/cat.png"]) == [
        "https://example.com/cat.png"]
    # and what is not a URL still gets the file's own error later
    assert pr.expand_image_paths(["httpx://a/b.jpg", "see https://a/b.jpg"]) == [
        "httpx://a/b.jpg", "see https://a/b.jpg"]


def test_predict_on_a_url_exits_1_and_with_a_file_beside_it_3(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    a_fake_model(monkeypatch)
    monkeypatch.chdir(tmp_path)
    url = "https://example.com/cat.jpg"
    assert main(["predict", "my run", url]) == EXIT_ERROR
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"error: {url}: dlbox predict reads local image files, not URLs; "
                      f"download it first: curl -L -o cat.jpg {shell_quote(url)}, then "
                      "dlbox predict 'my run' cat.jpg")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    assert main(["predict", "my run", url, "a.png"]) == EXIT_PARTIAL
    captured = capsys.readouterr()
    assert "a.png" in captured.out and "not URLs" in captured.err


# --- 2. the folder of runs passed as a run ---------------------------------------------------


def runs_folder(root: Path, names: list[str]) -> Path:
    """root/runs with a run (a folder with config.json) for each name, the later newer."""
    parent = root / "runs"
    parent.mkdir()
    for age, name in enumerate(names):
        run = parent / name
        run.mkdir()
        (run / "config.json").write_text("{}\n")
        os.utime(run / "config.json", (1_700_000_000 + age * 60,) * 2)
    (parent / "notes").mkdir()  # a folder without config.json is no run
    (parent / "README.txt").write_text("x")
    return parent


def test_the_folder_of_runs_names_the_newest_ones(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runs_folder(tmp_path, ["20261201-a", "20261202-b", "my run", "20261204-d", "20261205-e"])
    with pytest.raises(RunDirError) as info:
        read_run_config("runs")
    assert info.value.message == "runs has no config.json, so it is not a dlbox run directory"
    assert info.value.hint == ("it holds 5 runs: pass one of them: runs/20261205-e, "
                               "runs/20261204-d, 'runs/my run', and 2 more")


def test_the_folder_of_one_run_names_it(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runs_folder(tmp_path, ["20261201-a"])
    with pytest.raises(RunDirError) as info:
        read_run_config(Path("runs"))
    assert info.value.hint == "it holds 1 run: pass it: runs/20261201-a"


def test_a_folder_without_runs_keeps_the_old_hint(tmp_path: Path) -> None:
    with pytest.raises(RunDirError) as info:
        read_run_config(runs_folder(tmp_path, []))
    assert info.value.hint == "pass a directory made by `dlbox train`"


@pytest.mark.parametrize("command", [["evaluate", "runs"], ["predict", "runs", "a.png"]])
def test_evaluate_and_predict_on_the_folder_of_runs(
        command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    runs_folder(tmp_path, ["20261201-a", "20261202-b"])
    assert main(command) == EXIT_ERROR
    err = capsys.readouterr().err.splitlines()
    assert err[-2:] == ["error: runs has no config.json, so it is not a dlbox run directory",
                        "hint: it holds 2 runs: pass one of them: runs/20261202-b, "
                        "runs/20261201-a"]


# --- 3. a $DLBOX_DATA that does not exist ----------------------------------------------------


def test_a_missing_dlbox_data_is_said_not_to_exist(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "nonexistent"
    monkeypatch.setenv("DLBOX_DATA", str(missing))
    assert main(["train", "--model", "tiny",
                 "--run-dir", str(tmp_path / "runs" / "r")]) == EXIT_ERROR
    err = capsys.readouterr().err.splitlines()
    assert err[-2] == f"error: $DLBOX_DATA ({missing}) does not exist"
    assert err[-1].startswith("hint: point $DLBOX_DATA at the folder that holds your data (or "
                              "unset it, for the user cache dir), or fetch CIFAR-10 into it: "
                              "`dlbox data fetch` (offline: ")
    assert not missing.exists()


def test_an_existing_empty_dlbox_data_still_says_fetch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("DLBOX_DATA", str(tmp_path / "empty"))
    assert main(["train", "--model", "tiny",
                 "--run-dir", str(tmp_path / "runs" / "r")]) == EXIT_ERROR
    err = capsys.readouterr().err.splitlines()
    assert err[-2].startswith("error: no CIFAR-10 data found in ")


def test_a_missing_data_flag_keeps_its_words(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLBOX_DATA", str(tmp_path / "elsewhere"))
    assert main(["train", "--model", "tiny", "--data", "nowhere",
                 "--run-dir", str(tmp_path / "runs" / "r")]) == EXIT_ERROR
    err = capsys.readouterr().err.splitlines()
    assert err[-2] == f"error: --data {tmp_path / 'nowhere'} does not exist"
