"""Review 10: a SIGKILL (or a power cut) while an evaluation moved its staged report into
place left half a new report beside the old one (a TTA predictions.csv, a metrics.json
saying tta false), and the next command deleted the rest of the new report with its staging
folder. The next command that may write there now finishes the moves."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import finished_tiny_run

from dlbox.errors import FileWriteError
from dlbox.training.evaluate import evaluate_run
from dlbox.training.loop import AlreadyFinished, resume
from dlbox.training.placing import MOVING_FILE, STAGING_PREFIX, finish_placing

# `dlbox ARGS`, SIGKILLed at the first os.replace whose source or target matches KILL_AT
_KILLED_CLI = """
import os, re, signal, sys
pattern = re.compile(os.environ["KILL_AT"])
def hook(event, args):
    if event in ("os.replace", "os.rename") and any(
            isinstance(a, (str, os.PathLike)) and pattern.search(os.fspath(a)) for a in args[:2]):
        os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(hook)
from dlbox.cli import main
sys.argv[0] = "dlbox"
sys.exit(main(sys.argv[1:]))
"""



def _killed_evaluate(args: list[str], kill_at: str) -> None:
    """`dlbox evaluate ARGS --tta` SIGKILLed at the move that matches `kill_at`."""
    env = {**os.environ, "KILL_AT": kill_at}
    done = subprocess.run([sys.executable, "-c", _KILLED_CLI, "evaluate", *args, "--tta",
                           "--device", "cpu"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr


def _stagings(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(STAGING_PREFIX)]


def _evaluation(document_path: Path) -> dict:
    document = json.loads(document_path.read_text())
    return document.get("evaluation", document)


def _same_report(evaluated: dict, reference: dict) -> None:
    for key in ("tta", "test_accuracy", "test_correct", "mean_confidence", "per_class"):
        assert evaluated[key] == reference[key], key


def test_resume_finishes_placing_a_report_an_evaluation_was_killed_placing(
        tmp_path: Path, fake_cifar_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = finished_tiny_run(tmp_path)
    evaluate_run(run_dir, data_dir=fake_cifar_dir, device="cpu", quiet=True, tta=False)
    old_predictions = (run_dir / "predictions.csv").read_bytes()
    _killed_evaluate([str(run_dir), "--data", str(fake_cifar_dir)],
                     kill_at=rf"^{re.escape(str(run_dir))}/confusion_matrix\.json$")
    # what the review found: a new predictions.csv beside the old metrics.json
    assert (run_dir / "predictions.csv").read_bytes() != old_predictions
    assert _evaluation(run_dir / "metrics.json")["tta"] is False
    assert len(_stagings(run_dir)) == 1

    with pytest.raises(AlreadyFinished):
        resume(run_dir, device="cpu", data_dir=fake_cifar_dir, progress=False)
    assert capsys.readouterr().err.count(
        f"note: finished placing the report an interrupted evaluation left in {run_dir}") == 1
    assert _stagings(run_dir) == []
    reference = tmp_path / "reference"  # the same evaluation, written whole elsewhere
    evaluate_run(run_dir, data_dir=fake_cifar_dir, device="cpu", quiet=True, tta=True,
                 output=reference)
    assert (run_dir / "predictions.csv").read_bytes() == (
        reference / "predictions.csv").read_bytes()
    assert (run_dir / "confusion_matrix.json").read_bytes() == (
        reference / "confusion_matrix.json").read_bytes()
    _same_report(_evaluation(run_dir / "metrics.json"), _evaluation(reference / "evaluation.json"))


def test_an_evaluation_into_output_finishes_placing_one_killed_placing_there(
        tmp_path: Path, fake_cifar_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Into --output no lock is held: the staging folder of an ended owner is finished."""
    run_dir = finished_tiny_run(tmp_path)
    output = tmp_path / "out"
    _killed_evaluate([str(run_dir), "--data", str(fake_cifar_dir), "--output", str(output)],
                     kill_at=rf"^{re.escape(str(output))}/predictions\.csv$")
    assert not (output / "evaluation.json").exists()
    assert len(_stagings(output)) == 1
    capsys.readouterr()
    evaluate_run(run_dir, data_dir=fake_cifar_dir, device="cpu", quiet=True, tta=False,
                 output=output)
    assert capsys.readouterr().err.count(
        f"note: finished placing the report an interrupted evaluation left in {output}") == 1
    assert _stagings(output) == []
    assert _evaluation(output / "evaluation.json")["tta"] is False  # the new one, whole


def test_a_staging_folder_killed_before_its_report_was_whole_is_removed(
        tmp_path: Path, fake_cifar_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Killed while the staged metrics.json was still being written: nothing is placed, the
    old report stays as it was, and the folder goes."""
    run_dir = finished_tiny_run(tmp_path)
    evaluate_run(run_dir, data_dir=fake_cifar_dir, device="cpu", quiet=True, tta=False)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    _killed_evaluate([str(run_dir), "--data", str(fake_cifar_dir)],
                     kill_at=rf"/{re.escape(STAGING_PREFIX)}[^/]*/metrics\.json$")
    (staging,) = _stagings(run_dir)
    assert (staging / "predictions.csv").is_file()
    capsys.readouterr()
    with pytest.raises(AlreadyFinished):
        resume(run_dir, device="cpu", data_dir=fake_cifar_dir, progress=False)
    assert "finished placing" not in capsys.readouterr().err
    assert _stagings(run_dir) == []
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


_STAGED = ["predictions.csv", "confusion_matrix.json", "evaluation.json"]


def _killed_placing(output: Path, old: bool) -> Path:
    """A killed evaluation's staging folder in `output`, its report whole (MOVING_FILE
    written), nothing of it moved yet; `old`: an older report in `output` it replaces."""
    staging = output / f"{STAGING_PREFIX}host:4000000:1:ns.abcdefgh.tmp"
    staging.mkdir(parents=True)
    for name in _STAGED:
        (staging / name).write_text(f"new {name}")
        if old:
            (output / name).write_text(f"old {name}")
    (staging / MOVING_FILE).write_text("".join(f"{name}\n" for name in _STAGED))
    return staging


@pytest.mark.parametrize("old", [False, True])
def test_finish_placing_a_file_another_process_placed_first_is_no_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: bool) -> None:
    """Found by review: two evaluations into one --output finished one killed evaluation's
    staging folder at once; the one whose move of a file the other had just made got
    `FileWriteError: cannot write .../predictions.csv: No such file or directory` and threw
    its own finished report away (7 of 80). The other process's move is made here between
    this one's listing and its move, as the race had it."""
    output = tmp_path / "out"
    staging = _killed_placing(output, old)
    real_replace = os.replace
    rival = staging / "predictions.csv"

    def replace_after_the_rival(source: object, target: object) -> None:
        if Path(os.fspath(source)) == rival and rival.exists():  # type: ignore[arg-type]
            real_replace(source, target)  # type: ignore[arg-type]  # the other process's
        real_replace(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", replace_after_the_rival)
    finish_placing(staging)
    monkeypatch.undo()
    assert {name: (output / name).read_text() for name in _STAGED} == {
        name: f"new {name}" for name in _STAGED}


def test_finish_placing_still_fails_on_a_file_it_cannot_place(tmp_path: Path) -> None:
    """A real write error (a folder where the file goes) is not taken for a rival's move."""
    output = tmp_path / "out"
    staging = _killed_placing(output, old=False)
    (output / "predictions.csv").mkdir()
    with pytest.raises(FileWriteError, match="predictions.csv"):
        finish_placing(staging)
    assert (staging / "predictions.csv").is_file()
