"""MEG/EEG designs: word impulses on the sample grid, lags in seconds, a known kernel recovered
by ridge, mne objects as input, resampling with mne, and bad inputs."""
import mne
import numpy as np
import pytest
from sklearn.linear_model import Ridge

from neuroenc.align import make_meg_design, word_rate
from neuroenc.align.events import event_matrix, lag_samples, resample_response
from neuroenc.features import FeatureSet
from neuroenc.responses import Response
from neuroenc.stimuli import Transcript

SFREQ = 100.0


def _kernels(n_lags=51):
    """Three known temporal response functions over 0–0.5 s."""
    t = np.arange(n_lags) / SFREQ
    return np.stack([
        np.exp(-((t - 0.1) / 0.03) ** 2),                       # early positive peak
        -np.exp(-((t - 0.25) / 0.05) ** 2),                     # later negative peak
        np.sin(2 * np.pi * 4 * t) * np.exp(-t / 0.15),           # damped oscillation
    ], axis=1)


def _simulate(rng, duration=240.0, noise=1.0, n_channels=2):
    onsets = 0.5 + np.cumsum(rng.uniform(0.2, 0.6, int(duration / 0.3)))
    onsets = onsets[onsets < duration - 1.0]
    feats = rng.standard_normal((onsets.size, 3))
    n = int(duration * SFREQ)
    impulses = np.zeros((n, 3))
    np.add.at(impulses, np.rint(onsets * SFREQ).astype(int), feats)  # hand-built impulses
    kernels = _kernels()
    clean = sum(np.convolve(impulses[:, d], kernels[:, d])[:n] for d in range(3))
    data = clean[:, None] * np.arange(1, n_channels + 1) + noise * rng.standard_normal((n, n_channels))
    fs = FeatureSet({0: feats}, onsets, onsets + 0.25, run="story", model="sim")
    resp = Response(data, sfreq=SFREQ, start=0.0, names=[f"MEG{i}" for i in range(n_channels)],
                    run="story")
    return fs, resp, kernels


def test_ridge_on_lagged_design_recovers_the_kernel(rng):
    fs, resp, kernels = _simulate(rng)
    design = make_meg_design(fs, resp, tmin=-0.1, tmax=0.6, dtype=np.float64)
    np.testing.assert_allclose(design.lags, np.arange(-10, 61) / SFREQ)
    assert design.delays[0] == -10 and design.n_delays == 71
    X = design.X(0)
    assert X.shape == (24000, 71 * 3)
    coef = Ridge(alpha=10.0, fit_intercept=False).fit(X, design.Y).coef_.T  # (213, 2)
    trf = design.reshape_by_delays(coef, axis=0)  # (71 lags, 3 features, 2 channels)
    truth = np.zeros((71, 3))
    truth[10:61] = kernels  # lags −0.1…−0.01 s are 0: nothing precedes the word
    for ch in range(2):
        assert np.corrcoef(trf[:, :, ch].ravel(), truth.ravel())[0, 1] > 0.9
        for d in range(3):
            assert np.corrcoef(trf[:, d, ch], truth[:, d])[0, 1] > 0.9
    # features were z-scored over words, before becoming impulses (silent samples stay 0)
    st = design.feature_stats(0)["story"]
    np.testing.assert_allclose(st.mean, fs[0].mean(0))
    assert np.count_nonzero(X[:, 10 * 3]) == fs.n_words  # lag 0 block: one sample per word


def test_raw_array_input_gives_the_same_design(rng):
    fs, resp, _ = _simulate(rng, duration=30.0)
    info = mne.create_info(resp.names, SFREQ, ch_types="mag")
    raw = mne.io.RawArray(resp.data.T, info, verbose=False)
    from_raw = Response.from_mne(raw, run="story")
    assert from_raw.sfreq == SFREQ and from_raw.start == 0.0 and from_raw.names == resp.names
    ref = make_meg_design(fs, resp, dtype=np.float64)
    for responses in (from_raw, {"story": raw}):
        design = make_meg_design(fs, responses, dtype=np.float64)
        np.testing.assert_allclose(design.X(0), ref.X(0))
        np.testing.assert_allclose(design.Y, ref.Y)
    with pytest.raises(TypeError, match="an mne object has no run name"):
        make_meg_design(fs, raw)


def test_resample_response_with_mne(rng):
    n = 20000  # 20 s at 1 kHz
    t = np.arange(n) / 1000.0
    data = np.column_stack([np.sin(2 * np.pi * 2 * t), np.cos(2 * np.pi * 3 * t)])
    noisy = data + 0.5 * np.sin(2 * np.pi * 200 * t)[:, None]  # above the new Nyquist
    resp = Response(noisy, sfreq=1000.0, start=1.5, run="r")
    down = resample_response(resp, 100.0)
    assert down.sfreq == 100.0 and down.start == 1.5 and down.n_samples == 2000
    new_t = np.arange(2000) / 100.0
    core = slice(100, -100)
    np.testing.assert_allclose(down.data[core, 0], np.sin(2 * np.pi * 2 * new_t)[core], atol=0.02)
    np.testing.assert_allclose(down.data[core, 1], np.cos(2 * np.pi * 3 * new_t)[core], atol=0.02)
    poly = resample_response(resp, 100.0, method="polyphase")
    np.testing.assert_allclose(poly.data[core], down.data[core], atol=0.05)
    # inside a design: the responses are resampled, lags are counted at the new rate
    onsets = np.arange(2.0, 20.0, 0.4)
    fs = FeatureSet({0: rng.standard_normal((onsets.size, 2))}, onsets, run="r")
    design = make_meg_design(fs, resp, sfreq=100.0, tmin=0.0, tmax=0.2)
    assert design.n_samples == 2000 and design.n_delays == 21 and design.settings["resampled"]
    decimated = make_meg_design(fs, resp, decim=10, tmin=0.0, tmax=0.2)
    np.testing.assert_allclose(decimated.Y, design.Y)
    with pytest.raises(ValueError, match="either 'sfreq' or 'decim'"):
        make_meg_design(fs, resp, sfreq=100.0, decim=10)
    with pytest.raises(ValueError, match=r"decim must be an int >= 1; got 0 \(int\)"):
        make_meg_design(fs, resp, decim=0)
    with pytest.raises(ValueError, match="needs an integer ratio between 1000.0 Hz and 300.0 Hz"):
        resample_response(resp, 300.0, method="polyphase")
    with pytest.raises(ValueError, match="needs an sfreq-grid .* run 'f' has TR 2.0 s"):
        resample_response(Response(np.arange(5.0), tr=2.0, run="f"), 1.0)


