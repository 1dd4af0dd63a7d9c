"""The notebook's progress bar (dlbox.jupyter.progress): its time left."""

from __future__ import annotations

import pytest

from dlbox.jupyter.progress import NotebookProgress, ProgressView


class Clock:
    """A clock the test moves by hand (the bar's `clock`)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_time_left_leaves_out_the_startup_before_the_first_step(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: `epoch 1/30, step 1/1500 (0 %), 0:03 elapsed, about 1:25:52 left`
    for a run of 100 s: the clock started with the bar, before train() read the data and
    built the network, and that startup was spread over every step to come."""
    clock = Clock()
    bar = NotebookProgress(1, 1000, min_interval_s=0, clock=clock)
    clock.now += 60.0  # reading the data, building the network, importing torch parts
    bar.update(1, 1)  # the first step ends
    first = capsys.readouterr().out.strip().splitlines()[-1]
    assert first.endswith("step 1/1000 (0 %), 1:00 elapsed"), first  # nothing timed yet
    for step in range(2, 22):  # 0.1 s a step from then on
        clock.now += 0.1
        bar.update(1, step)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    # 979 steps left at 0.1 s each; the old estimate said about 0:48:10
    assert last.endswith("step 21/1000 (2 %), 1:02 elapsed, about 1:38 left"), last


def test_no_time_left_until_steps_after_the_first_are_timed(
        capsys: pytest.CaptureFixture[str]) -> None:
    clock = Clock()
    bar = NotebookProgress(2, 25000, min_interval_s=0, clock=clock)
    clock.now += 3.0
    bar.update(1, 1)
    clock.now += 0.01
    bar.update(1, 2)  # one step timed, in a hundredth of a second: too little to go on
    assert "left" not in capsys.readouterr().out
    # a view given no estimate shows none (it guessed 20:49:57 from the elapsed time)
    assert "left" not in repr(ProgressView(1, 25000, 1, 2, 3.0))
    assert repr(ProgressView(1, 25000, 1, 2, 3.0, remaining_s=61.0)).endswith(
        "0:03 elapsed, about 1:01 left")
