"""scripts/setup.sh and scripts/build-base-image.sh refuse what they do not know before doing
anything, and say what they do with --help."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPTS / script), *args], capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize("script, args, message", [
    # a typo passed for a full set-up: the Python part ran, the system part silently not
    ("setup.sh", ["--sytem"], "error: unknown argument(s): --sytem"),
    ("setup.sh", ["--system", "extra"], "error: unknown argument(s): --system extra"),
    # found only by `docker import`, after the ~90 s of debootstrap
    ("build-base-image.sh", ["Bad:Tag"], "error: Bad:Tag is not a valid image name"),
    ("build-base-image.sh", ["a", "b"], "error: one argument at most (the tag), got 2: a b"),
    # found by review: `--dat DIR` was fetch's --data (an abbreviation) and never reached
    # training; training flags failed only after the whole set-up
    ("main.sh", ["--dat", "mydata"], "error: scripts/main.sh takes dlbox data fetch's --data, "
     "--from, --sha256 and --force, not --dat"),
    ("main.sh", ["--epochs", "2"], "error: scripts/main.sh takes dlbox data fetch's --data, "
     "--from, --sha256 and --force, not --epochs"),
    ("main.sh", ["--from"], "error: --from needs a value"),
])
def test_an_unknown_argument_is_refused_before_any_work(script: str, args: list[str],
                                                        message: str) -> None:
    result = run(script, *args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines()[0] == message
    assert result.stderr.splitlines()[1].startswith("hint: ")


@pytest.mark.parametrize("script, usage", [
    ("setup.sh", "Usage: scripts/setup.sh"),
    # it printed "==> base image --help already present"
    ("build-base-image.sh", "Usage: scripts/build-base-image.sh [TAG]"),
])
def test_help_says_what_the_script_does_and_does_nothing(script: str, usage: str) -> None:
    result = run(script, "--help")
    assert result.returncode == 0 and usage in result.stdout and result.stderr == ""
    assert "==>" not in result.stdout and "set -" not in result.stdout
