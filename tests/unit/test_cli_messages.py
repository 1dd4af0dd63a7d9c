"""What the CLI says: each bad setting named with its flag and value, a failed write of the
output named as such, and `dlbox models` fitted to the terminal's width."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dlbox import cli
from dlbox.errors import EXIT_ERROR, EXIT_OK, EXIT_USAGE, UsageError


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---- weight decay and momentum: each its own message, naming flag and value -----------------

@pytest.mark.parametrize("flag, value, message, hint", [
    ("--momentum", "5", "error: momentum must be in [0, 1), got 5", "--momentum 0.9"),
    ("--momentum", "-0.5", "error: momentum must be in [0, 1), got -0.5", "--momentum 0.9"),
    ("--momentum", "1", "error: momentum must be in [0, 1), got 1", "--momentum 0.9"),
    ("--weight-decay", "-1", "error: weight decay must be >= 0, got -1", "--weight-decay"),
])
def test_a_bad_momentum_or_weight_decay_is_named_with_its_value(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        flag: str, value: str, message: str, hint: str) -> None:
    run_dir = tmp_path / "run"
    code, _, err = _cli(["train", "--model", "tiny", "--device", "cpu",
                         "--run-dir", str(run_dir), "--data", str(tmp_path / "data"),
                         f"{flag}={value}"], capsys)
    assert code == EXIT_USAGE
    lines = err.splitlines()
    assert lines[0] == message, err
    assert lines[1].startswith("hint: ") and hint in lines[1], err
    other = "momentum" if flag == "--weight-decay" else "weight decay"
    assert other not in err  # the setting that is fine is not blamed
    assert not run_dir.exists()


# ---- an OSError with no filename: the output could not be written ---------------------------

def _raising(error: OSError) -> Any:
    def run(args: Any) -> int:
        raise error

    return run


def test_a_full_disk_under_stdout_is_named_as_the_output(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import dlbox.cli.models

    monkeypatch.delenv("DLBOX_DEBUG", raising=False)
    monkeypatch.setattr(dlbox.cli.models, "run",
                        _raising(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))
    code, _, err = _cli(["models"], capsys)
    assert code == EXIT_ERROR
    lines = err.splitlines()
    # standard output is fine here: the failed write was a file's (written by a library that
    # names none, as tarfile does for a build context in a full temp folder), not the output
    assert lines[0] == f"error: cannot write a file: {os.strerror(errno.ENOSPC)}"
    assert len(lines) == 2 and lines[1].startswith("hint: free some space")
    assert "DLBOX_DEBUG=1" in lines[1]


def test_an_os_error_with_a_filename_still_names_the_path(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    import dlbox.cli.models

    missing = tmp_path / "nowhere"
    monkeypatch.delenv("DLBOX_DEBUG", raising=False)
    monkeypatch.setattr(dlbox.cli.models, "run", _raising(
        FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(missing))))
    code, _, err = _cli(["models"], capsys)
    assert code == EXIT_ERROR
    assert err.splitlines()[0] == f"error: cannot use {missing}: {os.strerror(errno.ENOENT)}"
    assert "path exists" in err.splitlines()[1]


def test_another_os_error_without_a_filename_gets_no_path_hint(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import dlbox.cli.models

    monkeypatch.delenv("DLBOX_DEBUG", raising=False)
    monkeypatch.setattr(dlbox.cli.models, "run", _raising(
        ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))))
    code, _, err = _cli(["models"], capsys)
    assert code == EXIT_ERROR
    lines = err.splitlines()
    assert lines[0] == f"error: {os.strerror(errno.ECONNREFUSED)}"
    assert "cannot use" not in err and "path" not in err and "DLBOX_DEBUG=1" in lines[1]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_stdout_on_a_full_device_says_the_output_could_not_be_written(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "DLBOX_DEBUG"}
    with open("/dev/full", "w") as full:
        out = subprocess.run([sys.executable, "-m", "dlbox", "models"], cwd=tmp_path,
                             stdout=full, stderr=subprocess.PIPE, text=True, timeout=120,
                             env=env)
    assert out.returncode == EXIT_ERROR
    lines = out.stderr.splitlines()
    assert lines[0] == f"error: cannot write the output: {os.strerror(errno.ENOSPC)}", out.stderr
    assert len(lines) == 2 and "path" not in lines[1] and "Traceback" not in out.stderr


# ---- `dlbox models` fits the terminal ------------------------------------------------------

def _models(columns: int | None, capsys: pytest.CaptureFixture[str],
            monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    if columns is None:  # and stdout no terminal, even under `pytest -s`
        monkeypatch.delenv("COLUMNS", raising=False)

        def no_terminal(fd: int = 1) -> os.terminal_size:
            raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))

        monkeypatch.setattr(os, "get_terminal_size", no_terminal)
    else:
        monkeypatch.setenv("COLUMNS", str(columns))
    code, out, _ = _cli(["models", *args], capsys)
    assert code == EXIT_OK
    return out


def test_models_on_a_narrow_terminal_prints_a_block_per_model_within_the_width(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    out = _models(80, capsys, monkeypatch)
    lines = out.splitlines()
    assert lines and max(len(line) for line in lines) <= 80, out
    assert "DEFAULT RECIPE" not in out  # no table header: blocks
    entries = json.loads(_models(80, capsys, monkeypatch, "--json"))
    heads = {line.split()[0]: line for line in lines if line and not line.startswith(" ")}
    for entry in entries:  # each model heads its block, with its parameter count
        head = heads[entry["name"]]
        assert (f"{entry['params']:,}" in head
                or f"{entry['params'] / 1e6:.2f}M" in head), head
    tutorial = out[out.index("\ntutorial "):]
    assert "    any recipe: 2 ep, bs 4, lr 0.001" in tutorial
    assert "    the CNN of PyTorch" in tutorial
    resnet = out[out.index("resnet "):]
    assert "\n    gpu recipe: " in resnet and "\n    cpu recipe: " in resnet


def test_models_keeps_the_table_where_it_fits_or_no_terminal_limits_it(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    wide = _models(400, capsys, monkeypatch)
    assert wide.splitlines()[0].split() == ["MODEL", "PARAMS", "DEFAULT", "RECIPE",
                                            "DESCRIPTION"]
    entries = json.loads(_models(400, capsys, monkeypatch, "--json"))
    assert len(wide.splitlines()) == len(entries) + 2  # header, a row each, the footnote
    # Captured (not a terminal) and no COLUMNS: the table, one line per model, as in a pipe.
    assert _models(None, capsys, monkeypatch) == wide


def test_models_json_ignores_the_width(capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    assert _models(40, capsys, monkeypatch, "--json") == _models(400, capsys, monkeypatch,
                                                                 "--json")


@pytest.mark.parametrize("raw", [
    b"bad\xffname.png", b"new\nline.png", b"it's\tx\\y.png", "a\u0085b\u2028c".encode(),
    b"\x1b[31mred", "\u732b\n".encode(), "caf\u00e9 and more".encode(), b"plain.png"])
def test_a_name_in_a_hint_or_a_line_pastes_back_into_bash_as_its_bytes(raw: bytes) -> None:
    """A name is shown on one line and pastes back as the bytes it has on disk: bytes that
    are not UTF-8, control characters, and what Python's splitlines() splits on (U+0085,
    U+2028), which review found unescaped; a hint's run dir of such a name showed 'r\\udce9'."""
    from dlbox.text import shell_quote, shown_name

    name = os.fsdecode(raw)
    for shown in {shown_name(name), shell_quote(name)} - {name}:
        assert len(shown.splitlines()) == 1 and shown.isprintable(), shown
        for locale in ("C.UTF-8", "C"):  # review: \u0085 stayed text under LC_ALL=C
            pasted = subprocess.run(["bash", "-c", "printf %s " + shown], capture_output=True,
                                    check=True, env={**os.environ, "LC_ALL": locale})
            assert pasted.stdout == raw, (shown, locale)


