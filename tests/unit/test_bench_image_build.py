"""benchmarks/image_build.py refuses bad arguments before its minutes of building."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import load_benchmark

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "image_build.py"


@pytest.mark.parametrize("case", ["json-a-folder", "json-under-a-file", "missing-wheelhouse",
                                  "empty-base-image", "bad-base-image"])
def test_bad_arguments_are_refused_before_any_build(tmp_path: Path, case: str) -> None:
    """Found in review: a folder given as --json was found only after both builds (over three
    minutes), with a traceback; a --wheelhouse that does not exist was dropped silently, and
    the build then failed on a torch requirement it could not meet."""
    (tmp_path / "a-file").write_text("")
    args, message = {
        "json-a-folder": (["--json", str(tmp_path)], f"cannot write {tmp_path}: it is a folder"),
        "json-under-a-file": (["--json", str(tmp_path / "a-file" / "out.json")],
                              "is not a folder"),
        "missing-wheelhouse": (["--wheelhouse", str(tmp_path / "wheels")],
                               f"--wheelhouse {tmp_path / 'wheels'} is not a folder"),
        # review: found only after the project was copied and locking began, exit 1
        "empty-base-image": (["--base-image="], "--base-image was given an empty value"),
        "bad-base-image": (["--base-image", "Bad Image"],
                           "--base-image 'Bad Image' is not a valid image name"),
    }[case]
    # No engine is needed: DOCKER_HOST points nowhere, so a build would fail otherwise.
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=120, check=False,
                          env={"DOCKER_HOST": "unix:///nonexistent.sock", "PATH": "/usr/bin"})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert lines[1].startswith("hint: ") and proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def _bench_with_a_stand_in_engine(monkeypatch: pytest.MonkeyPatch,
                                  measure: Callable[[object, object], dict[str, object]]
                                  ) -> tuple[Any, list[str]]:
    """The script as a module, its engine a stand-in that records the images removed, and
    its measuring `measure`."""
    bench = load_benchmark("image_build")
    removed: list[str] = []

    class Images:
        def remove(self, name: str, force: bool = False) -> None:
            removed.append(name)

    class Client:
        images = Images()

    monkeypatch.setattr(bench.engine, "connect", lambda: Client())
    monkeypatch.setattr(bench, "measure", measure)
    return bench, removed


def test_ctrl_c_during_the_builds_is_a_line_and_130_not_a_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: Ctrl-C in the minutes of building ended in a traceback."""
    def interrupted(client: object, args: object) -> dict[str, object]:
        raise KeyboardInterrupt

    bench, removed = _bench_with_a_stand_in_engine(monkeypatch, interrupted)
    assert bench.main([]) == 130
    assert capsys.readouterr().err.strip() == (
        "interrupted: no figures (the benchmark's images are removed; a build stopped "
        "half-way leaves untagged layers, which `docker image prune` removes)")
    assert removed == [bench.TAG, f"{bench.TAG}-deps"]


def test_sigterm_during_the_builds_removes_what_it_made(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    """Found by review: SIGTERM (`timeout`, a scheduler) ended the benchmark at once: its
    temporary project copy and its images stayed, and nothing was said."""
    import os
    import signal
    import tempfile

    made: list[Path] = []

    def terminated(client: object, args: object) -> dict[str, object]:
        with tempfile.TemporaryDirectory(prefix="dlbox-bench-", dir=tmp_path) as tmp:
            made.append(Path(tmp))
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the signal arrives meanwhile
        raise AssertionError("SIGTERM did not stop the build")

    bench, removed = _bench_with_a_stand_in_engine(monkeypatch, terminated)
    assert bench.main([]) == 143
    assert capsys.readouterr().err.strip() == (
        "stopped (SIGTERM): no figures (the benchmark's images are removed; a build stopped "
        "half-way leaves untagged layers, which `docker image prune` removes)")
    assert removed == [bench.TAG, f"{bench.TAG}-deps"]
    assert made and not made[0].exists()
