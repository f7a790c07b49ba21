"""Unique held-out R² of each layer beyond a baseline (issue 20 item 2, story path)."""
import numpy as np
import pytest

from neuroenc.encoding.unique import unique_r2


def _data(rng, n=300, n_runs=3):
    """Layer 0 re-encodes the baseline, layer 1 carries a signal of its own, layer 2 is noise."""
    from neuroenc.encoding.simulate import smooth_noise

    base = smooth_noise(rng, n, 2, 4)
    own = smooth_noise(rng, n, 3, 4)
    layers = {0: np.column_stack([base @ rng.standard_normal((2, 6)), 0.1 * rng.standard_normal((n, 2))]),
              1: np.column_stack([own @ rng.standard_normal((3, 6)), 0.1 * rng.standard_normal((n, 2))]),
              2: rng.standard_normal((n, 8))}
    y = base @ np.array([1.0, 0.5]) + own @ np.array([0.8, -0.6, 0.5]) + 0.6 * rng.standard_normal(n)
    groups = np.repeat([f"run{i}" for i in range(n_runs)], n // n_runs)
    Y = np.column_stack([y, rng.standard_normal(n)])
    return layers, {"word_rate": base[:, :1], "length": base[:, 1:]}, Y, groups


def test_unique_r2_known_answer(rng):
    layers, nuisance, Y, groups = _data(rng)
    table = unique_r2(layers, nuisance, Y, groups, targets=["signal", "noise"], cv="runs", n_iter=10,
                      alphas=np.logspace(-2, 5, 8), random_state=0)
    assert list(table.columns) == ["layer", "target", "r2_joint", "r2_baseline", "delta_r2", "delta_r2_sem", "n_folds"]
    sig = table[table.target == "signal"].set_index("layer")
    np.testing.assert_allclose(sig["delta_r2"], sig["r2_joint"] - sig["r2_baseline"], atol=1e-12)
    assert sig["r2_baseline"].nunique() == 1 and sig["r2_baseline"].iloc[0] > 0.2  # the same baseline fit
    assert sig["delta_r2"].idxmax() == 1 and sig.loc[1, "delta_r2"] > 0.15
    assert abs(sig.loc[0, "delta_r2"]) < 0.05 and abs(sig.loc[2, "delta_r2"]) < 0.05  # nothing beyond the baseline
    assert (sig["n_folds"] == 3).all() and (sig["delta_r2_sem"] > 0).all()
    noise = table[table.target == "noise"]
    assert (noise["delta_r2"].abs() < 0.1).all()


def test_unique_r2_bad_input(rng):
    layers, nuisance, Y, groups = _data(rng, n=90)
    with pytest.raises(ValueError, match="needs the baseline as a non-empty dict"):
        unique_r2(layers, {}, Y, groups)
    with pytest.raises(ValueError, match=r"no layer\(s\) \[7\]; the designs have \[0, 1, 2\]"):
        unique_r2(layers, nuisance, Y, groups, layers=[7])
    with pytest.raises(ValueError, match="3 target names for 2 targets"):
        unique_r2(layers, nuisance, Y, groups, targets=["a", "b", "c"])
    with pytest.raises(ValueError, match="pass Y"):
        unique_r2(layers, nuisance)


def test_unique_r2_on_a_story_design_with_transcript_baselines(rng):
    """The story path end to end: a Design, the word-length baseline from the words
    (baseline_bands), and a layer that carries a signal of its own beside one that re-encodes
    the word length."""
    from neuroenc.align import make_fmri_design
    from neuroenc.align.regressors import baseline_bands, word_length
    from neuroenc.features.featureset import FeatureSet
    from neuroenc.responses import Response

    vocab = ["a", "cat", "sat", "on", "extraordinarily", "the", "wonderful", "mat"]
    feats, resps = {}, {}
    for r in range(3):
        n_words = 400
        words = [vocab[i] for i in rng.integers(0, len(vocab), n_words)]
        onsets = 2.0 + np.cumsum(rng.uniform(0.2, 0.8, n_words))
        length = word_length(words)[:, None]
        own = rng.standard_normal((n_words, 1))
        fs = FeatureSet({0: np.hstack([length, 0.1 * rng.standard_normal((n_words, 2))]),
                         1: np.hstack([own, 0.1 * rng.standard_normal((n_words, 2))])}, onsets, onsets + 0.1,
                        words, run=f"run{r}", model="toy")
        n_trs = int((onsets[-1] + 20) // 2)
        feats[fs.run] = fs
        resps[fs.run] = Response(rng.standard_normal((n_trs, 1)), tr=2.0, run=fs.run, names=["roi"])
    design = make_fmri_design(feats, resps, delays=(0,), hrf="glover")
    truth = design.X(0)[:, :1] + design.X(1)[:, :1]  # length + the layer's own signal, HRF-convolved
    y = truth + 0.7 * rng.standard_normal(truth.shape)
    bands, _, _ = baseline_bands(design, feats, ["length", "word_rate"])
    table = unique_r2(design, bands, y, cv="runs", n_iter=10, alphas=np.logspace(-2, 5, 8), random_state=0)
    t = table.set_index("layer")
    assert t.loc[0, "r2_baseline"] > 0.15
    assert t.loc[1, "delta_r2"] > 0.15 and abs(t.loc[0, "delta_r2"]) < 0.05
