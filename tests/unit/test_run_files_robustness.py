"""Damaged run files, bad settings and unexpected errors end in one `error:` line and a hint,
never a traceback."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from dlbox import cli
from dlbox.errors import EXIT_ERROR, EXIT_INTERNAL, EXIT_USAGE, RunDirError
from dlbox.fileio import write_json_atomic
from dlbox.models import create_model
from dlbox.training.checkpoint import (
    CHECKPOINT_FORMAT,
    load_model_from_run,
    load_state_dict_checked,
    read_run_config,
    save_checkpoint,
)
from dlbox.training.config import TrainConfig


def _run_dir(root: Path, **checkpoint: Any) -> Path:
    """A tiny run: config.json and checkpoints/last.pt; `checkpoint` entries override."""
    run_dir = root / "run"
    write_json_atomic(run_dir / "config.json", TrainConfig(model="tiny").to_dict())
    state = {"format": CHECKPOINT_FORMAT, "version": 1, "classes": list("abc"),
             "model": create_model("tiny", num_classes=3).state_dict(), "epoch": 1,
             "finished": False, **checkpoint}
    save_checkpoint(run_dir / "checkpoints" / "last.pt", state)
    return run_dir


def _one_line(error: RunDirError) -> None:
    assert "\n" not in error.message and "\t" not in error.message
    assert error.hint


@pytest.mark.parametrize("text", ["[]", '"x"', "5", "null", "{not json",
                                  '{"lr": "fast"}', '{"epochs": 0}', '{"model": []}',
                                  '{"model_kwargs": [1]}', '{"mean": 5}', '{"lr": Infinity}'])
def test_a_damaged_config_json_is_a_run_dir_error(tmp_path: Path, text: str) -> None:
    run_dir = _run_dir(tmp_path)
    (run_dir / "config.json").write_text(text)
    with pytest.raises(RunDirError, match="config.json") as info:
        read_run_config(run_dir)
    _one_line(info.value)
    with pytest.raises(RunDirError):
        load_model_from_run(run_dir, "cpu")


@pytest.mark.parametrize("entries, match", [
    ({"model": 5}, "no weights"),
    ({"model": None}, "no weights"),
    ({"model": {"0.weight": torch.zeros(1)}}, "does not fit"),
    ({"model": create_model("tiny", num_classes=3, width=4).state_dict()}, "does not fit"),
    ({"classes": 5}, "class list"),
    ({"classes": [1, 2, 3]}, "class list"),
    ({"epoch": "two"}, "epoch"),
    ({"format": "something-else"}, "not a dlbox training checkpoint"),
    ({"format": None}, "not a dlbox training checkpoint"),
])
def test_a_damaged_checkpoint_is_a_one_line_run_dir_error(tmp_path: Path, entries: dict,
                                                          match: str) -> None:
    run_dir = _run_dir(tmp_path, **entries)
    with pytest.raises(RunDirError, match=match) as info:
        load_model_from_run(run_dir, "cpu")
    _one_line(info.value)


def test_a_shape_mismatch_names_the_first_difference_on_one_line(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path, model=create_model("tiny", num_classes=3, width=4).state_dict())
    with pytest.raises(RunDirError) as info:
        load_model_from_run(run_dir, "cpu")
    assert "size mismatch for 0.weight" in info.value.message
    assert "model 'tiny'" in info.value.message


def test_load_state_dict_checked(tmp_path: Path) -> None:
    model = create_model("tiny", num_classes=3)
    other = create_model("tiny", num_classes=3)
    load_state_dict_checked(model, other.state_dict(), tmp_path / "last.pt")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 other.state_dict().values(), strict=True))
    for bad in (5, [1, 2], create_model("tiny", num_classes=4).state_dict(), {"x": 1}):
        with pytest.raises(RunDirError, match="last.pt") as info:
            load_state_dict_checked(model, bad, tmp_path / "last.pt", what="the model")
        _one_line(info.value)


def test_a_checkpoint_of_another_net_is_refused_in_a_line_of_bounded_length(
        tmp_path: Path) -> None:
    """torch names every missing key on one line (2,000 characters for a resnet); the error
    keeps its start."""
    run_dir = _run_dir(tmp_path)  # a tiny net's weights, for a run that says resnet
    write_json_atomic(run_dir / "config.json",
                      TrainConfig(model="resnet", model_kwargs={"width": 4}).to_dict())
    with pytest.raises(RunDirError) as info:
        load_model_from_run(run_dir, "cpu")
    _one_line(info.value)
    assert "Missing key(s)" in info.value.message or "Unexpected key(s)" in info.value.message
    assert len(info.value.message) < 400 and info.value.message.endswith("…)")


def test_a_file_given_as_the_run_dir_says_so(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RunDirError, match="is a file, not a run directory"):
        read_run_config(tmp_path / "afile")


def test_resume_from_a_damaged_config_json(tmp_path: Path) -> None:
    from dlbox.training.loop import resume

    run_dir = _run_dir(tmp_path)
    (run_dir / "config.json").write_text("[]")
    with pytest.raises(RunDirError, match="config.json"):
        resume(run_dir, device="cpu")


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(argv)
    return code, capsys.readouterr().err


def _check_one_error_line(err: str) -> None:
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: ") and lines[-1].startswith("hint: "), err
    assert len(lines) == 2 and "Traceback" not in err, err


# (resume's checkpoint loading lives in training/loop.py, which calls load_state_dict itself)
@pytest.mark.parametrize("command, damage", [
    *((command, damage) for command in ("evaluate", "predict")
      for damage in ("config", "model", "classes", "shapes")),
    ("train --resume", "config"),
])
def test_cli_on_a_damaged_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  command: str, damage: str) -> None:
    entries: dict[str, Any] = {"model": {"model": 5}, "classes": {"classes": 5},
                               "shapes": {"model": create_model("tiny", num_classes=3,
                                                                width=4).state_dict()},
                               "config": {}}[damage]
    run_dir = _run_dir(tmp_path, **entries)
    if damage == "config":
        (run_dir / "config.json").write_text("[]")
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    argv = {"evaluate": ["evaluate", str(run_dir), "--device", "cpu"],
            "predict": ["predict", str(run_dir), str(image), "--device", "cpu"],
            "train --resume": ["train", "--resume", str(run_dir), "--device", "cpu"]}[command]
    code, err = _cli(argv, capsys)
    assert code == EXIT_ERROR
    _check_one_error_line(err)


@pytest.mark.parametrize("flag, value", [("--lr", "inf"), ("--lr", "nan"),
                                         ("--weight-decay", "inf"), ("--momentum", "nan"),
                                         ("--label-smoothing=-inf", None)])
def test_cli_refuses_non_finite_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         flag: str, value: str | None) -> None:
    run_dir = tmp_path / "run"
    setting = [flag] if value is None else [flag, value]
    code, err = _cli(["train", "--model", "tiny", "--device", "cpu", "--run-dir", str(run_dir),
                      "--data", str(tmp_path / "data"), *setting], capsys)
    assert code == EXIT_USAGE
    _check_one_error_line(err)
    assert "finite" in err and not run_dir.exists()


@pytest.mark.parametrize("setting, message", [
    (["--lr", "1001"], "error: learning rate must be at most 1000, got 1001"),
    (["--weight-decay", "11"], "error: weight decay must be at most 10, got 11"),
])
def test_a_setting_too_large_is_named_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            setting: list[str], message: str) -> None:
    """Found by review: --lr 1001 said "learning rate must be at most 1000 and weight decay
    at most 10, got 1001 and 0.0005", blaming a weight decay never given."""
    code, err = _cli(["train", "--model", "tiny", "--device", "cpu", "--data",
                      str(tmp_path / "data"), *setting], capsys)
    assert code == EXIT_USAGE
    assert err.splitlines()[0] == message


