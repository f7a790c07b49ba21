"""Baseline regressors from a story's words, aligned as a one-column layer (issue 20 item 1)."""
import numpy as np
import pytest

from neuroenc.align import make_fmri_design, make_meg_design, word_rate
from neuroenc.align.regressors import (
    TRANSCRIPT_REGRESSORS,
    baseline_bands,
    log_frequency,
    phone_onsets,
    sentence_positions,
    word_length,
    word_regressors,
)
from neuroenc.encoding import fit_encoding
from neuroenc.features.featureset import FeatureSet
from neuroenc.responses import Response
from neuroenc.stimuli.transcript import Transcript

VOCAB = ["a", "the", "of", "cat", "sat", "extraordinarily", "on", "mat.", "rabbit", "hole!", "and", "wonderful"]
ALICE_TEXTGRID = "/work/shared/data/alice-brennan2016/stimuli/DownTheRabbitHoleFinal_exp120_pad_1.TextGrid"


def _story(rng, n_words=600, tr=2.0, name="story"):
    words = [VOCAB[i] for i in rng.integers(0, len(VOCAB), n_words)]
    gaps = rng.uniform(0.15, 0.9, n_words)
    onsets = 4.0 + np.cumsum(gaps)
    offsets = onsets + 0.1
    n_trs = int(np.ceil((offsets[-1] + 20) / tr))
    fs = FeatureSet({0: rng.standard_normal((n_words, 4)), 1: rng.standard_normal((n_words, 4))}, onsets, offsets,
                    words, run=name, model="tiny")
    return Transcript(words, onsets, offsets, name=name), fs, n_trs


def test_word_values_known_answers():
    words = ["Alice", "was", "tired.", "\"Oh", "dear!\"", "said", "she…", "well"]
    np.testing.assert_array_equal(word_length(words), [5, 3, 5, 2, 4, 4, 3, 4])
    np.testing.assert_array_equal(sentence_positions(words), [0, 1, 2, 0, 1, 0, 1, 0])
    assert sentence_positions(["no", "punctuation", "here"]) is None
    freq = log_frequency(["the", "rabbit", "xqzvw"])
    assert freq[0] > freq[1] > freq[2] == 0.0  # Zipf: "the" ~7.7, rabbit ~4, unknown 0


def test_resampled_word_rate_equals_align_word_rate(rng):
    transcript, fs, n_trs = _story(rng)
    response = Response(rng.standard_normal((n_trs, 2)), tr=2.0, run="story")
    for hrf in (None, "glover"):
        design = make_fmri_design(fs, response, delays=(0,), hrf=hrf, zscore=False, dtype=np.float64)
        bands, left, sources = baseline_bands(design, {"story": fs}, ["word_rate"])
        expected = word_rate(transcript, response, hrf=hrf).data
        np.testing.assert_allclose(bands["word_rate"], expected, rtol=1e-10, atol=1e-12)
        assert left == [] and "1 per word" in sources["word_rate"]
    # MEG: word impulses on the sample grid, lagged as the layers are
    meg = Response(rng.standard_normal((int(transcript.offsets[-1] * 50) + 100, 2)), sfreq=50.0, run="story")
    design = make_meg_design(fs, meg, tmin=0.0, tmax=0.0, zscore=False, dtype=np.float64)
    bands, _, _ = baseline_bands(design, {"story": fs}, ["word_rate"])
    np.testing.assert_allclose(bands["word_rate"], word_rate(transcript, meg).data)


