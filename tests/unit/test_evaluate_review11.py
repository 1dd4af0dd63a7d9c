"""Review 11 of `dlbox evaluate`: an --output evaluation cut short removes only what it
made, never what other evaluations wrote beside it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import finished_tiny_run

from dlbox.training import report
from dlbox.training.evaluate import evaluate_run


def test_an_output_evaluation_cut_short_keeps_what_others_wrote_in_the_folders_it_made(
        tmp_path: Path, fake_cifar_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: `evaluate --output reports/a`, stopped (SIGTERM, a full disk) after another
    evaluation wrote reports/b, removed reports/ whole, the other's finished report with it:
    the folders it made went with shutil.rmtree."""
    run_dir = finished_tiny_run(tmp_path)
    reports = tmp_path / "reports"
    real_plot = report.plot_confusion_matrix

    def another_evaluation_then_stopped(*args: object, **kwargs: object) -> None:
        real_plot(*args, **kwargs)  # type: ignore[arg-type]
        (reports / "b").mkdir()
        (reports / "b" / "evaluation.json").write_text("{}")  # the other one's report
        (reports / "a" / "notes.txt").write_text("mine")  # the user's, in the new folder
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "plot_confusion_matrix", another_evaluation_then_stopped)
    with pytest.raises(KeyboardInterrupt):
        evaluate_run(run_dir, data_dir=fake_cifar_dir, device="cpu", quiet=True,
                     output=reports / "a")
    assert (reports / "b" / "evaluation.json").read_text() == "{}"
    assert sorted(p.name for p in (reports / "a").iterdir()) == ["notes.txt"]  # no staging


def test_an_output_evaluation_cut_short_leaves_no_folder_it_made_empty(
        tmp_path: Path, fake_cifar_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the rmtree was for: a new --output folder (and the ones above it it made) are not
    left behind, empty, by an evaluation that wrote nothing there."""
    run_dir = finished_tiny_run(tmp_path)
    (tmp_path / "kept").mkdir()

    def stopped(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "plot_confusion_matrix", stopped)
    with pytest.raises(KeyboardInterrupt):
        evaluate_run(run_dir, data_dir=fake_cifar_dir, device="cpu", quiet=True,
                     output=tmp_path / "kept" / "new" / "deeper")
    assert list((tmp_path / "kept").iterdir()) == []
