"""What `dlbox image build` shows of a build step's output: apt and pip colour their lines
(apt's errors in red), and the engine passes the escape codes on; dlbox's progress and its
error messages show the text without them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlbox.container import engine
from dlbox.text import plain

# Event stream as the engine sends it for a RUN step whose apt-get fails (recorded shape).
EVENTS = [
    {"stream": "Step 1/2 : FROM dlbox-base:bookworm\n"},
    {"stream": " ---> 6c1dac634269\n"},
    {"stream": "Step 2/2 : RUN apt-get install -y libfoo\n"},
    {"stream": " ---> Running in 0123456789ab\n"},
    {"stream": "\x1b[91mE: Unable to locate package libfoo\n\x1b[0m"},
    {"stream": "Progress: [ 40%]\r\x1b[2K"},
    {"aux": {"ID": "sha256:" + "ab" * 32}},
    {"stream": "Successfully built abababababab\n"},
]


class FakeApi:
    def build(self, **kwargs: Any) -> Any:
        return iter(EVENTS)


class FakeClient:
    api = FakeApi()


def test_plain_removes_colours_and_control_characters_only() -> None:
    assert plain("\x1b[1;31mE: \x1b[0mUnable to locate package foo\r") == \
        "E: Unable to locate package foo"
    assert plain("title\x1b]0;x\x07 done\x1b[2K") == "title done"
    assert plain("tab\tand unicode é ✓") == "tab\tand unicode é ✓"


def test_build_output_reaches_the_progress_without_escape_codes(tmp_path: Path) -> None:
    context = tmp_path / "context.tar"
    context.write_bytes(b"")
    shown: list[str] = []
    result = engine.build(FakeClient(), context,
                          on_event=lambda kind, data: shown.append(data["line"])
                          if kind == "output" else None)
    assert "E: Unable to locate package libfoo" in shown
    assert "Progress: [ 40%]" in shown
    assert not any("\x1b" in line or "\r" in line for line in shown + result.log)