def test_event_matrix_impulses_and_boxcars():
    onsets = np.array([0.104, 0.5, 0.5, 2.0])
    offsets = np.array([0.2, 0.52, 0.5, 2.5])
    imp = event_matrix(onsets, 10, SFREQ * 0 + 10.0, start=0.0).toarray()  # 10 Hz grid
    expected = np.zeros((10, 4))
    expected[1, 0] = expected[5, 1] = expected[5, 2] = 1.0  # the last word is off the 1 s grid
    np.testing.assert_array_equal(imp, expected)
    box = event_matrix(onsets, 30, 10.0, offsets=offsets, kind="boxcar").toarray()
    np.testing.assert_array_equal(np.flatnonzero(box[:, 0]), [1])  # [0.104, 0.2): sample 1 only
    np.testing.assert_array_equal(np.flatnonzero(box[:, 1]), [5])
    np.testing.assert_array_equal(np.flatnonzero(box[:, 2]), [5])  # zero duration: one sample
    np.testing.assert_array_equal(np.flatnonzero(box[:, 3]), [20, 21, 22, 23, 24])
    with pytest.raises(ValueError, match="kind='boxcar' needs word offsets"):
        event_matrix(onsets, 10, 10.0, kind="boxcar")
    with pytest.raises(ValueError, match="4 onsets but 2 offsets"):
        event_matrix(onsets, 10, 10.0, offsets=offsets[:2], kind="boxcar")
    with pytest.raises(ValueError, match="Invalid value for 'kind'.*got 'gauss'"):
        event_matrix(onsets, 10, 10.0, kind="gauss")


def test_boxcar_design_and_word_rate(rng):
    onsets = np.array([1.0, 2.0, 3.5])
    fs = FeatureSet({0: np.array([[1.0], [2.0], [3.0]])}, onsets, onsets + 0.05, run="r")
    resp = Response(rng.standard_normal((500, 1)), sfreq=SFREQ, run="r")
    design = make_meg_design(fs, resp, tmin=0.0, tmax=0.0, kind="boxcar", zscore=False)
    x = design.X(0)[:, 0]
    np.testing.assert_array_equal(np.flatnonzero(x), [100, 101, 102, 103, 104, 200, 201, 202, 203,
                                                      204, 350, 351, 352, 353, 354])
    np.testing.assert_array_equal(x[[100, 200, 350]], [1.0, 2.0, 3.0])
    t = Transcript(["a", "b", "c"], onsets, onsets + 0.05, name="r")
    wr = word_rate(t, resp)
    assert wr.sfreq == SFREQ and wr.names == ["word_rate"]
    np.testing.assert_array_equal(np.flatnonzero(wr.data[:, 0]), [100, 200, 350])
    band = design.nuisance({"r": FeatureSet({0: np.ones((3, 1))}, onsets, onsets + 0.05, run="r")})
    np.testing.assert_array_equal(np.flatnonzero(band[:, 0]), np.flatnonzero(x))
    with pytest.raises(ValueError, match="'hrf' is for fMRI responses"):
        word_rate(t, resp, hrf="glover")
    with pytest.raises(ValueError, match="transcript 'x' and response run 'r' differ"):
        word_rate(t.rename("x"), resp)


def test_meg_lags_and_coverage(rng):
    np.testing.assert_array_equal(lag_samples(-0.1, 0.05, 100.0), np.arange(-10, 6))
    with pytest.raises(ValueError, match=r"'tmin' \(0.5 s\) must be <= 'tmax' \(0.1 s\)"):
        lag_samples(0.5, 0.1, 100.0)
    with pytest.raises(ValueError, match="'tmax' must be a finite number"):
        lag_samples(0.0, np.inf, 100.0)
    resp = Response(rng.standard_normal((1000, 1)), sfreq=SFREQ, run="r")  # 0–10 s
    # with tmin = −0.1 s, a word up to 0.1 s after the end still reaches the last samples
    ok = FeatureSet({0: np.ones((2, 1)) * [[1.0], [2.0]]}, [5.0, 10.05], run="r")
    make_meg_design(ok, resp, tmin=-0.1, tmax=0.5)
    late = FeatureSet({0: np.array([[1.0], [2.0]])}, [5.0, 10.2], run="r")
    with pytest.raises(ValueError, match=r"run 'r': 1 of 2 words \(10.200–10.200 s\) fall after the "
                                         r"end of the response grid \(0–10 s: 1000 samples"):
        make_meg_design(late, resp, tmin=-0.1, tmax=0.5)
