"""End to end on the real Alice data: a word rate built from the TextGrid, aligned to the
362-TR grid starting at 20.0 s, matches the authors' ``sNN-rate.txt``; a wrong start is caught."""
import numpy as np
import pytest

from neuroenc.align import make_fmri_design, word_rate
from neuroenc.datasets import load_alice
from neuroenc.features import FeatureSet


@pytest.fixture(scope="module")
def alice(data_dir):
    ds = load_alice(data_dir, subjects=["s18"])
    return (ds.transcripts["alice"], ds.responses["s18"]["alice"], ds.confounds["s18"]["alice"])


def _r(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def test_alice_word_rate_matches_provided_regressor(alice):
    transcript, response, confounds = alice
    provided = confounds.select(["word_rate"]).data[:, 0]
    assert response.start == 20.0 and response.n_samples == 362
    spm = word_rate(transcript, response, hrf="spm")
    glover = word_rate(transcript, response, hrf="glover")
    assert spm.names == ["word_rate"] and spm.start == 20.0 and spm.n_samples == 362
    assert _r(spm.data, provided) > 0.98  # the authors used SPM8
    assert _r(glover.data, provided) > 0.9
    # without the HRF the word rate is not what the file holds (it is HRF-convolved)
    assert abs(_r(word_rate(transcript, response).data, provided)) < 0.2
    # the unconvolved Lanczos word rate is about words per TR: 2127 words over ~362 TRs
    assert word_rate(transcript, response).data.sum() == pytest.approx(2127, rel=0.01)


def test_alice_wrong_start_is_caught_and_drops_the_correlation(alice):
    transcript, response, confounds = alice
    provided = confounds.select(["word_rate"]).data[:, 0]
    wrong = response.copy(start=0.0)
    with pytest.raises(ValueError, match=r"run 'alice': 53 of 2127 words \(724.741–742.976 s\) fall "
                                         r"after the end of the response grid \(0–724 s: 362 TRs "
                                         r"of 2 s from start=0\).*start=20\b"):
        word_rate(transcript, wrong, hrf="spm")
    forced = word_rate(transcript, wrong, hrf="spm", on_uncovered="ignore")
    assert _r(forced.data, provided) < 0.3


def test_alice_design_with_word_rate_features_and_confound_band(alice):
    """The same word rate as features of a design (HRF band), next to the authors' confounds
    as a nuisance band on the same rows."""
    transcript, response, confounds = alice
    ones = FeatureSet({0: np.ones((len(transcript), 1))}, transcript.onsets, transcript.offsets,
                      run="alice", model="word_rate")
    design = make_fmri_design(ones, response, hrf="spm", trim=(5, 5), dtype=np.float64)
    assert design.n_samples == 352 and design.Y.shape == (352, 6)
    np.testing.assert_allclose(design.Y.mean(0), 0.0, atol=1e-12)
    nuisance = design.nuisance(confounds, columns=["word_rate", "sound_power"])
    assert nuisance.shape == (352, 2)
    np.testing.assert_allclose(nuisance.std(0), 1.0)
    assert _r(design.X(0), nuisance[:, 0]) > 0.98
    # FIR word rate: 4 delays, a least-squares fit explains the provided (HRF) regressor
    fir = make_fmri_design(ones, response, delays=(1, 2, 3, 4), trim=(5, 5), dtype=np.float64)
    X = np.column_stack([fir.X(0), np.ones(352)])
    coef, *_ = np.linalg.lstsq(X, nuisance[:, 0], rcond=None)
    assert _r(X @ coef, nuisance[:, 0]) > 0.9
    with pytest.raises(ValueError, match="are not on the grid of its response: they have "
                                         "start=0 s instead of 20 s"):
        design.nuisance(confounds.copy(start=0.0))
