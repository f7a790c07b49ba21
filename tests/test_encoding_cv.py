"""Cross-validation splitters: blocks with gaps, whole runs, inner splits inside the training part."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import cross_val_score

from neuroenc.encoding import make_cv
from neuroenc.encoding.cv import BlockedKFold, LeaveOneRunOut, RunKFold, inner_splits


def test_blocked_kfold_known_answer():
    splits = list(BlockedKFold(n_splits=3, gap=1).split(np.zeros((9, 2))))
    assert [te.tolist() for _, te in splits] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert [tr.tolist() for tr, _ in splits] == [[4, 5, 6, 7, 8], [0, 1, 7, 8], [0, 1, 2, 3, 4]]


def test_blocked_kfold_gap_and_coverage(rng):
    n, gap = 103, 4
    splits = list(BlockedKFold(n_splits=5, gap=gap).split(np.zeros((n, 1))))
    tests = np.concatenate([te for _, te in splits])
    np.testing.assert_array_equal(np.sort(tests), np.arange(n))  # every sample tested once
    for train, test in splits:
        assert np.all(np.diff(test) == 1)  # contiguous
        dist = np.abs(train[:, None] - test[None, :]).min(1)
        assert dist.min() == gap + 1  # exactly `gap` samples dropped on each side


def test_blocked_kfold_is_a_sklearn_splitter(rng):
    X = rng.standard_normal((60, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.01 * rng.standard_normal(60)
    scores = cross_val_score(Ridge(alpha=1e-3), X, y, cv=BlockedKFold(4, gap=2))
    assert scores.shape == (4,)
    assert scores.min() > 0.99


def test_leave_one_run_out_order_of_appearance():
    groups = np.array(["b"] * 3 + ["a"] * 2 + ["c"] * 4)
    splits = list(LeaveOneRunOut().split(np.zeros(9), groups=groups))
    assert [te.tolist() for _, te in splits] == [[0, 1, 2], [3, 4], [5, 6, 7, 8]]
    assert LeaveOneRunOut().get_n_splits(groups=groups) == 3


def test_run_kfold_groups_whole_runs():
    groups = np.repeat(np.arange(6), 5)
    splits = list(RunKFold(3).split(np.zeros(30), groups=groups))
    assert [np.unique(groups[te]).tolist() for _, te in splits] == [[0, 1], [2, 3], [4, 5]]


def test_make_cv_auto_picks_runs_or_blocks():
    runs = make_cv("auto", np.repeat(["r1", "r2", "r3"], 10), 30)
    assert len(runs) == 3 and [te.tolist() for _, te in runs][1] == list(range(10, 20))
    blocks = make_cv("auto", None, 40, n_blocks=4, gap=2)
    assert len(blocks) == 4
    assert blocks[1][1].tolist() == list(range(10, 20))
    assert 8 not in blocks[1][0] and 7 in blocks[1][0]
    # an int means folds of whole runs when there are runs, blocks otherwise
    assert len(make_cv(2, np.repeat([0, 1, 2, 3], 5), 20)) == 2
    assert len(make_cv(3, None, 30, gap=0)) == 3


def test_inner_splits_stay_inside_training_part():
    n = 120
    outer = make_cv("blocks", None, n, n_blocks=4, gap=3)
    for train, test in outer:
        inner = inner_splits(train, None, 3, gap=3)
        assert len(inner) == 3
        for tr, va in inner:
            assert np.isin(tr, train).all() and np.isin(va, train).all()
            assert not np.isin(tr, test).any() and not np.isin(va, test).any()
            assert np.abs(tr[:, None] - va[None, :]).min() > 3  # the gap holds inside too


def test_inner_splits_use_runs_when_training_has_several():
    groups = np.repeat(["a", "b", "c", "d"], 10)
    outer = make_cv("auto", groups, 40)
    train, test = outer[0]
    inner = inner_splits(train, groups, 5)
    assert [np.unique(groups[va]).tolist() for _, va in inner] == [["b"], ["c"], ["d"]]
    # more runs than inner folds: runs are dealt into groups
    groups = np.repeat(np.arange(8), 5)
    inner = inner_splits(np.arange(40), groups, 2)
    assert [np.unique(groups[va]).tolist() for _, va in inner] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_cv_bad_inputs():
    with pytest.raises(ValueError, match="n_samples=6 into 5 contiguous blocks"):
        make_cv("blocks", None, 6, n_blocks=5)
    with pytest.raises(ValueError, match="leaves 0 training samples"):
        make_cv("blocks", None, 12, n_blocks=2, gap=10)
    with pytest.raises(ValueError, match="groups \\(run labels\\) has shape \\(5,\\) but there are 10 samples"):
        make_cv("auto", np.zeros(5), 10)
    with pytest.raises(ValueError, match="Leave-one-run-out needs at least 2 runs, got 1 \\('alice'\\)"):
        make_cv("runs", np.repeat("alice", 20), 20)
    with pytest.raises(ValueError, match="Invalid value for 'cv'"):
        make_cv("random", None, 20)
    with pytest.raises(ValueError, match="RunKFold\\(n_splits=4\\) needs at least 4 runs, got 2"):
        make_cv(4, np.repeat([0, 1], 5), 10)
    with pytest.raises(ValueError, match="Fold 0 has samples in both"):
        make_cv([(np.arange(5), np.arange(3, 8)), (np.arange(5, 10), np.arange(5))], None, 10)
    with pytest.raises(ValueError, match="BlockedKFold needs n_splits >= 2"):
        list(BlockedKFold(1).split(np.zeros(10)))


def test_make_cv_accepts_sklearn_splitters_and_lists():
    from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

    groups = np.repeat(["a", "b", "c"], 4)
    splits = make_cv(LeaveOneGroupOut(), groups, 12)
    assert [np.unique(groups[te]).tolist() for _, te in splits] == [["a"], ["b"], ["c"]]
    assert len(make_cv(GroupKFold(n_splits=3), groups, 12)) == 3
    explicit = make_cv([(np.arange(6, 12), np.arange(6)), (np.arange(6), np.arange(6, 12))], None, 12)
    assert explicit[1][1].tolist() == list(range(6, 12))
    with pytest.raises(TypeError, match="cv must be 'auto', 'runs', 'blocks', an int"):
        make_cv(2.5, None, 12)


def test_a_misspelt_cv_string_is_refused_when_the_call_is_checked(rng):
    # a string has a .split method: it must not pass for a scikit-learn splitter
    from neuroenc.encoding import fit_encoding

    with pytest.raises(ValueError, match=r"cv must be .*kfold:K.*got 'kfol:3'"):
        fit_encoding([rng.standard_normal((60, 5))], rng.standard_normal((60, 2)), n_permutations=0, cv="kfol:3")
