"""Z-scoring with stored statistics: training statistics are applied to test data."""
import numpy as np
import pytest

from neuroenc.align import zscore
from neuroenc.align.zscore import ZScore, ZStats, zscore_stats


def test_zscore_uses_train_statistics_on_test(rng):
    train = rng.normal(5.0, 2.0, size=(200, 3))
    test = rng.normal(-1.0, 0.5, size=(50, 3))  # other mean and scale: own stats would differ
    z = ZScore().fit(train)
    np.testing.assert_allclose(z.mean_, train.mean(0))
    np.testing.assert_allclose(z.scale_, train.std(0))
    out = z.transform(test)
    np.testing.assert_allclose(out, (test - train.mean(0)) / train.std(0))
    # far from its own z-score: the test mean maps to about (−1 − 5) / 2 = −3
    np.testing.assert_allclose(out.mean(0), (test.mean(0) - train.mean(0)) / train.std(0))
    assert np.all(out.mean(0) < -2.5)
    np.testing.assert_allclose(z.inverse_transform(out), test)
    # the function and the stats object do the same
    Z, st = zscore(train)
    np.testing.assert_allclose(Z.mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Z.std(0), 1.0)
    np.testing.assert_allclose(zscore(test, st)[0], out)
    np.testing.assert_allclose(st.apply(test), out)


def test_zscore_options_and_dtype(rng):
    X = rng.normal(3.0, 2.0, size=(30, 2)).astype(np.float32)
    centred = ZScore(with_std=False).fit_transform(X)
    np.testing.assert_allclose(centred, X - X.mean(0), rtol=1e-5)
    scaled = ZScore(with_mean=False).fit(X).transform(X)
    np.testing.assert_allclose(scaled, X / X.std(0), rtol=1e-5)
    assert scaled.dtype == np.float32


def test_constant_columns_are_centred_and_reported(rng, caplog):
    X = np.column_stack([rng.standard_normal(20), np.full(20, 7.0), rng.standard_normal(20)])
    st = zscore_stats(X)
    np.testing.assert_array_equal(st.constant, [1])
    assert st.std[1] == 1.0 and st.n == 20
    np.testing.assert_array_equal(st.apply(X)[:, 1], 0.0)
    with caplog.at_level("WARNING", logger="neuroenc"):
        z = ZScore().fit(X)
    np.testing.assert_array_equal(z.constant_, [1])
    assert "1 constant column(s) [1]" in caplog.text
    d = st.to_dict()
    assert d["constant"] == [1] and d["n"] == 20 and len(d["mean"]) == 3


def test_zscore_errors():
    st = ZStats(mean=np.zeros(2), std=np.ones(2), n=3)
    with pytest.raises(ValueError, match="X has 3 columns but these z-scoring statistics have 2"):
        st.apply(np.ones((4, 3)))
    with pytest.raises(ValueError, match="from 0 rows"):
        zscore_stats(np.ones((0, 2)))
    with pytest.raises(ValueError, match="Input X contains NaN"):
        ZScore().fit(np.array([[1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(ValueError, match="'X' must be a 2-D array"):
        zscore(np.ones((2, 2, 2)))
