"""A mistyped flag, command or value on the command line: one `error:` line naming it (with
the closest real flag or command of that (sub)command when one is close), a `hint:` line
naming that command's --help, exit 2, and no usage block (review: `dlbox train --modle tiny`
printed 9 lines of usage and no suggestion; `dlbox data` printed its help and no error)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

import dlbox.cli.train
from dlbox import cli
from dlbox.errors import EXIT_USAGE


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == EXIT_USAGE, captured
    assert captured.out == ""
    assert "usage:" not in captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), \
        captured.err
    return lines


@pytest.mark.parametrize("argv, message, help_of", [
    (["train", "--modle", "tiny"],
     "error: dlbox train has no flag --modle: did you mean --model?", "dlbox train"),
    (["train", "--modle=tiny"],
     "error: dlbox train has no flag --modle: did you mean --model?", "dlbox train"),
    (["predict", "RUN", "x.jpg", "--topk", "2"],
     "error: dlbox predict has no flag --topk: did you mean --top-k?", "dlbox predict"),
    (["data", "fetch", "--forse"],
     "error: dlbox data fetch has no flag --forse: did you mean --force?", "dlbox data fetch"),
    (["--verison"], "error: dlbox has no flag --verison: did you mean --version?", "dlbox"),
    # nothing close: no suggestion
    (["train", "--zqxjk", "1"], "error: dlbox train has no flag --zqxjk", "dlbox train"),
    # the dashes alike are no likeness: --bogus is not a --gpus, nor --dry-run a --runs
    (["image", "run", "--bogus"], "error: dlbox image run has no flag --bogus",
     "dlbox image run"),
    (["image", "run", "--dry-run"], "error: dlbox image run has no flag --dry-run",
     "dlbox image run"),
    (["train", "--Model", "tiny"],
     "error: dlbox train has no flag --Model: did you mean --model?", "dlbox train"),
    # a flag of another command is still refused, and not suggested from there
    (["data", "check", "--force"], "error: dlbox data check has no flag --force",
     "dlbox data check"),
])
def test_a_mistyped_flag_is_named_with_the_closest_real_one(
        argv: list[str], message: str, help_of: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    error, hint = _refused(argv, capsys)
    assert error == message
    assert f"`{help_of} --help`" in hint


@pytest.mark.parametrize("argv, message, help_of", [
    (["trian"], "error: dlbox has no command 'trian': did you mean 'train'?", "dlbox"),
    (["data", "fecth"], "error: dlbox data has no command 'fecth': did you mean 'fetch'?",
     "dlbox data"),
    (["image", "biuld"], "error: dlbox image has no command 'biuld': did you mean 'build'?",
     "dlbox image"),
    (["xyzzy"], "error: dlbox has no command 'xyzzy'", "dlbox"),
])
def test_a_mistyped_command_is_named_with_the_closest_real_one(
        argv: list[str], message: str, help_of: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    error, hint = _refused(argv, capsys)
    assert error == message
    assert f"`{help_of} --help`" in hint


@pytest.mark.parametrize("argv, message", [
    (["data"], "error: dlbox data needs a command: fetch or check"),
    (["image"], "error: dlbox image needs a command: build or run"),
])
def test_a_command_group_without_its_command_says_so(
        argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    error, hint = _refused(argv, capsys)
    assert error == message
    assert f"`dlbox {argv[0]} --help`" in hint


@pytest.mark.parametrize("argv, message, help_of", [
    (["train", "--lr", "abc"], "error: argument --lr: invalid float value: 'abc'",
     "dlbox train"),
    (["train", "extra"], "error: unrecognized arguments: extra", "dlbox train"),
    (["data", "check", "extra"], "error: unrecognized arguments: extra", "dlbox data check"),
    (["predict"], "error: the following arguments are required: RUN_DIR, IMAGE",
     "dlbox predict"),
])
def test_other_parse_errors_keep_argparses_words_without_the_usage_block(
        argv: list[str], message: str, help_of: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    error, hint = _refused(argv, capsys)
    assert error == message
    assert f"`{help_of} --help`" in hint


@pytest.mark.parametrize("argv", [
    ["train", "--model", "tiny"],
    ["train", "--model=tiny"],
    ["train", "--mod", "tiny"],  # an abbreviation argparse accepts
    ["train", "--mod=tiny"],
])
def test_right_and_abbreviated_flags_still_work(
        argv: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[argparse.Namespace] = []

    def run(args: argparse.Namespace) -> int:
        seen.append(args)
        return 0

    monkeypatch.setattr(dlbox.cli.train, "run", run)
    assert cli.main(argv) == 0
    assert [args.model for args in seen] == ["tiny"]
    assert capsys.readouterr().err == ""


def test_the_console_command_says_it_in_two_lines() -> None:
    result = subprocess.run([sys.executable, "-m", "dlbox", "train", "--modle", "tiny"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == EXIT_USAGE
    assert result.stderr.splitlines() == [
        "error: dlbox train has no flag --modle: did you mean --model?",
        "hint: `dlbox train --help` lists its flags",
    ]


@pytest.mark.parametrize("argv, message, help_of", [
    (["--json", "models"], "error: --json is a flag of dlbox models: put it after the "
                           "command (dlbox models --json)", "dlbox models"),
    (["image", "--no-cache", "build"], "error: --no-cache is a flag of dlbox image build: put "
                                       "it after the command (dlbox image build --no-cache)",
     "dlbox image build"),
    # re-review: the command to paste kept the flag's value ("dlbox train --epochs" failed)
    (["--epochs=1", "train"], "error: --epochs is a flag of dlbox train: put it after the "
                              "command (dlbox train --epochs=1)", "dlbox train"),
    # a flag with its value as the next word: the value is no command '2' (seen and left
    # alone before)
    (["--epochs", "2", "train"], "error: --epochs is a flag of dlbox train: put it after "
                                 "the command (dlbox train --epochs 2)", "dlbox train"),
    (["--num-train", "5", "train", "--model", "tutorial"],
     "error: --num-train is a flag of dlbox train: put it after the command (dlbox train "
     "--num-train 5)", "dlbox train"),
    (["image", "--tag", "me/x", "build"], "error: --tag is a flag of dlbox image build: put "
                                          "it after the command (dlbox image build --tag "
                                          "me/x)", "dlbox image build"),
    # re-review: a value that is a command's name ("data") was taken for the command
    (["--data", "data", "train"], "error: --data is a flag of dlbox train: put it after the "
                                  "command (dlbox train --data data)", "dlbox train"),
    (["--data", "data", "data", "check"], "error: --data is a flag of dlbox data check: put "
                                          "it after the command (dlbox data check --data "
                                          "data)", "dlbox data check"),
    # ... and a flag that is after the command (past a `--`, or given twice) is not told so
    (["models", "--", "--json"], "error: unrecognized arguments: -- --json", "dlbox models"),
    (["--json", "models", "--json"], "error: unrecognized arguments: --json", "dlbox models"),
])
def test_a_commands_flag_given_before_the_command_says_where_it_goes(
        argv: list[str], message: str, help_of: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by re-review: `dlbox --json models` said "dlbox models has no flag --json: did
    you mean --json?"."""
    error, hint = _refused(argv, capsys)
    assert error == message
    assert f"`{help_of} --help`" in hint
