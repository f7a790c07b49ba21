"""The alignment checks on their own: coverage (with the fix in the message) and run pairing."""
import logging

import numpy as np
import pytest

from neuroenc.align.checks import check_coverage, check_response, match_runs
from neuroenc.responses import Response


def _grid(n=100, start=20.0, tr=2.0):
    return Response(np.random.default_rng(0).standard_normal((n, 2)), tr=tr, start=start, run="s1")


def test_covered_words_pass():
    resp = _grid()  # 20–220 s
    covered = check_coverage(np.array([20.0, 100.0, 219.9]), resp)
    assert covered.all()
    # a delay of 4 TRs lets words up to 8 s before the start reach row 0
    assert check_coverage(np.array([12.5, 50.0]), resp, reach_before=8.0).all()


def test_words_before_the_grid_suggest_a_start():
    resp = _grid(start=30.0)  # 30–230 s, words from 21 s
    times = np.linspace(21.0, 200.0, 50)
    with pytest.raises(ValueError, match=r"run 's1': 1 of 50 words \(21.000–21.000 s\) fall before "
                                         r"the response grid can see them \(30–230 s: 100 TRs of 2 s "
                                         r"from start=30; rows reach back to 22 s\); the grid starts "
                                         r"1.000 s too late.*start=28\b"):
        check_coverage(times, resp, reach_before=8.0)


def test_a_grid_too_short_for_the_story_says_so():
    resp = _grid(n=50, start=0.0)  # 0–100 s but the words span 150 s
    times = np.linspace(1.0, 151.0, 40)
    with pytest.raises(ValueError, match=r"The words span 150.000 s but the grid only 100.000 s: "
                                         r"check the TR/sfreq \(2 s per row\)"):
        check_coverage(times, resp)


def test_warn_and_ignore_return_the_mask(caplog):
    resp = _grid(n=10, start=0.0)  # 0–20 s
    times = np.array([1.0, 5.0, 25.0])
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        covered = check_coverage(times, resp, on_uncovered="warn")
    np.testing.assert_array_equal(covered, [True, True, False])
    assert "1 of 3 words" in caplog.text and "influence no row" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        covered = check_coverage(times, resp, on_uncovered="ignore")
    assert caplog.text == "" and covered.sum() == 2
    with pytest.raises(ValueError, match="Invalid value for 'on_uncovered'"):
        check_coverage(times, resp, on_uncovered="drop")


def test_match_runs():
    a = {"x": 1, "y": 2}
    assert match_runs(a, {"y": 0, "x": 0}) == ["x", "y"]
    assert match_runs(a, {"y": 0, "x": 0}, runs=["y"]) == ["y"]
    with pytest.raises(ValueError, match=r"features only: \['x'\]; responses only: \[\]"):
        match_runs(a, {"y": 0})
    with pytest.raises(ValueError, match="'runs' has duplicates"):
        match_runs(a, a, runs=["x", "x"])
    with pytest.raises(ValueError, match="no runs"):
        match_runs({}, {})


def test_check_response():
    resp = _grid(n=10)
    check_response(resp)
    with pytest.raises(ValueError, match=r"has 1 row\(s\) left; it needs at least 2"):
        check_response(resp, slice(0, 1))