def test_cli_refuses_a_zero_width_tiny_model(tmp_path: Path, fake_cifar_dir: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(["train", "--model", "tiny", "--width", "0", "--device", "cpu",
                      "--data", str(fake_cifar_dir), "--run-dir", str(tmp_path / "run"),
                      "--num-train", "64", "--num-test", "32", "--no-progress"], capsys)
    assert code == EXIT_USAGE
    _check_one_error_line(err)
    assert "width" in err


def _crash(message: str) -> Any:
    def run(args: Any) -> int:
        raise RuntimeError(message)

    return run


def test_an_unexpected_error_is_one_line_with_a_distinct_exit_code(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import dlbox.cli.models

    monkeypatch.delenv("DLBOX_DEBUG", raising=False)
    monkeypatch.setattr(dlbox.cli.models, "run", _crash("it broke\n\tat line 2"))
    code, err = _cli(["models"], capsys)
    assert code == EXIT_INTERNAL and EXIT_INTERNAL not in (0, 1, 2, 3, 130, 143)
    _check_one_error_line(err)
    assert err.splitlines()[0] == "error: unexpected RuntimeError: it broke"
    assert "DLBOX_DEBUG=1" in err


def test_dlbox_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import dlbox.cli.models

    monkeypatch.setenv("DLBOX_DEBUG", "1")
    monkeypatch.setattr(dlbox.cli.models, "run", _crash("it broke"))
    with pytest.raises(RuntimeError, match="it broke"):
        cli.main(["models"])


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(4), BrokenPipeError()])
def test_the_last_resort_leaves_interrupts_exits_and_broken_pipes_alone(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        error: BaseException) -> None:
    import os
    import signal
    import sys

    import dlbox.cli.models

    def run(args: Any) -> int:
        raise error

    monkeypatch.delenv("DLBOX_DEBUG", raising=False)
    monkeypatch.setattr(dlbox.cli.models, "run", run)
    if isinstance(error, SystemExit):
        with pytest.raises(SystemExit):
            cli.main(["models"])
        return
    if isinstance(error, BrokenPipeError):
        # main points stdout's descriptor at /dev/null; give it one of our own to point.
        read_end, write_end = os.pipe()

        class Stdout:
            def fileno(self) -> int:
                return write_end

            def flush(self) -> None:
                pass

        monkeypatch.setattr(sys, "stdout", Stdout())
        try:
            assert cli.main(["models"]) == 128 + signal.SIGPIPE
            os.write(write_end, b"gone")  # now /dev/null: the pipe stays empty
            os.close(write_end)
            assert os.read(read_end, 10) == b""
        finally:
            os.close(read_end)
        assert capsys.readouterr().err == ""
        return
    assert cli.main(["models"]) == 130
    assert "interrupted" in capsys.readouterr().err