def test_a_response_from_word_length_is_best_fit_by_length(rng):
    from neuroenc.align.hrf import convolve_hrf

    runs = [_story(rng, name=f"run{i}") for i in range(3)]
    responses, features = {}, {}
    for _, fs, n_trs in runs:
        one = make_fmri_design(fs, Response(rng.standard_normal((n_trs, 1)), tr=2.0, run=fs.run), delays=(0,),
                               zscore=False, dtype=np.float64)
        lengths = FeatureSet({0: word_length(fs.words)[:, None]}, fs.onsets, fs.offsets, fs.words, run=fs.run)
        signal = convolve_hrf(one.nuisance({fs.run: lengths}, delays=(0,), hrf=None, zscore=True), 2.0, "glover")
        y = signal + 0.5 * rng.standard_normal((n_trs, 1))
        responses[fs.run] = Response(np.column_stack([y, rng.standard_normal(n_trs)]), tr=2.0, run=fs.run,
                                     names=["length_driven", "noise"])
        features[fs.run] = fs
    design = make_fmri_design(features, responses, delays=(0,), hrf="glover")
    names = ["word_rate", "length", "log_frequency", "story_position"]
    bands, left, sources = baseline_bands(design, features, names)
    assert list(bands) == names and left == []
    assert sources["log_frequency"].startswith("wordfreq ") and "None" not in sources["log_frequency"]
    res = fit_encoding(design, nuisance=bands, baseline_models=True, n_permutations=0, cv="runs")
    rows = {(r["model"], r["target"]): r["r"] for r in res.provenance["baseline_models"]}
    alone = {n: rows[(n, "length_driven")] for n in names}
    assert max(alone, key=alone.get) == "length"
    assert alone["length"] > 0.7 and alone["length"] > alone["word_rate"] + 0.1
    assert abs(rows[("length", "noise")]) < 0.2


def test_left_out_and_bad_names(rng):
    transcript, fs, n_trs = _story(rng)
    response = Response(rng.standard_normal((n_trs, 1)), tr=2.0, run="story")
    design = make_fmri_design(fs, response, delays=(1, 2))
    bands, left, _ = baseline_bands(design, {"story": fs}, ["surprisal", "position", "length"])
    assert list(bands) == ["position", "length"]  # VOCAB has "mat." and "hole!"
    assert bands["length"].shape == (design.n_samples, 2)  # delayed as the layers
    assert len(left) == 1 and "carry no per-word surprisal" in left[0]
    # surprisal carried by the features (attrs, as the stimulus extractor stores it) is used
    fs.attrs["surprisal"] = rng.uniform(1, 10, fs.n_words).tolist()
    values, left_out, sources = word_regressors(fs, ["surprisal"])
    np.testing.assert_allclose(values["surprisal"], fs.attrs["surprisal"]) and not left_out
    assert "surprisal" in sources
    with pytest.raises(ValueError, match=r"unknown regressor\(s\) \['loudness'\]"):
        baseline_bands(design, {"story": fs}, ["loudness"])
    with pytest.raises(ValueError, match=r"no features for run\(s\) \['story'\]"):
        baseline_bands(design, {}, ["length"])
    with pytest.raises(ValueError, match="unknown transcript regressor"):
        word_regressors(fs, ["sound_power"])
    assert set(TRANSCRIPT_REGRESSORS) >= {"word_rate", "length", "log_frequency", "position", "surprisal"}


def test_real_alice_textgrid():
    from neuroenc.stimuli.textgrid import read_textgrid

    t = read_textgrid(ALICE_TEXTGRID, tier="word", name="alice")
    fs = FeatureSet({0: np.zeros((len(t), 1))}, t.onsets, t.offsets, t.words, run="alice", model="none")
    values, left, sources = word_regressors(fs, ["word_rate", "length", "log_frequency", "position",
                                                 "story_position"])
    assert len(t) == 2127 and list(t.words[:3]) == ["Alice", "was", "beginning"]
    np.testing.assert_array_equal(values["length"][:3], [5, 3, 9])
    assert 4.5 < values["log_frequency"].mean() < 6.5  # everyday words
    assert "position" in left and "no word of run 'alice' ends a sentence" in left["position"]
    np.testing.assert_array_equal(values["story_position"][[0, -1]], [0, 2126])
    # on the real TR grid: the computed word rate is the align.word_rate of the transcript
    response = Response(np.arange(372.0)[:, None], tr=2.0, start=20.0, run="alice")
    design = make_fmri_design(fs, response, delays=(0,), zscore=False, dtype=np.float64)
    bands, _, _ = baseline_bands(design, {"alice": fs}, ["word_rate", "length"])
    np.testing.assert_allclose(bands["word_rate"], word_rate(t, response).data, atol=1e-12)
    # sound power and the loader's word rate stay the loader's (confounds take precedence)
    conf = Response(np.column_stack([np.arange(372.0), np.ones(372)]), tr=2.0, start=20.0, run="alice",
                    names=["word_rate", "sound_power"], info={"source": "alice rate file"})
    bands, _, sources = baseline_bands(design, {"alice": fs}, ["word_rate", "sound_power", "length"],
                                       confounds={"alice": conf})
    np.testing.assert_allclose(bands["word_rate"][:, 0], np.arange(372.0))
    assert sources["word_rate"] == "the data set's confound (alice rate file)" and list(bands) == [
        "word_rate", "sound_power", "length"]


