"""The speedrun recipe's schedules: piecewise-linear lr factor, whitening-bias decay, lookahead."""

from __future__ import annotations

from itertools import pairwise

import pytest

from dlbox.training.speedrun import (
    lookahead_decay,
    piecewise_linear,
    trapezoid_factor,
    whiten_bias_factor,
)


def test_piecewise_linear_interpolates_and_is_flat_beyond_the_ends() -> None:
    points = [(0.0, 0.0), (10.0, 1.0), (20.0, 0.5)]
    assert piecewise_linear(-5, points) == 0.0
    assert piecewise_linear(5, points) == pytest.approx(0.5)
    assert piecewise_linear(15, points) == pytest.approx(0.75)
    assert piecewise_linear(25, points) == 0.5
    assert piecewise_linear(3, [(3.0, 2.0), (3.0, 4.0)]) == 2.0
    with pytest.raises(ValueError):
        piecewise_linear(0, [])


def test_default_trapezoid_is_a_linear_decay_from_one_to_zero() -> None:
    total = 100
    values = [trapezoid_factor(step, total) for step in range(total + 1)]
    assert values[0] == 1.0 and values[-1] == 0.0
    assert values[50] == pytest.approx(0.5)
    assert all(a >= b for a, b in pairwise(values))


def test_trapezoid_with_warmup_peaks_at_the_fraction() -> None:
    total = 100
    f = [trapezoid_factor(s, total, start=0.2, peak=0.25, end=0.07) for s in range(total + 1)]
    assert f[0] == pytest.approx(0.2) and f[25] == pytest.approx(1.0)
    assert f[-1] == pytest.approx(0.07) and max(f) == pytest.approx(1.0)
    assert all(a <= b for a, b in pairwise(f[:26]))  # rising to the peak
    assert trapezoid_factor(0, 0) == 1.0


def test_constant_schedule() -> None:
    assert {trapezoid_factor(s, 10, start=1.0, peak=0.0, end=1.0) for s in range(11)} == {1.0}


def test_whitening_bias_trains_only_for_its_steps() -> None:
    assert whiten_bias_factor(0, 30) == 1.0
    assert whiten_bias_factor(15, 30) == pytest.approx(0.5)
    assert whiten_bias_factor(30, 30) == 0.0 and whiten_bias_factor(40, 30) == 0.0
    assert whiten_bias_factor(0, 0) == 0.0


def test_lookahead_keeps_more_of_the_average_toward_the_end() -> None:
    early, late = (lookahead_decay(s, 100, 0.95, 5, 3.0) for s in (10, 100))
    assert 0 <= early < late <= 0.95 ** 5 + 1e-12
