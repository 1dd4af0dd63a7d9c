"""benchmarks/cpu_layout.py: what its --help, table and JSON say the figures are.

The module is imported by path (benchmarks/ is no package) and measured for a hundredth of
a second per case, one repeat, batches of 8: the figures are noise, their labels are what is
tested.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_benchmark

cpu_layout = load_benchmark("cpu_layout")


def test_help_says_which_way_the_ratio_goes(capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: --help showed the docstring's first paragraph only, so the ratio's
    direction (above 1: channels_last faster) and the median of repeats were nowhere."""
    with pytest.raises(SystemExit) as stop:
        cpu_layout.main(["--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("the ratio channels_last / contiguous: above 1 means channels_last is "
                   "faster", "the median of the repeats", "runs for S seconds per repeat"):
        assert phrase in text, phrase


def test_table_and_json_say_what_the_ratio_is_and_how_it_was_measured(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: the table's header was `ratio   (images/s)`, no direction, and the
    JSON did not record --seconds and --repeats, which its figures depend on."""
    # batches of 8, not the real cases' 256 to 2000 (13 s on 2 cores): the labels are tested
    monkeypatch.setattr(cpu_layout, "CASES", (("train", 8), ("eval", 8)))
    out = tmp_path / "layout.json"
    assert cpu_layout.main(["--seconds", "0.01", "--repeats", "1", "--json", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("case"))
    assert lines[header - 1] == ("images/s, and their ratio channels_last / contiguous (>1: "
                                 "channels_last faster), median of 1 repeats of 0.01 s")
    assert lines[header].split() == ["case", "contiguous", "channels_last", "ratio"]
    document = json.loads(out.read_text())
    assert (document["seconds"], document["repeats"]) == (0.01, 1)
    assert list(document["results"]) == ["train batch 8", "eval batch 8"]