def test_pipeline_fit_resolves_transcript_baselines_on_alice(tmp_path, rng):
    """encoding.baseline names computed regressors on a story data set: fit_subject aligns them
    with the layers, fits each alone, records each one's source (wordfreq's version) and says
    which it left out."""
    from importlib.metadata import version

    from neuroenc.encoding import EncodingResults
    from neuroenc.features.featureset import save_features
    from neuroenc.pipeline.config import config_from_dict
    from neuroenc.pipeline.loaders import load_dataset
    from neuroenc.pipeline.tasks import check_baseline, fit_subject
    from neuroenc.stimuli.textgrid import read_textgrid

    t = read_textgrid(ALICE_TEXTGRID, tier="word", name="alice")
    fs = FeatureSet({0: rng.standard_normal((len(t), 3)), 1: rng.standard_normal((len(t), 3))}, t.onsets,
                    t.offsets, t.words, run="alice", model="random")
    path = save_features(fs, tmp_path / "alice.h5")
    names = ["word_rate", "sound_power", "length", "log_frequency", "position"]
    config = config_from_dict({
        "dataset": {"loader": "alice", "args": {"resolution": "10mm", "download": False,
                                                "data_dir": "/work/shared/data"}, "subjects": ["s18"]},
        "model": {"name": "random"}, "output": {"dir": str(tmp_path / "out"), "report": None},
        "alignment": {"delays": [1, 2, 3, 4]},
        "encoding": {"baseline": names, "n_permutations": 0, "alphas": {"logspace": [0, 6, 4]}}})
    dataset = load_dataset(config.dataset, subjects=["s18"])
    assert check_baseline(config, dataset) == []
    res = EncodingResults.load(fit_subject(config, "s18", {"alice": path}, dataset=dataset))
    sources = res.provenance["baseline_sources"]
    assert list(sources) == ["word_rate", "sound_power", "length", "log_frequency"]
    assert sources["log_frequency"] == f"wordfreq {version('wordfreq')} zipf_frequency(word, 'en')"
    assert sources["word_rate"].startswith("the data set's confound")  # Alice's own word rate
    assert res.settings["baseline_regressors"] == names[:4]
    models = {row["model"] for row in res.provenance["baseline_models"]}
    assert models == set(names[:4]) | {"all baseline regressors"}
    assert any("baseline position left out" in w for w in res.warnings)
    assert np.all(np.isfinite(res.baseline["r"])) and res.baseline["r"].shape == (6,)
    bad = config_from_dict({**config.to_dict(), "encoding": {"baseline": ["loudness"]}})
    with pytest.raises(Exception, match=r"unknown regressor\(s\) \['loudness'\]"):
        check_baseline(bad, dataset)


