"""fMRI designs: runs paired by name, hand-built known answers for resampling + z-scoring +
delays + trimming, nuisance bands, and every bad input."""
import logging

import numpy as np
import pytest

from neuroenc.align import make_delayed, make_fmri_design, make_meg_design, resample
from neuroenc.align.hrf import convolve_hrf
from neuroenc.align.zscore import ZScore
from neuroenc.features import FeatureSet
from neuroenc.responses import Response

TR = 2.0


def _run(rng, name, n_words=150, n_trs=40, start=10.0, first_word=6.0, dims=(4, 3), model="m"):
    """A FeatureSet with layers 1 and 2 and a TR-grid Response for one run."""
    gaps = rng.uniform(0.2, 0.6, n_words)
    onsets = first_word + np.cumsum(gaps) - gaps[0]
    onsets = onsets[onsets < start + n_trs * TR - 1.0]
    layers = {1: rng.standard_normal((onsets.size, dims[0])),
              2: rng.standard_normal((onsets.size, dims[1]))}
    fs = FeatureSet(layers, onsets, onsets + 0.2, run=name, model=model, n_model_layers=3)
    resp = Response(rng.standard_normal((n_trs, 3)) + 5.0, tr=TR, start=start,
                    names=["roi-a", "roi-b", "roi-c"], run=name, subject="s1")
    return fs, resp


@pytest.fixture
def two_runs(rng):
    fa, ra = _run(rng, "story-a", n_trs=40, start=10.0, first_word=6.0)
    fb, rb = _run(rng, "story-b", n_trs=30, start=0.0, first_word=1.0)
    return {"story-a": fa, "story-b": fb}, {"story-a": ra, "story-b": rb}


def _hand_design(fs, resp, layer, delays, trim, zscore=True, hrf=None, n_hrf=0):
    """One run, by hand: resample on the grid extended by max(delays) (+ HRF) rows before the
    start, z-score over the kept rows, HRF, delay, trim."""
    n_pre = max(max(delays), 0) + n_hrf
    n_post = max(-min(delays), 0)
    n = resp.n_samples
    grid = resp.start + np.arange(-n_pre, n + n_post) * TR
    R = resample(fs[layer], fs.times, grid)
    keep = slice(n_pre + trim[0], n_pre + n - trim[1])
    stats = None
    if zscore:
        mean, std = R[keep].mean(0), R[keep].std(0)
        R = (R - mean) / std
        stats = (mean, std)
    if hrf:
        R = convolve_hrf(R, TR, hrf)
    return make_delayed(R, delays)[keep], stats


def test_fmri_design_equals_hand_built(two_runs):
    features, responses = two_runs
    design = make_fmri_design(features, responses, delays=(1, 2, 3), trim=(2, 1), dtype=np.float64)
    assert design.runs == ["story-a", "story-b"]
    np.testing.assert_array_equal(design.run_lengths, [37, 27])
    assert design.n_samples == 64 and design.n_delays == 3
    np.testing.assert_array_equal(design.groups, ["story-a"] * 37 + ["story-b"] * 27)
    np.testing.assert_allclose(design.times[:2], [14.0, 16.0])
    np.testing.assert_allclose(design.times[37:39], [4.0, 6.0])
    np.testing.assert_allclose(design.lags, [2.0, 4.0, 6.0])
    assert design.target_names == ["roi-a", "roi-b", "roi-c"]
    for layer in (1, 2):
        X = design.X(layer)
        assert X.shape == (64, 3 * features["story-a"].n_features(layer))
        blocks = [_hand_design(features[r], responses[r], layer, (1, 2, 3), (2, 1)) for r in design.runs]
        np.testing.assert_allclose(X, np.vstack([b[0] for b in blocks]), atol=1e-10)
        stats = design.feature_stats(layer)
        for r, (_, (mean, std)) in zip(design.runs, blocks):
            np.testing.assert_allclose(stats[r].mean, mean, atol=1e-12)
            np.testing.assert_allclose(stats[r].std, std, atol=1e-12)
    # Y: each run trimmed and z-scored with its own statistics, which are stored
    ya = responses["story-a"].data[2:-1]
    np.testing.assert_allclose(design.Y[:37], (ya - ya.mean(0)) / ya.std(0), atol=1e-12)
    np.testing.assert_allclose(design.response_stats["story-a"].mean, ya.mean(0))
    np.testing.assert_allclose(design.split(design.Y)["story-b"], design.Y[37:])
    assert design.run_slices["story-b"] == slice(37, 64)
    assert design.settings["delays"] == [1, 2, 3] and design.settings["trim"] == [2, 1]
    assert "2 run(s), 64 rows × 3 targets" in repr(design)


