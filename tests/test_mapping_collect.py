"""Loading a group of results files and the tidy tables."""
from __future__ import annotations

import numpy as np
import pytest
from _mapping_fixtures import ROIS, make_group, make_results

from neuroenc.mapping import load_results
from neuroenc.mapping.collect import fold_table, scores_table


@pytest.fixture
def results_dir(tmp_path):
    for res in make_group(3):
        res.save(tmp_path / f"{res.subject}.h5")
    (tmp_path / "notes.txt").write_text("not a results file")
    return tmp_path


def test_load_results_from_folder_glob_and_list(results_dir):
    from_dir = load_results(results_dir)
    assert [r.subject for r in from_dir] == ["s01", "s02", "s03"]
    assert from_dir[0].provenance["results_dir"] == str(results_dir.resolve())
    from_glob = load_results(str(results_dir / "s0[12].h5"))
    assert [r.subject for r in from_glob] == ["s01", "s02"]
    mixed = load_results([results_dir / "s03.h5", make_results("s09")])
    assert [r.subject for r in mixed] == ["s03", "s09"]
    np.testing.assert_array_equal(from_dir[1].r, make_group(3)[1].r)


def test_load_results_errors(tmp_path, results_dir):
    with pytest.raises(FileNotFoundError, match="results file not found: '.*missing.h5'"):
        load_results(tmp_path / "missing.h5")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no results files \(\*.h5\) in folder"):
        load_results(empty)
    with pytest.raises(FileNotFoundError, match="no results files match the pattern"):
        load_results(str(tmp_path / "zz*.h5"))
    with pytest.raises(ValueError, match="no results given"):
        load_results([])
    with pytest.raises(TypeError, match="results must be paths or EncodingResults, got int"):
        load_results([3])


def test_group_checks():
    with pytest.raises(ValueError, match=r"several results for subject\(s\) \['s01'\]"):
        load_results([make_results("s01"), make_results("s01", seed=2)])
    with pytest.raises(ValueError, match="results of several models.*one report per model"):
        load_results([make_results("s01"), make_results("s02", model="other")])
    with pytest.raises(ValueError, match="have targets .* the group needs the same targets"):
        load_results([make_results("s01"), make_results("s02", targets=ROIS[::-1])])
    with pytest.raises(ValueError, match="have layers .* fit every subject on the same layers"):
        load_results([make_results("s01"), make_results("s02", n_layers=5, peaks={t: 1 for t in ROIS})])


def test_scores_table_is_the_results_frames():
    results = make_group(2)
    table = scores_table(results)
    assert len(table) == 2 * 9 * len(ROIS)
    sub = table[table["subject"] == "s02"].reset_index(drop=True)
    np.testing.assert_array_equal(sub["r"], results[1].r.ravel())
    np.testing.assert_array_equal(sub["p"], results[1].pvalues.ravel())
    np.testing.assert_array_equal(sub["baseline_r"], np.tile(results[1].baseline["r"], 9))
    # subjects without a name are numbered
    anon = [make_results(None), make_results(None, seed=1)]
    assert list(scores_table(anon)["subject"].unique()) == ["1", "2"]


def test_fold_table():
    res = make_results(n_folds=3)
    folds = fold_table(res)
    assert len(folds) == 3 * 9 * len(ROIS)
    row = folds[(folds["fold"] == 2) & (folds["layer"] == 4) & (folds["target"] == "LIPL")]
    assert row["r"].item() == res.fold_r[2, 4, ROIS.index("LIPL")]