# ---- run files that are there but may not be read: permissions, not damage -------------------
# (refused_prefix, in conftest.py: the CLI runs without root's power to read any file)

def _cli_without_read_override(prefix: list[str], argv: list[str]) -> tuple[int, str]:
    import subprocess
    import sys

    result = subprocess.run([*prefix, sys.executable, "-m", "dlbox", *argv],
                            capture_output=True, text=True, check=False, timeout=300)
    return result.returncode, result.stderr


def _snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under `root` with its mode and (for files) its bytes."""
    return {str(p.relative_to(root)): (p.stat().st_mode,
                                       p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def _check_permission_error(code: int, err: str, path: Path, folder: Path | None) -> None:
    _check_one_error_line(err)
    assert code == EXIT_ERROR, err
    message, hint = err.strip().splitlines()
    assert message == (f"error: cannot read {path}: permission denied"
                       + (f" on the folder {folder}" if folder else "")), err
    assert f"chmod u+{'rx' if folder else 'r'} {folder or path}" in hint, err
    assert "user that owns it" in hint, err
    assert "damaged" not in err and "train again" not in err and "delete" not in err, err


# what is made unreadable, and the folder the error names (None: the file itself)
UNREADABLE = {"config": ("config.json", None), "checkpoint": ("checkpoints/last.pt", None),
              "checkpoints folder": ("checkpoints", "checkpoints"),
              "checkpoints folder, r without x": ("checkpoints", "checkpoints"),
              "run folder": (".", "."), "metrics": ("metrics.json", None)}


@pytest.mark.parametrize("command, what", [
    ("evaluate", "config"), ("evaluate", "checkpoint"), ("evaluate", "checkpoints folder"),
    ("evaluate", "checkpoints folder, r without x"), ("evaluate", "run folder"),
    ("evaluate", "metrics"),
    ("train --resume", "config"), ("train --resume", "checkpoint"),
    ("train --resume", "checkpoints folder"), ("train --resume", "run folder"),
    ("predict", "checkpoint"),
])
def test_cli_says_permission_denied_for_a_run_file_it_may_not_read(
        tmp_path: Path, refused_prefix: list[str], command: str, what: str) -> None:
    """Found by review: a run file that exists but may not be read (chmod 000, a run made by
    root or in a container) was "damaged; train again", or (a folder) an "unexpected"-style
    `cannot use ...` with a hint about disk space. The file is intact: the message names it,
    says permission denied, and the hint how to fix it; nothing is changed or deleted."""
    from PIL import Image

    run_dir = _run_dir(tmp_path)
    write_json_atomic(run_dir / "metrics.json", {"history": []})
    image = tmp_path / "x.png"
    Image.new("RGB", (32, 32)).save(image)
    name, folder_name = UNREADABLE[what]
    target = run_dir / name if name != "." else run_dir
    before = _snapshot(run_dir)
    argv = {"evaluate": ["evaluate", str(run_dir), "--device", "cpu"],
            "predict": ["predict", str(run_dir), str(image), "--device", "cpu"],
            "train --resume": ["train", "--resume", str(run_dir), "--device", "cpu"]}[command]
    mode = 0o600 if what.endswith("r without x") else 0
    target.chmod(mode)
    try:
        code, err = _cli_without_read_override(refused_prefix, argv)
    finally:
        target.chmod(0o755 if target.is_dir() else 0o644)
    unreadable = run_dir / ("config.json" if command == "train --resume" and what == "run folder"
                            else "checkpoints/last.pt" if folder_name else name)
    folder = None if folder_name is None else run_dir / folder_name if folder_name != "." \
        else run_dir
    _check_permission_error(code, err, unreadable, folder)
    assert _snapshot(run_dir) == before


def test_resume_says_permission_denied_for_a_metrics_json_it_may_not_read(
        tmp_path: Path, fake_cifar_dir: Path, refused_prefix: list[str]) -> None:
    """Before the fix: "metrics.json is not valid JSON ([Errno 13] ...)", hint "delete it"."""
    from dlbox.training.config import build_config
    from dlbox.training.loop import TrainingStopped, train

    run_dir = tmp_path / "run"
    config = build_config("tiny", epochs=2, num_train=320, num_test=100, device="cpu",
                          data_dir=str(fake_cifar_dir), run_dir=str(run_dir), threads=2, seed=1)
    with pytest.raises(TrainingStopped):  # a run to resume, stopped in its first epoch
        train(config, progress=False, evaluate_at_end=False,
              stop=lambda epoch, step: epoch == 1 and step == 2)
    metrics = run_dir / "metrics.json"
    write_json_atomic(metrics, {"history": []})
    before = _snapshot(run_dir)
    metrics.chmod(0)
    try:
        code, err = _cli_without_read_override(
            refused_prefix, ["train", "--resume", str(run_dir), "--no-progress"])
    finally:
        metrics.chmod(0o644)
    _check_permission_error(code, err, metrics, None)
    assert _snapshot(run_dir) == before


def test_a_folder_in_place_of_config_json_is_named(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """It read "RUN has no config.json, so it is not a dlbox run directory": there is one,
    a folder, and the fix is to put the file back."""
    run_dir = _run_dir(tmp_path)
    (run_dir / "config.json").unlink()
    (run_dir / "config.json").mkdir()
    code, err = _cli(["evaluate", str(run_dir), "--device", "cpu"], capsys)
    assert code == EXIT_ERROR
    _check_one_error_line(err)
    assert err.splitlines()[0] == (f"error: cannot read {run_dir / 'config.json'}: it is a "
                                   "folder, not a file")


def test_a_lost_checkpoint_beside_an_unreadable_metrics_json_is_not_called_never_saved(
        tmp_path: Path, failing_read_json: Any) -> None:
    """With last.pt gone and metrics.json out of reach, the hint said the run "stopped before
    the first epoch ended and saved nothing": dlbox cannot tell, and says both fixes."""
    import errno

    from dlbox.training import checkpoint

    run_dir = _run_dir(tmp_path)
    (run_dir / "checkpoints" / "last.pt").unlink()
    metrics = run_dir / "metrics.json"
    metrics.write_text('{"history": [{}, {}]}')
    assert "finished epoch(s)" in checkpoint.missing_checkpoint_hint(run_dir, "last")
    failing_read_json("dlbox.training.checkpoint", metrics,
                      PermissionError(errno.EACCES, "Permission denied", str(metrics)))
    hint = checkpoint.missing_checkpoint_hint(run_dir, "last")
    assert hint.startswith("its metrics.json cannot be read (Permission denied), so whether "
                           "it finished an epoch is not known")
    assert f"put it back in {run_dir / 'checkpoints'}" in hint
    assert f"`--run-dir {run_dir}` may be reused" in hint and "saved nothing" not in hint


