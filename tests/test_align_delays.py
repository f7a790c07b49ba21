"""FIR delays, lags and HRF convolution: hand-built known answers, run boundaries, sklearn API."""
import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from neuroenc.align import make_delayed
from neuroenc.align.delays import Delayer, reshape_by_delays, run_bounds
from neuroenc.align.hrf import HRFConvolver, convolve_hrf, hrf_kernel
from neuroenc.align.zscore import ZScore


def _hand_delayed(X, delays, lengths):
    """Shift each run's rows by hand, one row at a time."""
    n, nf = X.shape
    out = np.zeros((n, nf * len(delays)))
    start = 0
    for length in lengths:
        for t in range(start, start + length):
            for k, d in enumerate(delays):
                src = t - d
                if start <= src < start + length:
                    out[t, k * nf:(k + 1) * nf] = X[src]
        start += length
    return out


def test_make_delayed_equals_hand_built(rng):
    X = rng.standard_normal((12, 3))
    out = make_delayed(X, delays=(1, 2, 3, 4))
    np.testing.assert_array_equal(out, _hand_delayed(X, (1, 2, 3, 4), [12]))
    # explicitly: block 2 (delay 3) is X shifted down by 3 with 3 zero rows on top
    np.testing.assert_array_equal(out[:3, 6:9], 0.0)
    np.testing.assert_array_equal(out[3:, 6:9], X[:-3])


def test_make_delayed_never_crosses_runs_and_never_wraps(rng):
    X = rng.standard_normal((15, 2))
    delays = (-2, 0, 1, 3)
    out = make_delayed(X, delays, run_lengths=[6, 2, 7])
    np.testing.assert_array_equal(out, _hand_delayed(X, delays, [6, 2, 7]))
    groups = np.repeat(["a", "b", "c"], [6, 2, 7])
    np.testing.assert_array_equal(make_delayed(X, delays, groups=groups), out)
    # row 6 starts run b: delay 1 must be zero (not the last row of run a)
    np.testing.assert_array_equal(out[6, 4:6], 0.0)
    # the last row of run a looks 2 ahead: zero (run b is another run)
    np.testing.assert_array_equal(out[5, 0:2], 0.0)
    # run b has 2 rows: delay 3 never fits
    np.testing.assert_array_equal(out[6:8, 6:8], 0.0)


def test_run_bounds():
    np.testing.assert_array_equal(run_bounds(5), [0, 5])
    np.testing.assert_array_equal(run_bounds(5, run_lengths=[2, 3]), [0, 2, 5])
    np.testing.assert_array_equal(run_bounds(5, groups=["x", "x", "y", "y", "y"]), [0, 2, 5])


def test_run_bounds_errors():
    with pytest.raises(ValueError, match="'run_lengths' sum to 4 but X has 5 rows.*groups="):
        run_bounds(5, run_lengths=[2, 2])
    with pytest.raises(ValueError, match=r"run\(s\) \['a'\] appear in several separate blocks"):
        run_bounds(4, groups=["a", "b", "a", "a"])
    with pytest.raises(ValueError, match="one run label per row: X has 4 rows"):
        run_bounds(4, groups=["a", "b"])
    with pytest.raises(ValueError, match="either 'run_lengths' or 'groups'"):
        run_bounds(4, run_lengths=[4], groups=["a"] * 4)
    with pytest.raises(ValueError, match="non-empty sequence of integers"):
        run_bounds(4, run_lengths=[1.5, 2.5])
    with pytest.raises(ValueError, match="must be >= 0"):
        run_bounds(4, run_lengths=[5, -1])


def test_delay_validation():
    X = np.ones((4, 1))
    with pytest.raises(ValueError, match="'delays' has duplicates"):
        make_delayed(X, (1, 1))
    with pytest.raises(ValueError, match="at least one delay"):
        make_delayed(X, ())
    with pytest.raises(TypeError, match="must be integers.*lag_samples"):
        make_delayed(X, (0.5,))
    with pytest.raises(TypeError, match="sequence of integers"):
        make_delayed(X, None)
    np.testing.assert_array_equal(make_delayed(X, 2), make_delayed(X, (2.0,)))


def test_reshape_by_delays(rng):
    coef = rng.standard_normal((4 * 3, 5))
    r = reshape_by_delays(coef, 4, axis=0)
    assert r.shape == (4, 3, 5)
    np.testing.assert_array_equal(r[2], coef[6:9])
    with pytest.raises(ValueError, match="not a multiple of n_delays=5"):
        reshape_by_delays(coef, 5)


# ---------------------------------------------------------------------- the transformer
def _time_order_matters(estimator):
    if isinstance(estimator, (Delayer, HRFConvolver)):
        reason = "rows are time points: their order and neighbours matter"
        return {"check_methods_sample_order_invariance": reason,
                "check_methods_subset_invariance": reason}
    return {}