def test_cli_fit_baseline_names(tmp_path, rng, restore_logger, capsys):
    from importlib.metadata import version

    from neuroenc import cli
    from neuroenc.encoding import EncodingResults
    from neuroenc.features.featureset import save_features

    _, fs, n_trs = _story(rng)
    save_features(fs, tmp_path / "story.h5")
    np.savetxt(tmp_path / "bold.txt", rng.standard_normal((n_trs, 2)))
    np.savetxt(tmp_path / "loud.txt", rng.standard_normal(n_trs), header="loud", comments="")
    base = ["-q", "fit", "--features", str(tmp_path / "story.h5"), "--responses", str(tmp_path / "bold.txt"),
            "--tr", "2", "--target-names", "a,b", "--cv", "blocks", "--n-blocks", "3", "--n-permutations", "0", "--out",
            str(tmp_path / "res.h5")]
    assert cli.main([*base, "--baseline", "length,log_frequency,surprisal", "--nuisance",
                     str(tmp_path / "loud.txt")]) == 0
    out = capsys.readouterr().out
    assert "baseline r=" in out
    res = EncodingResults.load(tmp_path / "res.h5")
    assert any("baseline surprisal left out" in w for w in res.warnings)
    assert res.settings["baseline_regressors"] == ["length", "log_frequency", "loud"]
    expected = f"wordfreq {version('wordfreq')} zipf_frequency(word, 'en')"
    assert res.provenance["baseline_sources"]["log_frequency"] == expected
    assert {r["model"] for r in res.provenance["baseline_models"]} == {"length", "log_frequency", "loud",
                                                                       "all baseline regressors"}
    # phoneme rate from a TextGrid's phones tier, one per run
    phones = [(a, (a + b) / 2, "AH") for a, b in zip(fs.onsets, fs.offsets)]
    grid = _textgrid(tmp_path / "story.TextGrid", {"words": [(a, b, w) for a, b, w in zip(fs.onsets, fs.offsets,
                                                                                         fs.words)],
                                                   "phones": phones})
    assert cli.main([*base, "--baseline", "phoneme_rate,length", "--phones", str(grid)]) == 0
    res = EncodingResults.load(tmp_path / "res.h5")
    assert res.settings["baseline_regressors"] == ["phoneme_rate", "length"]
    capsys.readouterr()
    assert cli.main([*base, "--baseline", "phoneme_rate", "--phones", str(grid), str(grid)]) != 0
    assert "--phones has 2 files for 1 runs" in capsys.readouterr().err
    assert cli.main([*base, "--baseline", "loudness"]) != 0
    err = capsys.readouterr().err
    assert "unknown regressor(s) ['loudness']: use the transcript regressors ['word_rate'" in err


def _textgrid(path, tiers):
    """A long-format Praat TextGrid with the given interval tiers {name: [(xmin, xmax, text)]}."""
    xmax = max(iv[1] for ivs in tiers.values() for iv in ivs)
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {xmax}",
             "tiers? <exists>", f"size = {len(tiers)}", "item []:"]
    for k, (name, ivs) in enumerate(tiers.items(), 1):
        lines += [f"    item [{k}]:", '        class = "IntervalTier"', f'        name = "{name}"',
                  "        xmin = 0", f"        xmax = {xmax}", f"        intervals: size = {len(ivs)}"]
        for i, (a, b, text) in enumerate(ivs, 1):
            lines += [f"        intervals [{i}]:", f"            xmin = {a}", f"            xmax = {b}",
                      f'            text = "{text}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_phoneme_rate_from_a_phone_tier(tmp_path, rng):
    transcript, fs, n_trs = _story(rng, n_words=300)
    words, phones = [], []
    for w, a, b in zip(transcript.words, transcript.onsets, transcript.offsets):
        words.append((a, b, w))
        k = int(rng.integers(1, 5))
        edges = np.linspace(a, b, k + 1)
        phones += [(edges[i], edges[i + 1], "AH") for i in range(k)]
    phones.insert(0, (0.0, transcript.onsets[0], "sil"))
    path = _textgrid(tmp_path / "story.TextGrid", {"words": words, "phones": phones})
    onsets = phone_onsets(path)
    assert onsets.size == len(phones) - 1 and onsets[0] == transcript.onsets[0]  # the silence left out
    response = Response(rng.standard_normal((n_trs, 1)), tr=2.0, run="story")
    design = make_fmri_design(fs, response, delays=(0,), hrf="glover", zscore=False, dtype=np.float64)
    bands, left, sources = baseline_bands(design, {"story": fs}, ["phoneme_rate", "word_rate"],
                                          phones={"story": onsets})
    as_words = Transcript(["AH"] * onsets.size, onsets, onsets, name="story")
    np.testing.assert_allclose(bands["phoneme_rate"], word_rate(as_words, response, hrf="glover").data, atol=1e-12)
    assert not np.allclose(bands["phoneme_rate"], bands["word_rate"]) and left == []
    assert sources["phoneme_rate"].startswith("1 per phone")
    # no phones for the run: left out, said why; a TextGrid without a phone tier is an error
    bands, left, _ = baseline_bands(design, {"story": fs}, ["phoneme_rate", "length"])
    assert list(bands) == ["length"] and "no phones for run(s) ['story']" in left[0]
    words_only = _textgrid(tmp_path / "words.TextGrid", {"words": words})
    with pytest.raises(ValueError, match=r"has no phone tier among its tiers \['words'\]; pass tier="):
        phone_onsets(words_only)
    with pytest.raises(ValueError, match=r"has no tier 'phon'; it has \['words', 'phones'\]"):
        phone_onsets(path, tier="phon")
