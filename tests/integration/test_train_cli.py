"""`dlbox train` and `dlbox models` from the command line: exit codes, messages, files."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from dlbox.cli import main
from dlbox.errors import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from dlbox.fileio import read_json
from dlbox.training.checkpoint import load_checkpoint

QUICK = ["--model", "tiny", "--device", "cpu", "--num-train", "200", "--num-test", "50",
         "--no-progress"]


def test_train_then_evaluate_writes_the_run(fake_cifar_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    code = main(["train", *QUICK, "--epochs", "2", "--data", str(fake_cifar_dir),
                 "--run-dir", str(run_dir), "--seed", "3", "--lr", "0.05"])
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert "epoch 2/2" in out and "test accuracy:" in out
    for name in ("config.json", "manifest.json", "metrics.json", "checkpoints/last.pt"):
        assert (run_dir / name).is_file(), name
    config = read_json(run_dir / "config.json")
    assert (config["model"], config["epochs"], config["seed"], config["lr"]) == ("tiny", 2, 3, 0.05)
    assert config["num_train"] == 200 and config["device"] == "cpu"
    assert len(read_json(run_dir / "metrics.json")["history"]) == 2
    assert (run_dir / "predictions.csv").is_file()  # train ends with evaluate
    # ... and its last line is the result, with the files it wrote
    evaluation = read_json(run_dir / "metrics.json")["evaluation"]
    assert evaluation["versions"]["dlbox"] and evaluation["versions"]["device"] == "cpu"
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"test accuracy: {100 * evaluation['test_accuracy']:.2f}%; wrote ")
    assert "predictions.csv" in last and last.endswith(f" in {run_dir.resolve()}")


def test_models_lists_the_registry(capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # wide enough for the table, one row per model
    assert main(["models"]) == EXIT_OK
    out = capsys.readouterr().out
    for name in ("tutorial", "resnet", "tiny", "speedrun"):
        assert name in out
    assert "62,006" in out  # the tutorial net's parameter count
    from dlbox.models import default_model_for

    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    for device in ("cpu", "cuda"):  # the default per device is marked on its row
        mark = rows[default_model_for(device)].split("  ")[0]
        assert device in mark and "default" in mark, mark
    assert "default" not in rows["tiny"].split("  ")[0]
    assert main(["models", "--json"]) == EXIT_OK
    assert '"name": "tutorial"' in capsys.readouterr().out


def test_unknown_model_is_a_usage_error(fake_cifar_dir: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--model", "vgg99", "--data", str(fake_cifar_dir),
                 "--run-dir", str(tmp_path / "run"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "error: unknown model 'vgg99'" in err and "tutorial" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has CUDA")
def test_cuda_without_cuda_fails_and_says_why(fake_cifar_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", *QUICK, "--device", "cuda", "--data", str(fake_cifar_dir),
                 "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR
    assert "error: --device cuda needs CUDA" in err and "hint:" in err
    assert not (tmp_path / "run").exists()


def test_missing_data_fails_with_a_fetch_hint(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", *QUICK, "--data", str(tmp_path / "nothing"),
                 "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR
    assert "error:" in err and "dlbox data fetch" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("env", ["unset", "another", "this one"])
def test_the_fetch_hint_names_the_data_dir_a_bare_fetch_would_not_fill(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        env: str) -> None:
    """Found by review: the hint said a bare `dlbox data fetch`, which fills $DLBOX_DATA (or
    the cache dir), not the --data folder that was looked at; it names --data exactly when a
    bare fetch would fill another folder."""
    empty = tmp_path / "empty data"
    empty.mkdir()
    if env == "unset":
        monkeypatch.delenv("DLBOX_DATA", raising=False)
    else:
        monkeypatch.setenv("DLBOX_DATA", str(tmp_path / "elsewhere" if env == "another"
                                             else empty))
    assert main(["train", *QUICK, "--data", str(empty)]) == EXIT_ERROR
    hint = capsys.readouterr().err.splitlines()[-1]
    named = f"dlbox data fetch --data '{empty}'"
    if env == "this one":
        assert "`dlbox data fetch` (offline" in hint and named not in hint
    else:
        assert f"`{named}` (offline: `{named} --from" in hint


def test_bad_values_are_usage_errors(fake_cifar_dir: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", *QUICK, "--epochs", "0", "--data", str(fake_cifar_dir)]) == EXIT_USAGE
    assert "epochs" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path), "--epochs", "3"]) == EXIT_USAGE
    assert "--epochs" in capsys.readouterr().err
    # review: `--resume RUN --no-amp` was told "--amp cannot change", a flag not typed
    assert main(["train", "--resume", str(tmp_path), "--no-amp", "--channels-last"]) == EXIT_USAGE
    assert "; --no-amp, --channels-last cannot change" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "none")]) == EXIT_ERROR
    assert "does not exist" in capsys.readouterr().err


def test_a_seed_that_would_run_as_another_is_a_usage_error(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: --seed 4294967297 trained the very run of --seed 1 (torch's CPU
    generator keeps the low 32 bits), without a word."""
    code = main(["train", *QUICK, "--seed", "4294967297", "--data", str(fake_cifar_dir),
                 "--run-dir", str(tmp_path / "run")])
    assert code == EXIT_USAGE
    assert capsys.readouterr().err.splitlines()[-2:] == [
        "error: --seed 4294967297 would run as seed 1: torch's CPU generator, which draws "
        "the initial weights, keeps only the low 32 bits",
        "hint: pass a --seed from 0 to 4294967295, e.g. --seed 1"]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("model", ["tiny", "resnet"])
