"""Resampling word-level values to a TR grid: the published Lanczos formula, known answers for
every method, the vectorised path, and bad inputs."""
import numpy as np
import pytest
import scipy.sparse as sp

from neuroenc.align import resample
from neuroenc.align.resample import filter_matrix, grid_cutoff, lanczos_kernel


# ---------------------------------------------------------------------- the published reference
def _huth_lanczosfun(cutoff, t, window=3):
    """Huth et al.'s ``lanczosfun`` (ridge_utils/interpdata.py), verbatim but for errstate."""
    t = t * cutoff
    with np.errstate(divide="ignore", invalid="ignore"):
        val = window * np.sin(np.pi * t) * np.sin(np.pi * t / window) / (np.pi**2 * t**2)
    val[t == 0] = 1.0
    val[np.abs(t) > window] = 0.0
    return val


def _huth_lanczosinterp2D(data, oldtime, newtime, window=3, cutoff_mult=1.0):
    """Huth et al.'s ``lanczosinterp2D``: a dense sinc matrix, unnormalised rows."""
    cutoff = 1 / np.mean(np.diff(newtime)) * cutoff_mult
    sincmat = np.zeros((len(newtime), len(oldtime)))
    for ndi in range(len(newtime)):
        sincmat[ndi, :] = _huth_lanczosfun(cutoff, newtime[ndi] - oldtime, window)
    return np.dot(sincmat, data)


def _word_times(rng, n=400, lo=0.2, hi=0.5, t0=3.0):
    return t0 + np.cumsum(rng.uniform(lo, hi, n))


@pytest.mark.parametrize("window, cutoff_mult", [(3, 1.0), (2, 0.5), (5, 1.7)])
def test_lanczos_equals_published_formula(rng, window, cutoff_mult):
    old = np.sort(rng.uniform(0, 120, 300))
    old[10] = old[11]  # two words at the same time
    new = np.arange(0, 130, 2.0)
    # some word exactly on a grid point and exactly at the window edge (|c·t| = window)
    old[50] = new[20]
    old[60] = new[30] + window * 2.0 / cutoff_mult
    old.sort()
    values = rng.standard_normal((old.size, 7))
    expected = _huth_lanczosinterp2D(values, old, new, window=window, cutoff_mult=cutoff_mult)
    got = resample(values, old, new, window=window, cutoff_mult=cutoff_mult)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    # the matrix itself, entry by entry, in any order of the old times
    perm = rng.permutation(old.size)
    dense = filter_matrix(old[perm], new, window=window, cutoff_mult=cutoff_mult).toarray()
    ref = np.stack([_huth_lanczosfun(1 / 2.0 * cutoff_mult, t - old[perm], window) for t in new])
    np.testing.assert_allclose(dense, ref, rtol=0, atol=1e-10)


def test_lanczos_kernel_values():
    t = np.array([0.0, 1.0, 2.0, 3.0, 6.0, 6.5, -1.0, 0.5])
    k = lanczos_kernel(t, cutoff=0.5, window=3)
    # 1 at 0, zero crossings at multiples of the period, zero beyond the window
    np.testing.assert_allclose(k[[0, 2, 4, 5]], [1.0, 0.0, 0.0, 0.0], atol=1e-15)
    assert k[1] == pytest.approx(np.sinc(0.5) * np.sinc(0.5 / 3))
    assert k[6] == k[1]  # symmetric


def test_lanczos_recovers_sine_at_irregular_word_times(rng):
    """A 0.03 Hz sine (well below the 0.25 Hz Nyquist of a 2 s TR) sampled at jittered word
    times (0.2–0.5 s apart) comes back on the TR grid."""
    times = _word_times(rng, n=1800)
    grid = np.arange(10.0, times[-1] - 10.0, 2.0)

    def sine(t):
        return np.sin(2 * np.pi * 0.03 * t + 0.4)

    out = resample(sine(times)[:, None], times, grid)[:, 0]
    assert np.corrcoef(out, sine(grid))[0, 1] > 0.99
    # the unnormalised sum scales with the words per TR (about 2 / 0.35)
    assert np.std(out) / np.std(sine(grid)) == pytest.approx(2.0 / 0.35, rel=0.1)


def test_normalized_recovers_sine_at_speech_like_times(rng):
    """Speech-like gaps (gamma intervals, CV ≈ 0.9): the weighted mean recovers the sine, the
    published weighted sum carries the word-rate fluctuations as well."""
    times = 5.0 + np.cumsum(rng.gamma(1.2, 0.3, 2500))
    grid = np.arange(10.0, times[-1] - 10.0, 2.0)

    def sine(t):
        return np.sin(2 * np.pi * 0.02 * t)

    mean = resample(sine(times)[:, None], times, grid, normalize=True)[:, 0]
    total = resample(sine(times)[:, None], times, grid)[:, 0]
    r_mean = np.corrcoef(mean, sine(grid))[0, 1]
    r_sum = np.corrcoef(total, sine(grid))[0, 1]
    assert r_mean > 0.99
    assert r_sum < r_mean
    # a constant is recovered exactly where there are words
    ones = resample(np.ones((times.size, 1)), times, grid, normalize=True)[:, 0]
    np.testing.assert_allclose(ones, 1.0, atol=1e-12)