@parametrize_with_checks([Delayer(), ZScore(), HRFConvolver()],
                         expected_failed_checks=_time_order_matters)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_delayer_matches_make_delayed_and_names(rng):
    X = rng.standard_normal((10, 2))
    d = Delayer(delays=(0, 2), run_lengths=[4, 6]).fit(X)
    np.testing.assert_array_equal(d.transform(X), make_delayed(X, (0, 2), run_lengths=[4, 6]))
    groups = np.repeat(["u", "v"], [5, 5])
    np.testing.assert_array_equal(d.transform(X, groups=groups), _hand_delayed(X, (0, 2), [5, 5]))
    assert list(d.get_feature_names_out()) == ["x0_delay0", "x1_delay0", "x0_delay2", "x1_delay2"]
    assert d.reshape_by_delays(d.transform(X), axis=1).shape == (10, 2, 2)
    c = clone(d)
    assert c.delays == (0, 2) and c.run_lengths == [4, 6]


def test_delayer_errors(rng):
    X = rng.standard_normal((10, 2))
    d = Delayer(run_lengths=[5, 5]).fit(X)
    with pytest.raises(ValueError, match="'run_lengths' sum to 10 but X has 6 rows"):
        d.transform(X[:6])
    with pytest.raises(ValueError, match="X has 3 features, but Delayer is expecting 2"):
        d.transform(np.ones((10, 3)))
    with pytest.raises(ValueError, match="Input X contains NaN"):
        Delayer().fit(np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="'delays' has duplicates"):
        Delayer(delays=(1, 1)).fit(X)


def test_delayer_in_pipeline_with_routed_groups(rng):
    """Leave-one-run-out: the training part (runs a, c) is delayed without crossing a→c."""
    X = rng.standard_normal((30, 2))
    y = rng.standard_normal(30)
    groups = np.repeat(["a", "b", "c"], 10)
    train = groups != "b"
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(ZScore(), Delayer(delays=(1, 2)).set_transform_request(groups=True),
                             Ridge(alpha=1.0))
        pipe.fit(X[train], y[train], groups=groups[train])
        pred = pipe.predict(X[~train], groups=groups[~train])
    Z = ZScore().fit(X[train])
    Xd = make_delayed(Z.transform(X[train]), (1, 2), run_lengths=[10, 10])
    ref = Ridge(alpha=1.0).fit(Xd, y[train])
    np.testing.assert_allclose(pipe[-1].coef_, ref.coef_, atol=1e-12)
    Xt = make_delayed(Z.transform(X[~train]), (1, 2))
    np.testing.assert_allclose(pred, ref.predict(Xt), atol=1e-12)


# ---------------------------------------------------------------------- HRF
def test_hrf_kernel_matches_nilearn():
    from nilearn.glm.first_level import glover_hrf

    k = hrf_kernel(2.0, "glover")
    assert k.size == 16 and k.sum() == pytest.approx(1.0)
    # the Glover peak (~5 s) falls between the samples at 4 s and 6 s; undershoot from 10 s
    assert set(np.argsort(k)[-2:]) == {2, 3}
    assert np.all(k[5:12] < 0)
    fine = glover_hrf(2.0, oversampling=50, time_length=32.0)
    fine_t = np.linspace(0, 32, fine.size)  # nilearn's own time stamps
    for i in range(16):
        j = int(np.argmin(np.abs(fine_t - 2.0 * i)))
        assert k[i] / k.max() == pytest.approx(fine[j] / np.interp(6.0, fine_t, fine), abs=0.01)
    assert hrf_kernel(2.0, "spm").size == 16
    assert hrf_kernel(1.5, "glover", time_length=30.0).size == 20
    with pytest.raises(ValueError, match="Invalid value for 'hrf'.*'glover', 'spm'.*got 'gamma'"):
        hrf_kernel(2.0, "gamma")
    with pytest.raises(ValueError, match="'time_length' \\(1.0 s\\) must be at least one TR"):
        hrf_kernel(2.0, time_length=1.0)


def test_convolve_hrf_is_causal_per_run():
    X = np.zeros((40, 1))
    X[10] = 1.0
    X[25] = 2.0
    k = hrf_kernel(2.0)
    out = convolve_hrf(X, 2.0, run_lengths=[20, 20])[:, 0]
    expected = np.zeros(40)
    expected[10:20] += k[:10]
    expected[25:40] += 2 * k[:15]
    np.testing.assert_allclose(out, expected, atol=1e-15)
    # as one run, the first impulse's tail runs on into rows 20-25
    whole = convolve_hrf(X, 2.0)[:, 0]
    assert whole[20] == pytest.approx(k[10]) and out[20] == 0.0
    h = HRFConvolver(tr=2.0, run_lengths=[20, 20]).fit(X)
    np.testing.assert_allclose(h.transform(X)[:, 0], expected, atol=1e-15)
    np.testing.assert_allclose(h.kernel_, k)
    groups = np.repeat(["a", "b"], 20)
    np.testing.assert_allclose(HRFConvolver().fit_transform(X, groups=groups)[:, 0], expected,
                               atol=1e-15)