def test_a_width_too_big_for_memory_is_a_usage_error_before_allocating(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        model: str) -> None:
    """Found by hand: `--width 100000` tried to allocate 720 GB and ended in `unexpected
    RuntimeError ... please report it` (exit 70), or, where memory is overcommitted, in the
    kernel killing the process. The weights' size is known without allocating them."""
    code = main(["train", "--model", model, "--width", "100000", "--device", "cpu",
                 "--data", str(fake_cifar_dir), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    first, hint = err.splitlines()
    assert first.startswith(f"error: model '{model}' with width 100000 has ")
    assert re.search(r" has [\d.,]+ [GT]iB of weights, more than this machine's [\d.,]+ [GT]iB "
                     r"of memory$", first), first
    assert hint.startswith("hint: ") and "--width" in hint
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("model, width", [("resnet", 100000000), ("tiny", 2**63)])
def test_a_width_too_big_for_torch_to_size_is_the_same_usage_error(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str,
        width: int) -> None:
    """Found by a docs check: at `--width 100000000` even the meta-device build overflows
    ("Storage size calculation overflowed"), which the size check let through, and the real
    build ended in out-of-memory (exit 1) instead of the usage error the docs promise. From
    2**63 on, torch raises a TypeError ("Overflow when unpacking long long"): exit 70."""
    code = main(["train", "--model", model, "--width", str(width), "--device", "cpu",
                 "--data", str(fake_cifar_dir), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    first, hint = err.splitlines()
    assert first == (f"error: model '{model}' with width {width} has more weights than torch "
                     "can size a tensor for")
    assert hint.startswith("hint: use smaller settings") and "--width" in hint
    assert not (tmp_path / "run").exists()


# Runs `dlbox train` with its address space capped at what it uses once imported plus
# 1.5 GiB: a batch of 500 images at width 2048 needs 4 GiB for its first activation alone.
OUT_OF_MEMORY_SCRIPT = """
import resource, sys
import dlbox.cli, dlbox.training.loop, torch
with open("/proc/self/status") as status:
    peak = int(status.read().split("VmPeak:")[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (peak + 1536 * 2**20, resource.RLIM_INFINITY))
sys.exit(dlbox.cli.main(sys.argv[1:]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_running_out_of_memory_is_a_one_line_error_naming_the_settings(
        fake_cifar_dir: Path, tmp_path: Path) -> None:
    """Found by hand: a batch too big for the machine's memory ended in `unexpected
    RuntimeError: [enforce fail at alloc_cpu.cpp:127] ... please report it` (exit 70); on a
    GPU, CUDA's OutOfMemoryError did the same."""
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-c", OUT_OF_MEMORY_SCRIPT, "train", "--model", "tiny", "--width",
         "2048", "--batch-size", "500", "--device", "cpu", "--threads", "1", "--no-progress",
         "--data", str(fake_cifar_dir), "--run-dir", str(run_dir)],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == EXIT_ERROR, result.stderr
    error, hint = result.stderr.splitlines()
    assert error.startswith("error: out of memory on cpu training model 'tiny' with batch size "
                            "500 (it asked for "), error
    assert hint.startswith("hint: train again with a smaller --batch-size (this run's: 500) or "
                           "--width (this run's: 2048)")
    assert f"--run-dir {run_dir.resolve()} may be reused" in hint
    assert not (run_dir / "checkpoints" / "last.pt").exists()


@pytest.mark.parametrize("argv", [
    ["train", "--resume", ""],
    ["train", *QUICK, "--data", " "],
    ["train", *QUICK, "--run-dir", ""],
    ["evaluate", "RUN", "--data", ""],
    # found by review: `--device "$DEV"` with DEV unset was read as auto
    ["train", "--model", "tiny", "--device", ""],
    ["evaluate", "RUN", "--device", " "],
    ["predict", "RUN", "x.png", "--device", ""],
    # found by review: `--model "$MODEL"` with MODEL unset trained the default model
    ["train", "--model", "", "--device", "cpu"],
])
def test_an_empty_path_is_an_error_not_the_default(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    """Found by hand: `dlbox train --resume "$RUN"` with RUN unset started a new run of the
    default model, and `--data ""` trained on the default data dir instead of failing."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLBOX_DATA", str(fake_cifar_dir))
    argv = [str(tmp_path / "run") if arg == "RUN" else arg for arg in argv]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    [flag] = [argv[i - 1] for i, arg in enumerate(argv) if not arg.strip()]
    kind = "value" if flag in ("--device", "--model") else "path"
    assert err.startswith("error: --") and f"was given an empty {kind}" in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "run").exists()


def _stderr_on_a_terminal(argv: list[str]) -> tuple[subprocess.CompletedProcess, str]:
    """Run `dlbox ARGV` with stderr on a pseudo-terminal (stdout a pipe): the result, and what
    the terminal showed, escape sequences removed."""
    import pty
    import re
    import threading

    leader, follower = pty.openpty()
    shown: list[bytes] = []

    def drain() -> None:  # read the terminal's side, so a full pty buffer never blocks dlbox
        with contextlib.suppress(OSError):
            while chunk := os.read(leader, 4096):
                shown.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "dlbox", *argv], stdout=subprocess.PIPE, stderr=follower,
            text=True, timeout=300, env={**os.environ, "TERM": "xterm", "COLUMNS": "160"})
    finally:
        os.close(follower)
        reader.join(timeout=10)  # ends when the terminal's last writer is gone
        os.close(leader)
    text = b"".join(shown).decode("utf-8", "replace")
    return result, re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", text)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs a pseudo-terminal")
def test_stdout_redirected_from_a_terminal_keeps_every_epoch_line(
        fake_cifar_dir: Path, tmp_path: Path) -> None:
    """Found by hand: `dlbox train > train.log` in a terminal drew the bar on the terminal
    (right) but sent the epoch lines there too, so the log lacked them (rich printed them
    on the bar's console, stderr)."""
    result, _ = _stderr_on_a_terminal(
        ["train", *QUICK[:-1], "--epochs", "2", "--data", str(fake_cifar_dir),
         "--run-dir", str(tmp_path / "run"), "--no-evaluate"])
    assert result.returncode == EXIT_OK
    lines = result.stdout.splitlines()
    assert [line.split("  ")[0] for line in lines if line.startswith("epoch ")] == \
        ["epoch 1/2", "epoch 2/2"], result.stdout
    assert lines[-1].startswith("test accuracy: ")
    assert "\x1b" not in result.stdout  # the bar itself stays on the terminal


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs a pseudo-terminal")
def test_the_terminal_says_when_the_test_images_are_evaluated(fake_cifar_dir: Path,
                                                              tmp_path: Path) -> None:
    # The bar stood at N/N for seconds while the test images were evaluated (6 TTA views at
    # the end), and `dlbox evaluate` printed nothing for 13 s on a CPU.
    run_dir = tmp_path / "run"
    trained, shown = _stderr_on_a_terminal(
        ["train", "--model", "speedrun", "--device", "cpu", "--epochs", "2", "--num-train",
         "500", "--num-test", "100", "--threads", "1", "--data", str(fake_cifar_dir),
         "--run-dir", str(run_dir)])
    assert trained.returncode == EXIT_OK, trained.stdout[-2000:]
    assert "epoch 2/2 · testing on 100 images x 6 TTA views, saving" in shown, shown[-3000:]
    assert "epoch 1/2 · saving" in shown  # its test ran before: only the checkpoint follows
    assert "epoch 1/2 · testing" not in shown
    assert "testing" not in trained.stdout  # the bar's words stay on the terminal
    # found by review: an image tree's decoding (seconds) said nothing before the bar
    assert f"reading the data in {fake_cifar_dir.resolve()}" in shown, shown[:2000]
    evaluated, shown = _stderr_on_a_terminal(["evaluate", str(run_dir)])
    assert evaluated.returncode == EXIT_OK, evaluated.stdout[-2000:]
    assert "evaluating 100 test images on cpu with test-time augmentation" in shown, shown
    assert "evaluating" not in evaluated.stdout


def test_resume_of_a_finished_run_says_so(fake_cifar_dir: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", *QUICK, "--epochs", "1", "--data", str(fake_cifar_dir),
                 "--run-dir", str(run_dir), "--no-evaluate"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "1 epoch) ->" in out and "after 1 epoch," in out and "epochs" not in out
    # asked again (a requeued job): nothing to do, which is no failure
    assert main(["train", "--resume", str(run_dir)]) == EXIT_OK
    assert "already finished its 1 epoch: nothing to resume" in capsys.readouterr().out


def test_resuming_a_run_on_a_read_only_mount_says_to_copy_it(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, read_only_mount: Callable[[Path], None]) -> None:
    """Found by review: resuming a run on a read-only mount failed writing its manifest with
    "write elsewhere", but --run-dir cannot go with --resume: the way out is a copy."""
    from dlbox.training import loop
    from dlbox.training.config import build_config

    run_dir = tmp_path / "run"
    config = build_config("tiny", epochs=2, num_train=200, num_test=50, device="cpu",
                          data_dir=str(fake_cifar_dir), run_dir=str(run_dir), threads=1)
    with pytest.raises(loop.TrainingStopped):  # stopped mid-run: a run to resume
        loop.train(config, progress=False, stop=lambda epoch, step: epoch == 1 and step == 3)
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    read_only_mount(run_dir)
    assert main(["train", "--resume", str(run_dir)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: cannot resume {run_dir}: its folder is not writable (Read-only file system)",
        f"hint: copy the run to a folder you can write and resume it there: cp -r {run_dir} "
        "DIR && dlbox train --resume DIR"]
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before
    monkeypatch.undo()
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    assert main(["train", "--resume", str(copy), "--no-progress", "--no-evaluate"]) == EXIT_OK


def _no_space(path: Path) -> Exception:
    """What writing `path` on a full disk raises."""
    import errno

    from dlbox.errors import write_error

    return write_error(path, OSError(errno.ENOSPC, "No space left on device"))


def _hint_of_a_train(data: Path, run_dir: Path, epochs: int,
                     capsys: pytest.CaptureFixture[str]) -> str:
    """The hint line of a `dlbox train` into `run_dir` that fails (exit 1)."""
    assert main(["train", *QUICK, "--epochs", str(epochs), "--data", str(data),
                 "--run-dir", str(run_dir)]) == EXIT_ERROR
    return capsys.readouterr().err.splitlines()[-1]


def test_a_full_disk_in_the_final_report_says_to_evaluate(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: a full disk while the final report was written said "then go on
    with: dlbox train --resume", which only answers "nothing to resume"."""
    from dlbox.training import loop

    def full_disk(run_dir, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise _no_space(run_dir / "training_curves.png")

    monkeypatch.setattr(loop, "_report", full_disk)
    run_dir = tmp_path / "run"
    hint = _hint_of_a_train(fake_cifar_dir, run_dir, 1, capsys)
    assert hint.endswith(f"; then write the report with: dlbox evaluate {run_dir}")
    monkeypatch.undo()
    assert main(["evaluate", str(run_dir)]) == EXIT_OK


@pytest.mark.parametrize("failing_save", [1, 2])
def test_a_full_disk_says_how_the_run_goes_on_once_there_is_room(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, failing_save: int) -> None:
    """Found by review: a checkpoint that a full disk failed mid-run said to free space,
    not that the run's last checkpoint was intact and could be resumed then."""
    from dlbox.training import loop

    real = loop.save_checkpoint
    saves = []

    def full_disk(path, state):  # type: ignore[no-untyped-def]
        saves.append(path)
        if len(saves) == failing_save:
            raise _no_space(path)
        return real(path, state)

    monkeypatch.setattr(loop, "save_checkpoint", full_disk)
    run_dir = tmp_path / "run"
    hint = _hint_of_a_train(fake_cifar_dir, run_dir, 3, capsys)
    assert hint.startswith(f"hint: free some disk space where {run_dir / 'checkpoints'} is")
    if failing_save == 1:  # nothing saved: the run dir is started again in place
        assert hint.endswith("; then start again with the same command")
        monkeypatch.undo()
        assert main(["train", *QUICK, "--epochs", "3", "--data", str(fake_cifar_dir),
                     "--run-dir", str(run_dir), "--no-evaluate"]) == EXIT_OK
    else:
        assert hint.endswith(f"; then go on with: dlbox train --resume {run_dir}")
        monkeypatch.undo()
        assert main(["train", "--resume", str(run_dir), "--no-progress",
                     "--no-evaluate"]) == EXIT_OK


@pytest.mark.parametrize("code", ["EROFS", "EACCES"])
def test_a_run_folder_that_became_unwritable_mid_run_says_the_checkpoint_is_kept(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    """Found by review: a filesystem remounted read-only (or a permission taken away) after
    epoch 1 said only "write elsewhere", not that epoch 1's checkpoint was intact and how to
    go on from it."""
    import errno

    from dlbox.errors import write_error
    from dlbox.training import loop

    real = loop.save_checkpoint
    saves = []

    def unwritable(path, state):  # type: ignore[no-untyped-def]
        saves.append(path)
        if len(saves) == 2:
            raise write_error(path, OSError(getattr(errno, code), os.strerror(
                getattr(errno, code))))
        return real(path, state)

    monkeypatch.setattr(loop, "save_checkpoint", unwritable)
    run_dir = tmp_path / "run"
    hint = _hint_of_a_train(fake_cifar_dir, run_dir, 3, capsys)
    assert hint.endswith(f"; its last checkpoint is kept: once {run_dir} can be written (or "
                         "from a copy of it elsewhere), go on with: dlbox train --resume "
                         f"{run_dir}"), hint
    monkeypatch.undo()
    assert main(["train", "--resume", str(run_dir), "--no-progress",
                 "--no-evaluate"]) == EXIT_OK


def test_a_full_disk_in_a_default_run_folder_it_removes_names_a_folder_that_is_there(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: the hint's `df -h runs/<time>-<model>/checkpoints` named the folder
    that train, having saved nothing in it, had just removed: `df` said no such file."""
    from dlbox.training import loop

    def full_disk(path, state):  # type: ignore[no-untyped-def]
        raise _no_space(path)

    monkeypatch.setattr(loop, "save_checkpoint", full_disk)
    monkeypatch.chdir(tmp_path)
    assert main(["train", *QUICK, "--epochs", "1", "--data", str(fake_cifar_dir)]) == EXIT_ERROR
    hint = capsys.readouterr().err.splitlines()[-1]
    # the run's folder, which held nothing, is removed, and the runs/ made for it
    assert not (tmp_path / "runs").exists()
    assert hint.startswith(f"hint: free some disk space where {tmp_path} is (`df -h "
                           f"{tmp_path}` shows it)"), hint


# SIGHUP: an SSH session that dropped; it killed training at once, the epoch in progress lost
@pytest.mark.parametrize("signum, exit_code", [(signal.SIGTERM, 143), (signal.SIGINT, 130),
                                               (signal.SIGHUP, 129)])
def test_a_signal_stops_cleanly_with_the_checkpoint_saved(fake_cifar_dir: Path, tmp_path: Path,
                                                          signum: int, exit_code: int) -> None:
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "dlbox", "train", *QUICK, "--batch-size", "8",
               "--epochs", "500", "--data", str(fake_cifar_dir), "--run-dir", str(run_dir),
               "--threads", "1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / "checkpoints" / "last.pt").exists():
            assert process.poll() is None, process.stdout.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.05)
        process.send_signal(signum)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == exit_code, output
    assert f"dlbox train --resume {run_dir}" in output
    if signum != signal.SIGINT:
        assert f"training stopped ({signal.Signals(signum).name})" in output
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["epoch"] >= 1 and not state["finished"]
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["last.pt"]


def test_the_stop_report_goes_to_stderr_with_the_other_stops_words(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: a first Ctrl-C's report ("training stopped ...", "resume with: ...")
    went to stdout, where every other stop's words go to stderr: `dlbox train > log` hid
    the resume command from the terminal."""
    from dlbox.training import loop, speedrun

    run_dir = tmp_path / "run"

    def stopped(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise loop.TrainingStopped(run_dir, "SIGINT", 130, saved_epoch=1)

    monkeypatch.setattr(speedrun, "train_speedrun", stopped)
    assert main(["train", "--model", "speedrun", "--device", "cpu", "--num-train", "200",
                 "--num-test", "50", "--epochs", "2", "--no-progress", "--data",
                 str(fake_cifar_dir), "--run-dir", str(run_dir)]) == 130
    out, err = capsys.readouterr()
    assert "resume with" not in out and "training stopped" not in out
    assert err.splitlines()[-2:] == [
        f"training stopped (SIGINT); the state after epoch 1 is in {run_dir}/checkpoints/"
        "last.pt (the epoch in progress is lost)", f"resume with: dlbox train --resume {run_dir}"]


@pytest.mark.parametrize("named", [True, False])  # --run-dir, or runs/<time>-<model>
def test_ctrl_c_in_the_final_evaluation_points_to_evaluate_not_resume(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, named: bool) -> None:
    from dlbox.training import loop

    def interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt  # a second Ctrl-C while the report is being written

    monkeypatch.setattr(loop, "_report", interrupted)
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    code = main(["train", *QUICK, "--epochs", "1", "--data", str(fake_cifar_dir),
                 *(["--run-dir", str(run_dir)] if named else [])])
    err = capsys.readouterr().err
    if not named:
        [run_dir] = (tmp_path / "runs").iterdir()
    assert code == 130
    assert f"evaluate with: dlbox evaluate {run_dir.resolve()}" in err
    assert "--resume" not in err  # resuming a finished run is refused
    monkeypatch.undo()
    assert main(["evaluate", str(run_dir)]) == EXIT_OK


def test_sigterm_in_the_final_evaluation_points_to_evaluate_too(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: SIGTERM while the final report was written (its predictions.csv of
    the new epoch, the confusion matrix still of an older one) said only `stopped (SIGTERM)`;
    Ctrl-C there said to evaluate the run."""
    from dlbox.cli.common import Terminated
    from dlbox.training import loop

    def terminated(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise Terminated(signal.SIGTERM)  # what main()'s handler raises outside the epochs

    monkeypatch.setattr(loop, "_report", terminated)
    monkeypatch.chdir(tmp_path)
    code = main(["train", *QUICK, "--epochs", "1", "--data", str(fake_cifar_dir)])
    [run_dir] = (tmp_path / "runs").iterdir()
    assert code == 143
    assert capsys.readouterr().err.splitlines()[-3:] == [
        "stopped (SIGTERM)", f"training had finished ({run_dir / 'checkpoints' / 'last.pt'}); "
        "its evaluation was cut short", f"evaluate with: dlbox evaluate {run_dir.resolve()}"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs a pseudo-terminal")
def test_a_terminal_that_hangs_up_leaves_the_run_saved(fake_cifar_dir: Path,
                                                      tmp_path: Path) -> None:
    """Found by review: a dropped SSH session sends SIGHUP twice (the shell's, the kernel's),
    read as "asked twice", so training stopped at once and saved nothing; and the progress
    bar's next write to the closed terminal failed (EIO) before the save."""
    import pty

    run_dir = tmp_path / "run"
    argv = [sys.executable, "-m", "dlbox", "train", "--model", "tiny", "--device", "cpu",
            "--num-train", "200", "--num-test", "50", "--batch-size", "8", "--epochs", "60",
            "--threads", "1", "--data", str(fake_cifar_dir), "--run-dir", str(run_dir)]
    pid, fd = pty.fork()
    if pid == 0:  # dlbox, its progress bar on the terminal
        os.execv(sys.executable, argv)
    last = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists() and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if select.select([fd], [], [], 0.1)[0]:
                os.read(fd, 65536)  # the terminal shows it
    saved = load_checkpoint(last)["global_step"]
    os.close(fd)  # the terminal goes: the kernel sends SIGHUP
    os.kill(pid, signal.SIGHUP)  # and the shell passes its own on
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 129
    state = load_checkpoint(last)
    assert state["global_step"] > saved and not state["finished"]  # the step it stopped at
    assert main(["train", "--resume", str(run_dir), "--no-progress", "--no-evaluate"]) == 0


@pytest.mark.parametrize("model, signum, code, no_evaluate", [
    ("tiny", signal.SIGINT, 130, False), ("speedrun", signal.SIGTERM, 143, False),
    ("tiny", signal.SIGTERM, 0, True), ("speedrun", signal.SIGINT, 0, True)])
def test_a_signal_in_the_last_epochs_test_pass_stops_before_the_report(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, model: str, signum: int, code: int,
        no_evaluate: bool) -> None:
    """Found by review: Ctrl-C or SIGTERM in the last epoch's test pass (seconds with TTA)
    was ignored: the report ran, and the run exited 0; a second Ctrl-C then cut it short.
    With --no-evaluate (found by review: it said to evaluate, and exited 143) the run is
    complete: exit 0, and said so."""
    from dlbox.training import loop, speedrun

    # the generic loop's test pass; the speedrun trainer, whose final TTA pass ends its run
    module, name = (loop, "network_logits") if model == "tiny" else (speedrun, "train_speedrun")
    signalled = getattr(module, name)

    def and_a_signal(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = signalled(*args, **kwargs)
        os.kill(os.getpid(), signum)  # arrives as the test pass ends: the handler sets the flag
        return result

    monkeypatch.setattr(module, name, and_a_signal)
    run_dir = tmp_path / "run"
    argv = [*QUICK, "--epochs", "1"] if model == "tiny" else [
        "--model", "speedrun", "--device", "cpu", "--num-train", "200", "--num-test", "50",
        "--epochs", "1", "--no-progress"]
    assert main(["train", *argv, "--data", str(fake_cifar_dir), "--run-dir",
                 str(run_dir), *(["--no-evaluate"] if no_evaluate else [])]) == code
    err = capsys.readouterr().err  # with every stop's words (see the test above)
    if no_evaluate:
        reason = "interrupted" if signum == signal.SIGINT else "SIGTERM"
        assert err.splitlines()[-1] == (f"stopped ({reason}) once the run had finished: its "
                                        f"training is complete in {run_dir} (no evaluation "
                                        "was asked for)")
        return
    assert "before the final evaluation; the trained state is in" in err
    assert err.rstrip().endswith(f"evaluate with: dlbox evaluate {run_dir}")
    assert not (run_dir / "predictions.csv").exists()  # the report was not made
    monkeypatch.undo()
    assert main(["evaluate", str(run_dir)]) == EXIT_OK


def test_a_second_ctrl_c_before_any_checkpoint_says_nothing_was_saved(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: a second Ctrl-C in the speedrun's first epoch printed `interrupted`
    alone; what was kept, and what to do, went unsaid."""
    from dlbox.training import speedrun

    def cut_short(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt  # the second Ctrl-C: at once, before the epoch's checkpoint

    monkeypatch.setattr(speedrun, "train_speedrun", cut_short)
    run_dir = tmp_path / "run"
    assert main(["train", "--model", "speedrun", "--device", "cpu", "--num-train", "200",
                 "--num-test", "50", "--epochs", "1", "--no-progress", "--data",
                 str(fake_cifar_dir), "--run-dir", str(run_dir)]) == 130
    assert capsys.readouterr().err.splitlines()[-2:] == [
        "interrupted", "nothing was saved (it stopped before its first checkpoint): start "
        "again with the same command"]


def test_ctrl_c_when_the_checkpoint_cannot_be_looked_at_still_names_the_resume(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by reading: the handler's last.is_file() raised PermissionError (a traceback
    after 'interrupted') when the checkpoints folder had lost its search permission."""
    from dlbox.training import loop

    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.pt"
    real_stat = Path.stat

    def refused_stat(self: Path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self == last:  # what a folder without search permission does to a non-root user
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, *args, **kwargs)

    def interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        monkeypatch.setattr(Path, "stat", refused_stat)
        raise KeyboardInterrupt  # a second Ctrl-C while the report is being written

    monkeypatch.setattr(loop, "_report", interrupted)
    code = main(["train", *QUICK, "--epochs", "1", "--data", str(fake_cifar_dir),
                 "--run-dir", str(run_dir)])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 130
    assert err.splitlines()[-3:] == [
        "interrupted",
        f"cannot tell whether {last} was saved: Permission denied",
        f"once it can be read, resume with: dlbox train --resume {run_dir.absolute()}"]


def test_a_folder_in_place_of_a_run_file_is_a_one_line_error(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", *QUICK, "--epochs", "1", "--data", str(fake_cifar_dir),
                 "--run-dir", str(run_dir), "--no-evaluate"]) == EXIT_OK
    (run_dir / "predictions.csv").mkdir()  # evaluate cannot write its CSV there
    capsys.readouterr()
    assert main(["evaluate", str(run_dir)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert f"error: cannot write {run_dir / 'predictions.csv'}:" in err
    assert "unexpected" not in err and ".tmp" not in err
    assert len(err.strip().splitlines()) == 2  # the error and its hint


@pytest.mark.parametrize("flag, value, available, split", [
    ("--num-train", "501", 500, "train"),
    ("--num-test", "101", 100, "test"),
])
def test_a_subset_larger_than_the_data_is_a_usage_error(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        flag: str, value: str, available: int, split: str) -> None:
    """Found by reading: `--num-train 5000` on 500 images trained on the 500, silently."""
    argv = ["train", "--model", "tiny", "--device", "cpu", "--no-progress", flag, value,
            "--data", str(fake_cifar_dir), "--run-dir", str(tmp_path / "run")]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"error: {flag} {value} is more than the {available} {split} images in "
        f"{fake_cifar_dir.resolve()}",
        f"hint: pass {flag} {available} or less, or leave {flag} out to use them all"]
    assert not (tmp_path / "run").exists()


def test_a_subset_larger_than_an_image_folder_counts_its_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dlbox.data.synthetic import write_fake_image_folder

    write_fake_image_folder(tmp_path / "tree" / "train", per_class=4, classes=3)
    write_fake_image_folder(tmp_path / "tree" / "test", per_class=2, classes=3)
    assert main(["train", "--model", "tiny", "--device", "cpu", "--num-train", "13",
                 "--data", str(tmp_path / "tree"), "--run-dir", str(tmp_path / "run")]) \
        == EXIT_USAGE
    assert "--num-train 13 is more than the 12 train images" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_subset_of_exactly_the_data_is_fine(fake_cifar_dir: Path) -> None:
    from dlbox.training.loop import load_split

    for split, count in (("train", 500), ("test", 100)):
        assert len(load_split(fake_cifar_dir, split, count, refuse_short=True)) == count
    # a resumed run's own counts are checked by resume (which names the data), not here
    assert len(load_split(fake_cifar_dir, "train", 501)) == 500


def test_models_shows_each_recipes_parameter_count(capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from dlbox.models import count_parameters, create_model

    monkeypatch.setenv("COLUMNS", "1000")  # wide enough for the table, one row per model

    narrow = count_parameters(create_model("resnet", width=16))
    wide = count_parameters(create_model("resnet"))
    assert main(["models", "--json"]) == EXIT_OK
    entries = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert entries["resnet"]["params"] == wide  # unchanged: the default (GPU) recipe's
    assert entries["resnet"]["params_by_recipe"] == {"gpu": wide, "cpu": narrow}
    # both keys for every model (review: a script found no CPU recipe of `tiny`)
    assert entries["tutorial"]["params_by_recipe"] == {"gpu": 62006, "cpu": 62006}
    assert entries["tiny"]["recipes"]["cpu"] == entries["tiny"]["recipes"]["gpu"]
    assert entries["resnet"]["recipes"]["cpu"]["width"] == 16
    assert main(["models"]) == EXIT_OK
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert f"{wide / 1e6:.2f}M gpu / {narrow / 1e6:.2f}M cpu" in rows["resnet"]
    assert "62,006" in rows["tutorial"] and " gpu" not in rows["tutorial"].split("any:")[0]


def test_a_batch_larger_than_the_data_is_said(fake_cifar_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # --batch-size 1000 on 500 images ran with batches of 500, and said nothing of it
    assert main(["train", "--model", "tiny", "--device", "cpu", "--batch-size", "1000",
                 "--data", str(fake_cifar_dir), "--run-dir", str(tmp_path / "run"),
                 "--no-progress", "--no-evaluate"]) == EXIT_OK
    err = capsys.readouterr().err
    assert ("note: the batch size, 1000, is more than the 500 training images: each step "
            "takes all 500, one step an epoch") in err, err
    assert main(["train", *QUICK, "--data", str(fake_cifar_dir), "--run-dir",
                 str(tmp_path / "quiet"), "--no-evaluate"]) == EXIT_OK
    assert "note: the batch size" not in capsys.readouterr().err


def trained_on_a_copy(fake_cifar_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(data, run_dir): a finished 2-epoch run on a copy of the data, which may be moved."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(fake_cifar_dir, data)
    run_dir = tmp_path / "run"
    assert main(["train", *QUICK, "--epochs", "2", "--data", str(data), "--run-dir",
                 str(run_dir), "--no-evaluate"]) == EXIT_OK
    return data, run_dir


def test_a_run_whose_data_moved_says_the_path_is_the_runs_and_how_to_point_elsewhere(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: after the data dir moved, `evaluate RUN` and `train --resume RUN`
    said "no CIFAR-10 data found in OLD" with the hint to run a bare `dlbox data fetch`
    (which fills the default data dir, not OLD): the path came from the run's config.json,
    which they did not say, and --data was not offered as the fix."""
    data, run_dir = trained_on_a_copy(fake_cifar_dir, tmp_path)
    moved = data.rename(tmp_path / "moved")
    capsys.readouterr()
    assert main(["evaluate", str(run_dir)]) == EXIT_ERROR
    assert capsys.readouterr().err.splitlines() == [
        f"error: no CIFAR-10 data found in {data} (the data dir the run was trained on, from "
        "its config.json)",
        f"hint: if the data moved, pass --data DIR where it is now; if it is gone, fetch it "
        f"again: `dlbox data fetch --data {data}` (offline: `dlbox data fetch --data {data} "
        "--from /path/to/cifar-10-python.tar.gz`; add `--sha256 HEX` for a copy that is not "
        "byte-identical to the official one)"]
    assert main(["evaluate", str(run_dir), "--data", str(moved)]) == EXIT_OK
    # a --data given that holds nothing is the plain error, naming that folder
    empty = tmp_path / "empty"
    empty.mkdir()
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--data", str(empty)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"error: no CIFAR-10 data found in {empty}\n")
    assert f"hint: run `dlbox data fetch --data {empty}`" in err and "config.json" not in err


def test_resume_of_a_run_whose_data_moved_names_its_config(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, run_dir = trained_on_a_copy(fake_cifar_dir, tmp_path)
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    state["finished"], state["epoch"] = False, 1  # as if stopped after epoch 1
    torch.save(state, run_dir / "checkpoints" / "last.pt")
    data.rename(tmp_path / "moved")
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"error: no CIFAR-10 data found in {data} (the data dir the run "
                          "was trained on, from its config.json)\n"), err
    assert "pass --data DIR where it is now" in err


def test_train_into_a_pipe_that_closes_says_where_to_resume(fake_cifar_dir: Path,
                                                            tmp_path: Path) -> None:
    """Found by review: `dlbox train ... | head -1` stopped training at the next printed line
    with exit 141 and nothing on stderr, though the run was cut short and resumable."""
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "dlbox", "train", *QUICK, "--epochs", "500", "--threads", "1",
         "--data", str(fake_cifar_dir), "--run-dir", str(run_dir), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()  # what `head -1` reads, before it exits
        process.stdout.close()
        err = process.stderr.read()
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert first.startswith("training tiny on cpu")
    assert process.returncode == 141, err
    assert err.splitlines()[-3:] == [
        "stopped: standard output was closed (the program reading it ended)",
        f"the last saved state is in {run_dir}/checkpoints/last.pt",
        f"resume with: dlbox train --resume {run_dir}"], err
    assert not load_checkpoint(run_dir / "checkpoints" / "last.pt")["finished"]


def test_resume_without_evaluate_names_an_evaluation_of_an_earlier_epoch(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: evaluate a stopped run (epoch 1), resume it with --no-evaluate to
    epoch 3: predictions.csv, the confusion matrix and metrics.json's evaluation were epoch
    1's, with nothing saying so."""
    from dlbox.training.config import build_config
    from dlbox.training.loop import TrainingStopped, train

    run_dir = tmp_path / "run"
    config = build_config("tiny", device="cpu", epochs=3, num_train=200, num_test=50,
                          data_dir=str(fake_cifar_dir), run_dir=str(run_dir), threads=1)
    with pytest.raises(TrainingStopped):
        train(config, progress=False, evaluate_at_end=False,
              stop=lambda epoch, step: epoch == 2 and step == 1)
    assert main(["evaluate", str(run_dir)]) == EXIT_OK
    assert read_json(run_dir / "metrics.json")["evaluation"]["epoch"] == 1
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir), "--no-evaluate", "--no-progress"]) == EXIT_OK
    # weights from the middle of epoch 2 (review: they were said to be "of epoch 1")
    assert (f"note: predictions.csv, the confusion matrix and metrics.json's evaluation in "
            f"{run_dir} are of the run as it stopped in epoch 2 (after 1 of its steps); "
            f"`dlbox evaluate {run_dir}` brings them to epoch 3" in capsys.readouterr().err)
    assert main(["evaluate", str(run_dir)]) == EXIT_OK
    assert read_json(run_dir / "metrics.json")["evaluation"]["epoch"] == 3


def test_classes_training_never_sees_are_warned_of(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Review: an empty class folder became an output the model is trained never to give,
    and a one-class tree a "100 %" model, without a word (torchvision's ImageFolder refuses
    an empty class folder)."""
    from dlbox.data.synthetic import write_fake_image_folder

    tree = tmp_path / "tree"
    write_fake_image_folder(tree / "train", per_class=3, classes=2)
    write_fake_image_folder(tree / "test", per_class=1, classes=2)
    (tree / "train" / "bird").mkdir()
    quick = ["--model", "tiny", "--epochs", "1", "--device", "cpu", "--no-progress",
             "--no-evaluate"]
    assert main(["train", *quick, "--data", str(tree), "--run-dir", str(tmp_path / "a")]) == 0
    assert ("warning: the training split has no images of class bird: the model has an output "
            "for it that training never teaches (add training images of it, or remove its "
            "class folders from every split if it is not a class)") in capsys.readouterr().err
    # review: with --num-train the fix may be more of the data, not a folder to remove
    assert main(["train", *quick, "--data", str(tree), "--num-train", "1", "--run-dir",
                 str(tmp_path / "a1")]) == 0
    assert ("warning: the first training image holds no images of 2 classes (bird, class_1): "
            "the model has an output for each that training never teaches (a larger "
            "--num-train may take some in)") in capsys.readouterr().err
    # ... but not when it takes the whole split already
    assert main(["train", *quick, "--data", str(tree), "--num-train", "6", "--run-dir",
                 str(tmp_path / "a6")]) == 0
    assert "(add training images of it," in capsys.readouterr().err
    (tree / "train" / "bird").rmdir()
    assert main(["train", *quick, "--data", str(tree), "--run-dir", str(tmp_path / "b")]) == 0
    assert "warning:" not in capsys.readouterr().err
    for split in ("train", "test"):
        shutil.rmtree(tree / split / "class_1")
    assert main(["train", *quick, "--data", str(tree), "--run-dir", str(tmp_path / "c")]) == 0
    assert ("warning: the data has one class, class_0: every prediction is class_0"
            in capsys.readouterr().err)



def test_train_notes_what_an_image_tree_passes_over_and_the_warning_names_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: `dlbox data check` noted the files and sub-folders of class folders
    that are not read, `dlbox train` said nothing of them, and its warning for a class left
    without images said to add training images to a folder holding them (in a sub-folder,
    under another extension). Train notes them as data check does, once each, and the
    warning names what the class's folder holds instead."""
    from dlbox.data.synthetic import write_fake_image_folder

    tree = tmp_path / "tree"
    write_fake_image_folder(tree / "train", per_class=3, classes=2)
    write_fake_image_folder(tree / "test", per_class=1, classes=3)
    frog = tree / "train" / "class_2"
    (frog / "more").mkdir(parents=True)
    shutil.copy(tree / "train" / "class_0" / "0000.png", frog / "more" / "0000.png")
    (frog / "0001.heic").write_bytes(b"not read")
    (tree / "test" / "class_0" / "notes.txt").write_text("not an image\n")
    assert main(["data", "check", "--data", str(tree)]) == 0
    checked = [line for line in capsys.readouterr().out.splitlines()
               if re.match(r"note: (train|test): skipped ", line)]
    assert len(checked) == 3, checked
    assert main(["train", "--model", "tiny", "--epochs", "1", "--device", "cpu",
                 "--no-progress", "--no-evaluate", "--data", str(tree), "--run-dir",
                 str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if re.match(r"note: (train|test): skipped ", line)] == checked
    (warning,) = [line for line in err if line.startswith("warning: ")]
    assert warning.startswith("warning: the training split has no images of class class_2: ")
    assert "(class_2/0001.heic)" in checked[0] + checked[1]  # named once, in the notes
    assert "class_2/0001.heic" not in warning and "only what is not read, noted above" in warning
    assert "put its images directly in train/class_2/" in warning
    assert "add training images" not in warning

def test_sigterm_once_the_report_is_written_leaves_a_finished_run(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: a SIGTERM landing just after the final "test accuracy: ...; wrote"
    line (a `timeout` as training ends) said the evaluation was cut short and exited 143,
    though every file of the report was written."""
    from dlbox.cli.common import Terminated
    from dlbox.training import loop

    report = loop._report

    def report_then_terminated(*args, **kwargs):  # type: ignore[no-untyped-def]
        report(*args, **kwargs)
        raise Terminated(signal.SIGTERM)

    monkeypatch.setattr(loop, "_report", report_then_terminated)
    monkeypatch.chdir(tmp_path)
    code = main(["train", *QUICK, "--epochs", "1", "--data", str(fake_cifar_dir)])
    [run_dir] = (tmp_path / "runs").iterdir()
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.splitlines()[-1].startswith("test accuracy: ")
    assert captured.err.splitlines()[-1] == (
        f"stopped (SIGTERM) once the run had finished: its report is complete in {run_dir}")


def test_sigterm_after_a_no_evaluate_run_finished_says_none_was_asked_for(
        fake_cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: with --no-evaluate, a SIGTERM just after the last line said "its
    evaluation was cut short" and exited 143, though none was asked for."""
    from dlbox.cli.common import Terminated
    from dlbox.training import loop

    def terminated(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise Terminated(signal.SIGTERM)  # just after the last line

    monkeypatch.setattr(loop, "_note_an_older_evaluation", terminated)
    run_dir = tmp_path / "run"
    code = main(["train", *QUICK, "--epochs", "1", "--data", str(fake_cifar_dir),
                 "--run-dir", str(run_dir), "--no-evaluate"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert err.splitlines()[-1] == (
        f"stopped (SIGTERM) once the run had finished: its training is complete in "
        f"{run_dir.resolve()} (no evaluation was asked for)")


def test_a_default_run_dir_that_saved_nothing_leaves_no_empty_runs_folder(
        fake_cifar_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: the run's folder was removed (the same command makes a new one), but
    the runs/ folder made for it stayed, empty."""
    from dlbox.training import speedrun

    def cut_short(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt  # before the first checkpoint

    monkeypatch.setattr(speedrun, "train_speedrun", cut_short)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--model", "speedrun", "--device", "cpu", "--num-train", "200",
                 "--num-test", "50", "--epochs", "1", "--no-progress", "--data",
                 str(fake_cifar_dir)]) == 130
    assert not (tmp_path / "runs").exists()
    (tmp_path / "runs" / "kept").mkdir(parents=True)  # a runs/ holding more stays
    assert main(["train", "--model", "speedrun", "--device", "cpu", "--num-train", "200",
                 "--num-test", "50", "--epochs", "1", "--no-progress", "--data",
                 str(fake_cifar_dir)]) == 130
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["kept"]
