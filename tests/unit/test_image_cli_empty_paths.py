"""`dlbox image build|run` with a path flag given an empty value ("$VAR" unset): argparse's
`type=Path` made "" into ".", so `image run --data ""` mounted the current folder as the
data and `image build ""` built the current folder. Each is now the usage error the other
commands give, before any engine is asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlbox.cli import main
from dlbox.errors import EXIT_USAGE


@pytest.mark.parametrize("argv, named", [
    (["image", "run", "--data", "", "--", "true"], "--data"),
    (["image", "run", "--runs", " ", "--", "true"], "--runs"),
    (["image", "build", "--dry-run", "--wheelhouse", ""], "--wheelhouse"),
    (["image", "build", "--dry-run", "--ca-cert", ""], "--ca-cert"),
    (["image", "build", "--dry-run", "--lock", ""], "--lock"),
    (["image", "build", "", "--dry-run"], "PROJECT_DIR"),
])
def test_an_empty_path_is_refused_not_taken_as_the_current_folder(
        argv: list[str], named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "requirements.txt").write_text("numpy\n")  # a project "." would build
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # no engine needed
    assert main(argv) == EXIT_USAGE
    captured = capsys.readouterr()
    error, hint = captured.err.strip().splitlines()
    assert error.startswith(f"error: {named} was given") and "empty path" in error
    assert hint.startswith("hint: pass ")
    assert captured.out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["requirements.txt"]  # no lock, no runs


def test_a_given_path_still_reaches_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["image", "build", "--dry-run", "--wheelhouse", str(tmp_path / "nowhere")]) \
        == EXIT_USAGE
    assert f"--wheelhouse {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err


def test_env_takes_name_equals_value_or_a_name_whose_value_this_shell_has(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`--env NAME` passes this shell's value on, as `docker run -e NAME` does (it was refused
    as "not NAME=VALUE"); an unset NAME is an error, where docker drops it without a word."""
    from dlbox.cli.image import _parse_env
    from dlbox.errors import UsageError

    monkeypatch.setenv("DLBOX_TEST_TOKEN", "s3cret=1")
    monkeypatch.delenv("DLBOX_TEST_UNSET", raising=False)
    assert _parse_env(["SEED=1", "DLBOX_TEST_TOKEN", "EMPTY="]) == (
        ("SEED", "1"), ("DLBOX_TEST_TOKEN", "s3cret=1"), ("EMPTY", ""))
    with pytest.raises(UsageError) as info:
        _parse_env(["DLBOX_TEST_UNSET"])
    assert info.value.message == ("--env DLBOX_TEST_UNSET: DLBOX_TEST_UNSET is not set in this "
                                  "shell, so there is no value to pass on")
    for bad in ("=1", "A B=1", ""):
        with pytest.raises(UsageError, match="is not NAME=VALUE or NAME"):
            _parse_env([bad])