def test_words_before_start_reach_the_first_rows(rng):
    """A word 3.5 s before the grid starts is seen by row 0 through delay 2 (4 s): the grid is
    extended before the start, not zero-filled."""
    fs = FeatureSet({0: np.array([[1.0]])}, [6.5], run="r")
    # two rows: a longer grid for this one-word story would lie mostly outside it (refused)
    resp = Response(rng.standard_normal((2, 1)), tr=TR, start=10.0, run="r")
    design = make_fmri_design(fs, resp, delays=(0, 2), zscore=False, method="rect", dtype=np.float64)
    X = design.X(0)
    # rect: the word (6.5 s) lands in the TR at 6.0 s, which delay 2 brings to row 0 (10.0 s)
    np.testing.assert_array_equal(X[:, 1], np.eye(2)[0])
    np.testing.assert_array_equal(X[:, 0], 0.0)


def test_runs_are_matched_by_name_not_position(two_runs):
    features, responses = two_runs
    ref = make_fmri_design(features, responses, dtype=np.float64)
    flipped = make_fmri_design([features["story-a"], features["story-b"]],
                               [responses["story-b"], responses["story-a"]], dtype=np.float64)
    np.testing.assert_array_equal(flipped.X(1), ref.X(1))
    np.testing.assert_array_equal(flipped.Y, ref.Y)
    only_b = make_fmri_design(features, responses, runs=["story-b"], dtype=np.float64)
    np.testing.assert_allclose(only_b.X(2), ref.X(2)[ref.run_slices["story-b"]])
    with pytest.raises(ValueError, match=r"features only: \['story-a'\]; responses only: \['story-c'\]"):
        make_fmri_design(features, {"story-b": responses["story-b"],
                                    "story-c": responses["story-a"].copy(run="story-c")})
    with pytest.raises(ValueError, match=r"responses\['story-a'\] holds data for run 'story-b'"):
        make_fmri_design(features, {"story-a": responses["story-b"], "story-b": responses["story-b"]})
    with pytest.raises(ValueError, match="responses has two items for run 'story-a'"):
        make_fmri_design(features, [responses["story-a"], responses["story-a"]])
    with pytest.raises(ValueError, match=r"runs \['story-z'\] were requested"):
        make_fmri_design(features, responses, runs=["story-z"])


def test_grid_shorter_than_story_cannot_pass(two_runs, caplog):
    features, responses = two_runs
    short = dict(responses, **{"story-a": responses["story-a"].crop(0, 20)})
    with pytest.raises(ValueError, match=r"run 'story-a': \d+ of 150 words .* fall after the end "
                                         r"of the response grid \(10–50 s: 20 TRs of 2 s"):
        make_fmri_design(features, short)
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        design = make_fmri_design(features, short, on_uncovered="warn")
    assert "fall after the end" in caplog.text
    assert len(design.warnings) == 1 and "story-a" in design.warnings[0]
    assert design.run_lengths[0] == 20


def test_hrf_design_equals_hand_built(two_runs):
    features, responses = two_runs
    design = make_fmri_design(features, responses, hrf="glover", trim=(1, 0), dtype=np.float64,
                              on_uncovered="ignore")
    assert design.delays == (0,)
    X = design.X(1)
    hand = np.vstack([_hand_design(features[r], responses[r], 1, (0,), (1, 0), hrf="glover",
                                   n_hrf=15)[0] for r in design.runs])
    np.testing.assert_allclose(X, hand, atol=1e-10)