@pytest.mark.parametrize("method", ["lanczos", "sinc"])
def test_ones_become_words_per_tr(rng, method):
    """With regular words (4 per TR), a feature of ones becomes 4 in the middle of the run."""
    times = np.arange(0.25, 200, 0.5)
    grid = np.arange(0, 200, 2.0)
    out = resample(np.ones((times.size, 1)), times, grid, method=method)[:, 0]
    np.testing.assert_allclose(out[10:-10], 4.0, rtol=0.02)


def test_rect_counts_and_sums_per_tr():
    times = np.array([0.3, 1.1, 1.9, 2.6, 2.9, 6.9, 7.0])
    grid = np.array([0.0, 2.0, 4.0, 6.0])  # bins [-1, 1), [1, 3), [3, 5), [5, 7)
    values = np.array([1, 2, 3, 4, 5, 6, 7], dtype=float)[:, None]
    out = resample(values, times, grid, method="rect")[:, 0]
    np.testing.assert_array_equal(out, [1.0, 2 + 3 + 4 + 5, 0.0, 6.0])
    mean = resample(values, times, grid, method="rect", normalize=True)[:, 0]
    np.testing.assert_allclose(mean, [1.0, 3.5, 0.0, 6.0])


def test_nearest_takes_the_closest_word_within_half_a_tr():
    times = np.array([0.3, 1.6, 2.2, 7.5])
    grid = np.array([0.0, 2.0, 4.0, 6.0, 8.0])
    values = np.array([10.0, 20.0, 30.0, 40.0])[:, None]
    out = resample(values, times, grid, method="nearest")[:, 0]
    # 2.0: 2.2 (0.2 away) beats 1.6 (0.4 away); 4.0 and 6.0: no word within 1 s → 0
    np.testing.assert_array_equal(out, [10.0, 30.0, 0.0, 0.0, 40.0])


def test_resample_stack_of_layers_in_one_call(rng):
    times = _word_times(rng, n=200)
    grid = np.arange(0, 80, 2.0)
    stack = rng.standard_normal((3, times.size, 5))  # layers × words × features
    out = resample(stack, times, grid, axis=1)
    assert out.shape == (3, grid.size, 5)
    for i in range(3):
        np.testing.assert_allclose(out[i], resample(stack[i], times, grid), atol=1e-12)
    out32 = resample(stack[0].astype(np.float32), times, grid)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out[0], atol=1e-4)
    one_d = resample(stack[0, :, 0], times, grid)
    np.testing.assert_allclose(one_d, out[0, :, 0], atol=1e-12)


def test_filter_matrix_is_sparse_and_banded(rng):
    times = _word_times(rng, n=1000)
    grid = np.arange(0, times[-1], 2.0)
    m = filter_matrix(times, grid)
    assert sp.issparse(m) and m.shape == (grid.size, times.size)
    # only words within 3 TRs (6 s) of each grid point: ~12 s × 2.9 words/s per row
    assert m.nnz < grid.size * 45
    rows, cols = m.nonzero()
    assert np.all(np.abs(grid[rows] - times[cols]) <= 6.0 + 1e-9)


def test_grid_cutoff():
    assert grid_cutoff(np.arange(0, 20, 2.0)) == pytest.approx(0.5)
    assert grid_cutoff(np.arange(0, 20, 2.0), cutoff_mult=0.5) == pytest.approx(0.25)


# ---------------------------------------------------------------------- bad inputs
def test_resample_rejects_bad_inputs():
    times = np.array([0.5, 1.0, 1.5])
    grid = np.array([0.0, 2.0])
    values = np.ones((3, 2))
    with pytest.raises(ValueError, match="Invalid value for 'method'.*'lanczos'.*got 'cubic'"):
        resample(values, times, grid, method="cubic")
    with pytest.raises(ValueError, match="'values' has 4 rows along axis 0 but 'old_times' has 3"):
        resample(np.ones((4, 2)), times, grid)
    with pytest.raises(ValueError, match="'new_times' needs at least 2"):
        resample(values, times, np.array([0.0]))
    with pytest.raises(ValueError, match=r"'new_times' must be strictly increasing.*new_times\[1\]"):
        resample(values, times, np.array([2.0, 0.0]))
    with pytest.raises(ValueError, match="'old_times' has 1 non-finite time"):
        resample(values, np.array([0.5, np.nan, 1.5]), grid)
    with pytest.raises(ValueError, match="'new_times' must be a 1-D array"):
        resample(values, times, np.ones((2, 2)))
    with pytest.raises(ValueError, match="'window' must be > 0"):
        resample(values, times, grid, window=0)
    with pytest.raises(ValueError, match="'cutoff_mult' must be > 0"):
        resample(values, times, grid, cutoff_mult=-1.0)
    with pytest.raises(TypeError, match="'values' must be a real numeric array"):
        resample(np.array([["a"], ["b"], ["c"]]), times, grid)
    with pytest.raises(ValueError, match="at least one dimension"):
        resample(np.float64(1.0), times, grid)
    with pytest.raises(ValueError, match="'axis' 2 is out of range"):
        resample(values, times, grid, axis=2)
