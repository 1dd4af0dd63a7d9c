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

from dlbox.training.evaluate import STAGING_PREFIX, evaluate_run
from dlbox.training.loop import AlreadyFinished, resume

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
