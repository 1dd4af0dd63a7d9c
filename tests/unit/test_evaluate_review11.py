"""Review 11 of `dlbox evaluate`: an --output evaluation cut short removes only what it
made, never what other evaluations wrote beside it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import finished_tiny_run

from dlbox.text import shown_name
from dlbox.training import report
from dlbox.training.config import TrainConfig
from dlbox.training.evaluate import evaluate_run


def _evaluate_stopped_at_its_plot(run_dir: Path, data: Path, monkeypatch: pytest.MonkeyPatch,
                                  output: Path) -> None:
    """`evaluate --output OUTPUT`, stopped (a Ctrl-C) while it draws its confusion matrix."""
    def stopped(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "plot_confusion_matrix", stopped)
    with pytest.raises(KeyboardInterrupt):
        evaluate_run(run_dir, data_dir=data, device="cpu", quiet=True, output=output)


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
    _evaluate_stopped_at_its_plot(run_dir, fake_cifar_dir, monkeypatch,
                                  tmp_path / "kept" / "new" / "deeper")
    assert list((tmp_path / "kept").iterdir()) == []


def test_paths_that_are_not_utf8_are_written_as_valid_json(
        tmp_path: Path, fake_cifar_dir: Path) -> None:
    """Review: a run dir whose name is not UTF-8 went into `evaluate --json` and metrics.json
    as lone surrogates ("\\udcff"), invalid Unicode that strict JSON parsers refuse; predict
    --json already wrote such a path as the text output shows it."""
    run_dir = finished_tiny_run(tmp_path).rename(tmp_path / os.fsdecode(b"run_\xff"))
    document = evaluate_run(run_dir, data_dir=fake_cifar_dir, device="cpu", quiet=True)
    written = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    for details in (document, written["evaluation"]):
        for key in ("run_dir", "checkpoint", "data"):
            details[key].encode("utf-8")  # no lone surrogate
        assert details["run_dir"] == shown_name(str(run_dir.resolve()))


def test_a_deleted_metrics_file_is_said_missing_not_lagging(
        tmp_path: Path, fake_cifar_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Review: after `rm metrics.json` (what the hint for a damaged one says), evaluate said
    training had stopped between its checkpoint and metrics.json writes."""
    from dlbox.training.loop import train

    run_dir = train(TrainConfig(model="tiny", epochs=2, batch_size=50, num_train=100,
                                num_test=20, data_dir=str(fake_cifar_dir), device="cpu",
                                run_dir=str(tmp_path / "run")),
                    progress=False, evaluate_at_end=False)
    (run_dir / "metrics.json").unlink()
    capsys.readouterr()
    evaluate_run(run_dir, device="cpu", quiet=True)
    err = capsys.readouterr().err
    assert "note: metrics.json was missing: its history is written again from " \
           "checkpoints/last.pt (epoch 2)" in err, err
    assert "lagged" not in err
    assert len(json.loads((run_dir / "metrics.json").read_text())["history"]) == 2


def test_an_output_through_dot_dot_cut_short_keeps_a_folder_that_was_there(
        tmp_path: Path, fake_cifar_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-review: `--output new/../shared/sub`, cut short, removed the empty shared/ the user
    had (its lexical parents were taken for folders the evaluation made)."""
    run_dir = finished_tiny_run(tmp_path)
    (tmp_path / "shared").mkdir()
    _evaluate_stopped_at_its_plot(run_dir, fake_cifar_dir, monkeypatch,
                                  tmp_path / "new" / ".." / "shared" / "sub")
    assert (tmp_path / "shared").is_dir()
    assert not (tmp_path / "new").exists() and not (tmp_path / "shared" / "sub").exists()
