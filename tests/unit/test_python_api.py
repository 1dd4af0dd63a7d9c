"""The Python API as a script uses it: errors that keep their hint in a plain traceback and
across processes, a loaded model that predicts as `dlbox predict` does, predict_images on
folders and generators, and bad arguments refused with a hint."""

from __future__ import annotations

import importlib
import pickle
import pkgutil
import subprocess
import sys
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import dlbox
from dlbox.errors import DlboxError, FileWriteError, NoDataError, UsageError

DLBOX = str(Path(sys.executable).with_name("dlbox"))


# Python 3.10's traceback prints no exception notes (PEP 678 came with 3.11).
prints_notes = pytest.mark.skipif(sys.version_info < (3, 11),
                                  reason="Python 3.10's traceback prints no exception notes")


def formatted(error: BaseException) -> str:
    """What a plain script prints for `error` (Python's own traceback)."""
    return "".join(traceback.format_exception(error))


# --- the hint in a plain traceback -------------------------------------------------------------


@prints_notes
def test_a_script_that_fails_prints_the_hint_under_the_error(tmp_path: Path) -> None:
    """Review: `python -c "load_dataset(EMPTY, 'train')"` printed the error without its hint,
    which only the CLI and IPython showed."""
    script = ("from dlbox.data import load_dataset\n"
              f"load_dataset({str(tmp_path)!r}, 'train')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[-2] == f"dlbox.errors.NoDataError: no CIFAR-10 data found in {tmp_path}"
    assert lines[-1].startswith(f"hint: run `dlbox data fetch --data {tmp_path}`")
    assert result.stderr.count("hint:") == 1


@prints_notes
def test_a_hint_set_after_the_error_was_made_is_the_one_printed(tmp_path: Path) -> None:
    """Callers reword a hint on its way up (`error.hint = ...`): the traceback shows the last
    one only, and none once it is taken away."""
    error = DlboxError("it failed", hint="the first fix")
    error.hint = "the better fix"
    text = formatted(error)
    assert "hint: the better fix" in text and "the first fix" not in text
    assert text.count("hint:") == 1
    error.add_note("a note of the caller's own")  # type: ignore[attr-defined]  # 3.11+
    error.hint = None
    assert "hint:" not in formatted(error) and "a note of the caller's own" in formatted(error)
    # a stop in a script keeps the command that resumes it (review: Ctrl-C lost it)
    from dlbox.training.loop import TrainingStopped

    stopped = TrainingStopped(tmp_path / "run", "Ctrl-C", 130)
    assert f"hint: continue with: dlbox train --resume {tmp_path / 'run'}" in formatted(stopped)


def test_the_cli_still_prints_one_error_and_one_hint_line(tmp_path: Path) -> None:
    """The note is for plain tracebacks: the CLI's own two lines stay two."""
    (tmp_path / "empty").mkdir()
    result = subprocess.run([DLBOX, "train", "--model", "tiny", "--device", "cpu", "--data",
                             str(tmp_path / "empty"), "--run-dir", str(tmp_path / "run")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert [line.split(":")[0] for line in lines] == ["error", "hint"], result.stderr


def test_ipython_shows_the_hint_once() -> None:
    pytest.importorskip("IPython")
    code = "from dlbox.errors import DlboxError; raise DlboxError('it failed', 'the fix')"
    result = subprocess.run([sys.executable, "-m", "IPython", "--no-banner", "--colors=NoColor",
                             "-c", code], capture_output=True, text=True, check=False)
    shown = result.stdout + result.stderr
    assert "error: it failed" in shown and shown.count("hint: the fix") == 1, shown


# --- across processes ---------------------------------------------------------------------------


def _all_subclasses(cls: type[DlboxError]) -> list[type[DlboxError]]:
    found: list[type[DlboxError]] = []
    for sub in cls.__subclasses__():
        found += [sub, *_all_subclasses(sub)]
    return found


def _import_every_dlbox_module() -> None:
    for module in pkgutil.walk_packages(dlbox.__path__, "dlbox."):
        if not module.name.endswith(".__main__"):  # that one runs the CLI
            importlib.import_module(module.name)


def _made_with_their_own_arguments() -> dict[str, Callable[[], DlboxError]]:
    """One instance of each subclass whose __init__ is its own, built as dlbox builds it."""
    from dlbox.container.engine import CommandNotRunnable
    from dlbox.data.imagefolder import ImageTreeAccessError
    from dlbox.hostenv.resolve import DriverTooOld, NoBuildForPython
    from dlbox.training.loop import Diverged, TrainingStopped

    return {
        "NoDataError": lambda: NoDataError("no data in /d", Path("/d"), hint="fetch it"),
        "FileWriteError": lambda: FileWriteError(Path("/r/x"), "No space left on device",
                                                 kind="no-space"),
        "TrainingStopped": lambda: TrainingStopped(Path("/r"), "Ctrl-C", 130, saved_epoch=2),
        "Diverged": lambda: Diverged(3, 0.1, Path("/r"), " (nothing saved)", ""),
        "ImageTreeAccessError": lambda: ImageTreeAccessError("cannot read /p", "chmod it",
                                                             Path("/p")),
        "CommandNotRunnable": lambda: CommandNotRunnable("./x.py", "permission denied", "img",
                                                         "/project"),
        "NoBuildForPython": lambda: NoBuildForPython("no torch for 3.9", "use 3.11",
                                                     ("3.11",)),
        "DriverTooOld": lambda: DriverTooOld("driver 418 is too old", "update it", "450.80.02"),
    }


def test_every_dlbox_error_survives_pickling() -> None:
    """Review: NoDataError and FileWriteError could not be unpickled (a worker process's
    error became BrokenProcessPool)."""
    _import_every_dlbox_module()
    makers = _made_with_their_own_arguments()
    # A benchmark script that tests loaded twice (conftest.load_benchmark: a fresh module
    # each time) leaves its first copy's classes behind, which no name reaches any more: only
    # the classes their module holds are checked.
    classes: list[type[DlboxError]] = [
        cls for cls in (DlboxError, *_all_subclasses(DlboxError))
        if getattr(sys.modules.get(cls.__module__), cls.__qualname__, None) is cls]
    assert len(classes) >= 18  # every module's, imported above (18 when written)
    for cls in classes:
        if "__init__" in vars(cls) and cls is not DlboxError:
            assert cls.__name__ in makers, f"{cls.__name__}: add how it is made to this test"
            error = makers[cls.__name__]()
        else:
            error = cls("it failed", hint="the fix")
        copy: DlboxError = pickle.loads(pickle.dumps(error))
        assert type(copy) is cls
        assert (copy.message, copy.hint, str(copy)) == (error.message, error.hint, str(error))
        assert vars(copy) == vars(error), cls.__name__
        if sys.version_info >= (3, 11):
            assert formatted(copy).count("hint:") == (1 if error.hint else 0), cls.__name__


def test_a_worker_process_raises_the_dlbox_error_in_the_caller(tmp_path: Path) -> None:
    from dlbox.data import load_dataset

    with ProcessPoolExecutor(1) as pool:
        future = pool.submit(load_dataset, str(tmp_path), "train")
        with pytest.raises(NoDataError) as info:
            future.result()
    assert info.value.data_dir == tmp_path and info.value.hint
    assert info.value.hint.startswith("run `dlbox data fetch")


# --- a trained run: a loaded model and predict_images ------------------------------------------


@pytest.fixture(scope="module")
def speedrun_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One step of the speedrun model on CPU (its config asks for TTA), as small as it goes."""
    from dlbox.data.synthetic import write_fake_cifar10
    from dlbox.training.config import build_config
    from dlbox.training.loop import train

    root = tmp_path_factory.mktemp("api")
    write_fake_cifar10(root / "data", n_train=200, n_test=20, seed=0)
    config = build_config("speedrun", device="cpu", data_dir=str(root / "data"), epochs=1,
                          num_train=200, num_test=20, threads=2, run_dir=str(root / "run"))
    assert config.tta
    return Path(train(config, progress=False, evaluate_at_end=False))


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """photos/a.png, photos/sub/b.jpg, and what a folder leaves out (notes.txt, .hidden.png)."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(1)
    (folder / "sub").mkdir()
    for name in ("a.png", "sub/b.jpg", ".hidden.png"):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.mark.slow
def test_loaded_probabilities_agree_with_predict(speedrun_run: Path, photos: Path) -> None:
    """Review: LoadedModel.probabilities never applied TTA, so for the speedrun model (whose
    config asks for it) it disagreed with `dlbox predict` and the report."""
    from dlbox.training.checkpoint import load_model_from_run
    from dlbox.training.predict import PredictionResult, load_image, predict_images

    loaded = load_model_from_run(speedrun_run, device="cpu")
    image = load_image(photos / "a.png")[None]
    for tta in (None, False, True):
        (result,) = predict_images(speedrun_run, photos / "a.png", device="cpu", top_k=10,
                                   tta=tta)
        assert isinstance(result, PredictionResult)
        mine = loaded.probabilities(image, tta=tta)[0]
        theirs = torch.tensor([dict(result.top_k)[name] for name in loaded.classes],
                              dtype=torch.float64)
        torch.testing.assert_close(mine.double(), theirs, atol=1e-5, rtol=1e-4)
    with_tta = loaded.logits(image)
    assert not torch.allclose(with_tta, loaded.logits(image, tta=False))
    assert with_tta.requires_grad is False
    with_tta.mul_(2)  # an ordinary tensor, not an inference one


def _as_the_cli_predicts(run: Path, *images: str, capsys: pytest.CaptureFixture[str]
                         ) -> list[dict[str, Any]]:
    import json

    from dlbox.cli import main

    main(["predict", str(run), *images, "--device", "cpu", "--top-k", "10", "--json"])
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_predict_images_reads_folders_and_patterns_as_the_cli_does(
        speedrun_run: Path, photos: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Review: predict_images refused a folder ("is a directory") that `dlbox predict`
    reads, and crashed on a generator (len())."""
    from dlbox.training.predict import PredictionFailure, predict_images

    (tmp_path / "nothing").mkdir()
    asked = [str(photos), str(photos / "*.png"), str(tmp_path / "nothing")]
    results = predict_images(speedrun_run, (p for p in asked), device="cpu", top_k=10)
    assert [r.path for r in results] == [str(photos / "a.png"), str(photos / "sub" / "b.jpg"),
                                         str(photos / "a.png"), str(tmp_path / "nothing")]
    assert isinstance(results[-1], PredictionFailure)
    assert results[-1].error.startswith("is a folder without image files")
    assert [r.to_dict() for r in results] == _as_the_cli_predicts(speedrun_run, *asked,
                                                                  capsys=capsys)


class OwnPath:
    """An os.PathLike that is not a pathlib.Path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return str(self.path)


@pytest.mark.slow
@pytest.mark.parametrize("kwargs, wrong", [
    ({"top_k": 2.5}, "top_k must be a whole number of at least 1, got 2.5"),
    ({"top_k": True}, "top_k must be a whole number of at least 1, got True"),
    ({"tta": "no"}, "tta must be True, False or None, got 'no'"),  # it was taken as True
])
def test_predict_images_refuses_bad_arguments_with_a_hint(
        kwargs: dict[str, Any], wrong: str, speedrun_run: Path, photos: Path) -> None:
    from dlbox.training.predict import predict_images

    with pytest.raises(UsageError) as info:
        predict_images(speedrun_run, photos / "a.png", device="cpu", **kwargs)
    assert info.value.message == wrong and info.value.hint


@pytest.mark.slow
def test_a_loaded_model_refuses_bad_arguments_with_a_hint(speedrun_run: Path,
                                                          photos: Path) -> None:
    from dlbox.training.checkpoint import load_model_from_run
    from dlbox.training.predict import load_image, predict_images

    loaded = load_model_from_run(OwnPath(speedrun_run), device="cpu")  # any os.PathLike
    image = load_image(photos / "a.png")[None]
    for kwargs, wrong in (({"batch_size": 0}, "batch_size must be a positive whole number"),
                          ({"batch_size": 2.0}, "batch_size must be a positive whole number"),
                          ({"tta": "no"}, "tta must be True, False or None")):
        for method in (loaded.logits, loaded.probabilities):
            with pytest.raises(UsageError) as info:
                method(image, **kwargs)
            assert wrong in info.value.message and info.value.hint
    (result,) = predict_images(OwnPath(speedrun_run), [OwnPath(photos / "a.png")],
                               device="cpu")
    assert result.path == str(photos / "a.png")