def test_zscore_false_and_dtype(two_runs):
    features, responses = two_runs
    design = make_fmri_design(features, responses, zscore=False)
    assert design.X(2).dtype == np.float32 and design.Y.dtype == np.float32
    hand = np.vstack([_hand_design(features[r], responses[r], 2, (1, 2, 3, 4), (0, 0),
                                   zscore=False)[0] for r in design.runs])
    np.testing.assert_allclose(design.X(2), hand, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(design.Y[:40], responses["story-a"].data, rtol=1e-6)
    assert design.response_stats["story-a"] is None
    with pytest.raises(ValueError, match="built with zscore=False"):
        design.feature_stats(1)
    # within-fold z-scoring instead: ZScore fit on one run, applied to the other
    z = ZScore().fit(design.Y[design.groups == "story-a"])
    test = z.transform(design.Y[design.groups == "story-b"])
    np.testing.assert_allclose(test, (responses["story-b"].data - z.mean_) / z.scale_, rtol=1e-5)


def test_nuisance_band_from_responses_and_featuresets(two_runs, rng):
    features, responses = two_runs
    design = make_fmri_design(features, responses, trim=(2, 2), dtype=np.float64)
    confounds = {r: responses[r].copy(data=rng.standard_normal((responses[r].n_samples, 2)),
                                      names=["word_rate", "motion"]) for r in design.runs}
    N = design.nuisance(confounds)
    hand = []
    for r in design.runs:
        c = confounds[r].data[2:-2]
        hand.append((c - c.mean(0)) / c.std(0))
    np.testing.assert_allclose(N, np.vstack(hand), atol=1e-12)
    N2 = design.nuisance(confounds, columns=["motion"], delays=(0, 1))
    assert N2.shape == (design.n_samples, 2)
    np.testing.assert_allclose(N2[:, 0], N[:, 1], atol=1e-12)
    np.testing.assert_allclose(N2[1:design.run_lengths[0], 1], N[:design.run_lengths[0] - 1, 1],
                               atol=1e-12)
    # a FeatureSet band is aligned exactly as the main features
    band = design.nuisance({r: features[r].select([2]) for r in design.runs}, layer=2)
    np.testing.assert_allclose(band, design.X(2), atol=1e-12)


def test_nuisance_errors(two_runs, rng):
    features, responses = two_runs
    design = make_fmri_design(features, responses)
    bad_start = {r: responses[r].copy(start=responses[r].start + 2.0) for r in design.runs}
    with pytest.raises(ValueError, match=r"nuisance regressors for run 'story-a' are not on the "
                                         r"grid of its response: they have start=12 s instead of 10 s"):
        design.nuisance(bad_start)
    with pytest.raises(ValueError, match=r"the nuisance source has no run\(s\) \['story-b'\]"):
        design.nuisance({"story-a": responses["story-a"]})
    short = {r: responses[r].crop(0, 1) for r in design.runs}
    with pytest.raises(ValueError, match="39 rows instead of 40"):
        design.nuisance(short)
    mixed = {"story-a": responses["story-a"], "story-b": features["story-b"]}
    with pytest.raises(TypeError, match="mixes Responses and FeatureSets"):
        design.nuisance(mixed)
    with pytest.raises(ValueError, match="'layer' selects a FeatureSet layer"):
        design.nuisance(responses, layer=1)
    with pytest.raises(ValueError, match="'columns' selects Response columns"):
        design.nuisance(features, columns=["x"])
    with pytest.raises(KeyError, match="has no target"):
        design.nuisance(responses, columns=["nope"])


def test_bad_features(two_runs):
    features, responses = two_runs
    fa = features["story-a"]
    nan = fa[1].copy()
    nan[5, 2] = np.nan
    bad = dict(features, **{"story-a": FeatureSet({1: nan, 2: fa[2]}, fa.onsets, run="story-a",
                                                  model="m")})
    design = make_fmri_design(bad, responses)
    with pytest.raises(ValueError, match=r"layer 1 of the features for run 'story-a' has 1 non-finite "
                                         r"values .* column\(s\) \[2\] and 1 row\(s\) \[5\]"):
        design.X(1)
    with pytest.raises(KeyError, match=r"this design has no layer 7; it has layers \[1, 2\]"):
        design.X(7)
    with pytest.raises(TypeError, match="'layer' must be an int"):
        design.X("1")
    with pytest.raises(ValueError, match=r"features for run 'story-a' have no layer\(s\) \[3\] \(they have \[1, 2\]\)"):
        make_fmri_design(features, responses, layers=[1, 3])
    other_model = dict(features, **{"story-b": FeatureSet({1: features["story-b"][1]},
                                                          features["story-b"].onsets,
                                                          run="story-b", model="other")})
    with pytest.raises(ValueError, match="come from model 'other' but those for run 'story-a' from 'm'"):
        make_fmri_design(other_model, responses, layers=1)
    wide = dict(features, **{"story-b": FeatureSet({1: np.ones((features["story-b"].n_words, 9))},
                                                   features["story-b"].onsets, run="story-b",
                                                   model="m")})
    with pytest.raises(ValueError, match="layer 1 has 9 columns for run 'story-b' but 4"):
        make_fmri_design(wide, responses, layers=1)
    with pytest.raises(TypeError, match=r"features\[0\] must be a FeatureSet, got ndarray"):
        make_fmri_design([np.ones((3, 2))], responses)
    with pytest.raises(ValueError, match="word times of the features for run 'r' has 1 non-finite"):
        make_fmri_design(FeatureSet({0: np.ones((2, 1))}, [1.0, np.nan], run="r"),
                         Response(np.arange(10.0), tr=TR, run="r"))


def test_constant_feature_column_warns_and_is_zero(rng, caplog):
    fs, resp = _run(rng, "r")
    zero = fs[1].copy()
    zero[:, 0] = 0.0
    fs = FeatureSet({1: zero}, fs.onsets, run="r")
    design = make_fmri_design(fs, resp)
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        X = design.X(1)
    np.testing.assert_array_equal(X[:, 0], 0.0)
    assert "layer 1 of the features for run 'r': 1 constant column(s) [0]" in caplog.text
    assert any("set to 0" in w for w in design.warnings)


def test_bad_responses(two_runs):
    features, responses = two_runs
    ra = responses["story-a"]
    nan = ra.data.copy()
    nan[3, 1] = np.inf
    with pytest.raises(ValueError, match=r"response data \(run 'story-a', subject 's1'\) has 1 "
                                         r"non-finite values .* row\(s\) \[3\]"):
        make_fmri_design(features, dict(responses, **{"story-a": ra.copy(data=nan)}))
    const = ra.data.copy()
    const[:, 2] = 1.0
    with pytest.raises(ValueError, match=r"1 constant column\(s\) \['roi-c'\] \(indices \[2\]\) "
                                         r"over its 40 kept rows"):
        make_fmri_design(features, dict(responses, **{"story-a": ra.copy(data=const)}))
    meg = Response(np.random.default_rng(0).standard_normal((100, 3)), sfreq=100.0, run="story-a",
                   names=ra.names)
    with pytest.raises(ValueError, match=r"response for run 'story-a' is on a 'meg' grid \(100 Hz\); "
                                         r"use make_meg_design"):
        make_fmri_design(features, dict(responses, **{"story-a": meg}))
    with pytest.raises(ValueError, match=r"response for run 'story-a' is on a 'fmri' grid \(TR 2 s\); "
                                         r"use make_fmri_design"):
        make_meg_design(features, responses)
    with pytest.raises(ValueError, match="run 'story-b' has a period of 1.5 s but run 'story-a' has 2 s"):
        make_fmri_design(features, dict(responses, **{"story-b": responses["story-b"].copy(tr=1.5)}))
    renamed = responses["story-b"].copy(names=["x", "y", "z"])
    with pytest.raises(ValueError, match="run 'story-b' have targets \\['x', 'y', 'z'\\]"):
        make_fmri_design(features, dict(responses, **{"story-b": renamed}))
    with pytest.raises(ValueError, match=r"trim=\(20, 20\) leaves 0 of the 40 rows of run 'story-a'"):
        make_fmri_design(features, responses, trim=20)
    with pytest.raises(ValueError, match=r"trim must be an int >= 0 or a list of 2 ints >= 0; got \(-1, 0\)"):
        make_fmri_design(features, responses, trim=(-1, 0))
    with pytest.raises(TypeError, match=r"trim must be an int >= 0 or a list of 2 ints >= 0; got '5' \(str\)"):
        make_fmri_design(features, responses, trim="5")
    with pytest.raises(ValueError, match="Invalid value for 'on_uncovered'"):
        make_fmri_design(features, responses, on_uncovered="skip")
    with pytest.raises(ValueError, match="Invalid value for 'hrf'"):
        make_fmri_design(features, responses, hrf="boynton")
    with pytest.raises(ValueError, match="Invalid value for 'method'"):
        make_fmri_design(features, responses, method="cubic")
    with pytest.raises(TypeError, match="responses must be a Response, a list of them or a dict"):
        make_fmri_design(features, "alice.npy")