@pytest.mark.parametrize("argv, error, command", [
    (["train", "extra"], "error: unrecognized arguments: extra", "dlbox train"),
    (["image", "build", "--dry-run", "one", "two"], "error: unrecognized arguments: two",
     "dlbox image build"),
    (["data", "check", "extra"], "error: unrecognized arguments: extra", "dlbox data check"),
    (["--bogus"], "error: dlbox has no flag --bogus", "dlbox"),
])
def test_an_extra_argument_is_told_with_its_commands_help(
        argv: list[str], error: str, command: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: `dlbox train extra` printed dlbox's own usage (COMMAND ...), not
    `dlbox train`'s, above "unrecognized arguments: extra". Since, no usage block at all
    (test_cli_typos): the error, and a hint naming the command's own --help."""
    from dlbox.cli import main

    assert main(argv) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == error and len(lines) == 2, lines
    assert lines[1].startswith(f"hint: `{command} --help` "), lines


def test_a_path_starting_with_the_tilde_of_no_user_is_taken_as_it_is(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: path flags expand ~ (for --output=~/x), and ~name of no user (an
    Office lock file, ~$report.docx) then raised a RuntimeError out of argparse: a
    traceback."""
    from dlbox.cli import main
    from dlbox.jupyter.notebooks import check_settings

    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", str(tmp_path / "no-run"), "--output", "~dlbox-no-user/x"]) == 1
    assert capsys.readouterr().err.startswith(
        f"error: run directory {tmp_path / 'no-run'} does not exist")
    with pytest.raises(UsageError, match="^MY_IMAGE = '~dlbox-no-user/a.png' is no file"):
        check_settings(MY_IMAGE="~dlbox-no-user/a.png")
    # where a command expands one itself (--data, --resume, PROJECT_DIR, DLBOX_DATA ...), the
    # same: the path as written, not "unexpected RuntimeError" or a usage error of its own
    for argv, code, said in (
            (["train", "--data=~dlbox-no-user/x"], 1,
             f"error: --data {tmp_path / '~dlbox-no-user/x'} does not exist"),
            (["train", "--resume", "~dlbox-no-user/r"], 1,
             f"error: run directory {tmp_path / '~dlbox-no-user/r'} does not exist"),
            (["image", "build", "--dry-run", "~dlbox-no-user/p"], EXIT_USAGE,
             f"error: project folder {tmp_path / '~dlbox-no-user/p'} does not exist"),
            (["notebook", "--notebook-dir", "~dlbox-no-user/n"], EXIT_USAGE,
             "error: --notebook-dir ~dlbox-no-user/n is not a directory")):
        assert main(argv) == code, argv
        assert capsys.readouterr().err.splitlines()[0] == said
    monkeypatch.setenv("DLBOX_DATA", "~dlbox-no-user/env")
    assert main(["data", "check"]) == 1
    assert capsys.readouterr().err.startswith(  # taken as it is: a folder that is not there
        "error: $DLBOX_DATA (~dlbox-no-user/env) does not exist")
    assert not (tmp_path / "~dlbox-no-user").exists()


def test_a_ctrl_c_that_surfaces_as_another_error_is_an_interruption(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Seen by review: a Ctrl-C during a late import (matplotlib's, as evaluate plots) came
    out of the import machinery as `ImportError: initialization failed`, reported as "an
    unexpected error ... please report it" with exit 70, not "interrupted" (130)."""
    from dlbox.cli import models

    def interrupted_import(args: object) -> int:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as ctrl_c:
            raise ImportError("initialization failed") from ctrl_c

    monkeypatch.setattr(models, "run", interrupted_import)
    assert _cli(["models"], capsys) == (130, "", "interrupted\n")
