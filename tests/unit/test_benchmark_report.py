"""dlbox.benchmark_report: the summary the benchmarks print and write, and their --json check."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlbox.benchmark_report import summarize, summary_lines
from dlbox.errors import FileWriteError, UsageError
from dlbox.fileio import check_writable


def test_one_run_has_no_standard_deviation_rather_than_zero() -> None:
    """Found in review: `--runs 1` printed and wrote "std 0.000", as if runs had agreed."""
    one = summarize([0.5, None, float("nan")])
    assert one == {"mean": 0.5, "std": None, "min": 0.5, "max": 0.5, "n": 1}
    two = summarize([0.5, 0.7])
    assert two["std"] == pytest.approx(0.1414, abs=1e-4) and two["n"] == 2
    header, row = summary_lines({"accuracy": one}, runs=1)
    assert row.split() == ["accuracy", "50.000", "-", "50.000", "50.000", "%"]
    assert len(row) == len(summary_lines({"accuracy": two}, runs=2)[1])  # columns line up


def test_no_figures_is_said_not_an_empty_table() -> None:
    """A benchmark whose script completed no run printed the table's header over nothing."""
    assert summary_lines({"time_seconds": summarize([])}, runs=0) == [
        "over 0 run(s): no figures to summarise"]


def test_check_writable_refuses_an_empty_path_a_folder_and_a_path_under_a_file(
        tmp_path: Path) -> None:
    """`--json ""` (a variable unset) wrote no JSON and said nothing."""
    with pytest.raises(UsageError, match="--json was given an empty path"):
        check_writable("")
    with pytest.raises(FileWriteError, match="it is a folder"):
        check_writable(tmp_path)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(FileWriteError, match="is not a folder"):
        check_writable(tmp_path / "a-file" / "out.json")
    check_writable(tmp_path / "new" / "out.json")  # missing folders are made by the write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_check_writable_on_a_folder_where_no_file_can_be_made() -> None:
    """`--json /proc/x.json` said "/proc is not writable (No such file or directory)": the
    folder is there, the reason read as if it were not."""
    with pytest.raises(FileWriteError) as info:
        check_writable("/proc/dlbox-check.json")
    assert info.value.message.endswith("/proc is not writable (no file can be made there)")


def test_a_device_fifo_or_link_given_as_the_json_path(tmp_path: Path) -> None:
    """Found by review: the atomic write renamed its temp file over the path, so `--json` at
    a FIFO, or as root at /dev/null, replaced it with a regular file, and at a link replaced
    the link instead of writing the file it points to."""
    import os

    from dlbox.fileio import write_json_atomic

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(FileWriteError, match="not a regular file"):
        check_writable(fifo)
    with pytest.raises(FileWriteError, match="not a regular file"):
        write_json_atomic(fifo, {"a": 1})
    assert not fifo.is_file()
    target = tmp_path / "store" / "real.json"
    target.parent.mkdir()
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    check_writable(link)
    write_json_atomic(link, {"a": 1})
    assert link.is_symlink() and target.read_text() == '{\n  "a": 1\n}\n'


def test_a_benchmark_piped_into_head_still_writes_its_json(tmp_path: Path) -> None:
    """Found by review: `benchmark | head -1` ended in a BrokenPipeError traceback at the next
    print, every run and the --json file lost (airbench's script killed with it)."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "cpu_layout.py"
    out = tmp_path / "layout.json"
    reader = subprocess.Popen(["head", "-1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    bench = subprocess.run([sys.executable, str(script), "--seconds", "0.05", "--repeats", "1",
                            "--json", str(out)], stdout=reader.stdin, stderr=subprocess.PIPE,
                           text=True, timeout=300, check=False)
    assert reader.stdin is not None
    reader.stdin.close()
    reader.wait(timeout=30)
    assert bench.returncode == 0 and "Traceback" not in bench.stderr, bench.stderr
    assert out.is_file()