def test_predict_during_a_runs_first_epoch_says_it_is_training(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: predict (or evaluate --output) on a run still in its first epoch said
    its training "stopped before the first epoch ended" and to start it again, which the
    training run's lock then refused."""

    from PIL import Image

    from dlbox.cli import main

    run_dir = _run_dir(tmp_path)
    (run_dir / "checkpoints" / "last.pt").unlink()  # its first epoch is not over
    image = tmp_path / "cat.png"
    Image.new("RGB", (32, 32)).save(image)
    with run_lock_elsewhere(run_dir):
        assert main(["predict", str(run_dir), str(image)]) == 1
    hint = capsys.readouterr().err.splitlines()[-1]
    assert hint == ("hint: a dlbox run is training in it right now, and saves its first "
                    "checkpoint when its first epoch ends: try again then")
    from dlbox.training.checkpoint import missing_checkpoint_hint

    with run_lock_elsewhere(run_dir):  # checkpoints every 3 epochs: not after the first
        assert "saves its first checkpoint when epoch 3 (or its last) ends" in \
            missing_checkpoint_hint(run_dir, "last", checkpoint_every=3)
    for argv in (["predict", str(run_dir), str(image)], ["evaluate", str(run_dir)]):
        # no run: it saved nothing (evaluate holds the run's lock itself meanwhile)
        assert main(argv) == 1
        assert "stopped before the first epoch ended" in capsys.readouterr().err


@contextlib.contextmanager
def run_lock_elsewhere(run_dir: Path) -> Iterator[None]:
    """The run's lock held by another process, as by a run training in it."""
    import subprocess
    import sys

    training = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from dlbox.training.rundir import run_lock\n"
         "with run_lock(__import__('pathlib').Path(sys.argv[1])):\n"
         "    print('held', flush=True); time.sleep(60)", str(run_dir)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert training.stdout is not None and training.stdout.readline() == "held\n"
        yield
    finally:
        training.kill()
        training.wait()


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse's wrapping undone


def _documented_exit_codes() -> set[str]:
    docs = Path(__file__).resolve().parents[2] / "docs" / "training.md"
    section = docs.read_text().split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"(?:^|[;\n])\s*(\d{1,3}) (?=[a-z(`])", section))


def test_the_exit_codes_are_documented_and_listed_in_the_help(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`dlbox train | head -1` exits 141 (its stdout closed) with a resume hint: docs and
    --help list it with the others (review: in neither)."""
    monkeypatch.setenv("COLUMNS", "100")
    codes = _documented_exit_codes()
    assert codes == {"0", "1", "2", "70", "130", "141", "143", "129"}
    train_help = _help(["train", "--help"], capsys)
    top_help = _help(["--help"], capsys)
    for shown in (train_help, top_help):
        listed = shown.split("exit codes:", 1)[1]
        for code in codes:
            assert re.search(rf"(?<![\d-]){code}(?!\d)", listed), (code, listed)
    assert re.search(r"\b3 .*predict", top_help.split("exit codes:", 1)[1])


