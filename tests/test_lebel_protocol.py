"""LeBel et al. 2023 / Antonello et al. 2023's fixed protocol: ``cv: holdout:<run>`` (train on the
training stories, test once on the mean of the repeated test story), r, r·|r| and cc_norm from
the repeats (Schoppe et al. 2016), and the published numbers beside a run's."""
from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from _bids_fixtures import layouts, mini_lebel  # noqa: F401

from neuroenc.datasets import DatasetError, load_lebel2023, make_miniature
from neuroenc.datasets.lebel2023 import LEBEL_PUBLISHED, _mean_of_repeats
from neuroenc.encoding import EncodingResults, LayerSweep, fit_encoding, make_cv, noise_ceiling_repeats
from neuroenc.encoding.cv import resolve_cv
from neuroenc.encoding.stats import cc_norm, repeat_scores, signed_square
from neuroenc.pipeline import ConfigError, run_pipeline
from neuroenc.pipeline.config import config_from_dict
from neuroenc.report.sections import holdout_section, published_note
from neuroenc.responses import Response
from neuroenc.testing import tiny_gpt2

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------- the split
def test_holdout_trains_on_every_other_run_and_tests_once():
    groups = np.repeat(["a", "t", "b"], [4, 3, 5])
    splits = make_cv("holdout:t", groups, groups.size)
    assert len(splits) == 1
    train, test = splits[0]
    np.testing.assert_array_equal(test, [4, 5, 6])
    np.testing.assert_array_equal(train, [0, 1, 2, 3, 7, 8, 9, 10, 11])


@pytest.mark.parametrize("cv, groups, match", [
    ("holdout:z", ["a", "a", "t", "t"], r"there is no run 'z'; the runs are \['a', 't'\]"),
    ("holdout:t", ["t", "t", "t"], r"needs at least one training run besides 't'"),
    ("holdout:t", None, r"no run labels were given; pass groups="),
    ("holdout:t", ["a", "a", "t"], r"holds out 1 sample"),
])
def test_holdout_errors_name_the_run_and_the_fix(cv, groups, match):
    with pytest.raises(ValueError, match=match):
        make_cv(cv, groups, 4 if groups is None else len(groups))


def test_holdout_is_for_samples_in_time_not_stimuli():
    with pytest.raises(ValueError, match=r"holdout:RUN holds out a run of samples in time; the rows are stimuli"):
        resolve_cv("holdout:t", "stimuli", ["a", "b"])


def test_holdout_is_declared_once_for_config_and_calls():
    config = config_from_dict({"dataset": {"loader": "lebel2023"},
                               "encoding": {"cv": "holdout:wheretheressmoke"}})
    assert config.encoding.cv == "holdout:wheretheressmoke"
    with pytest.raises(ConfigError, match=r"encoding\.cv.*holdout:RUN"):
        config_from_dict({"dataset": {"loader": "lebel2023"}, "encoding": {"cv": "holdout:"}})
    with pytest.raises(ValueError, match=r"Allowed values are .*'holdout:RUN'.* but got 'bogus'"):
        make_cv("bogus", ["a", "a", "b", "b"], 4)


def _runs(rng, sizes, n_features=5, n_targets=3, noise=1.0):
    X = rng.standard_normal((sum(sizes.values()), n_features))
    S = X @ rng.standard_normal((n_features, n_targets))
    S /= S.std(0)
    groups = np.repeat(list(sizes), list(sizes.values()))
    return X, S, S + noise * rng.standard_normal(S.shape), groups


def test_penalties_are_chosen_on_the_training_runs_only(rng):
    X, _, Y, groups = _runs(rng, {"a": 150, "b": 150, "c": 150, "t": 100})
    first = LayerSweep(cv="holdout:t", alphas=np.logspace(-2, 5, 8), n_permutations=0, refit=False).fit(
        X, Y, groups=groups)
    Y2 = Y.copy()
    Y2[groups == "t"] = rng.standard_normal(Y2[groups == "t"].shape)  # another test response
    second = LayerSweep(cv="holdout:t", alphas=np.logspace(-2, 5, 8), n_permutations=0, refit=False).fit(
        X, Y2, groups=groups)
    assert first.fold_r_.shape == (1, 1, 3)
    np.testing.assert_array_equal(first.fold_alphas_, second.fold_alphas_)  # the test run never chose them
    assert np.all(first.r_ > 0.5) and np.all(np.abs(second.r_) < 0.3)


# ---------------------------------------------------------------------- scores
def test_signed_square_and_cc_norm_values():
    np.testing.assert_allclose(signed_square([0.5, -0.5, 0.0]), [0.25, -0.25, 0.0])
    np.testing.assert_allclose(cc_norm([0.3, -0.2, 0.1, 0.1], [0.6, 0.4, 0.0, np.nan]), [0.5, -0.5, np.nan, np.nan])


def test_cc_norm_recovers_the_true_normalised_correlation(rng):
    """Simulation: signal s, N = 10 repeats y_k = s + sigma e_k, a prediction p whose correlation
    with s is known; r = corr(p, mean) is shrunk by the noise, cc_norm = r / CC_max recovers
    corr(p, s).

    Tolerance: with T = 4000 samples the sampling SD of r is about (1 - r^2) / sqrt(T) <= 0.016,
    and dividing by CC_max >= 0.72 (sigma <= 3) gives an SD of cc_norm <= 0.022 per target; 0.08
    is 3.6 SD for each of the 60 targets, and 0.015 for their mean error is over 5 SD of a mean of
    60. r alone is corr(p, s) times CC_max (about 0.74 at sigma = 3), far outside.
    """
    T, n_targets, n_rep = 4000, 60, 10
    s = rng.standard_normal((T, n_targets))
    sigma = np.linspace(0.5, 3.0, n_targets)
    repeats = s[None] + sigma[None, None, :] * rng.standard_normal((n_rep, T, n_targets))
    rho = np.linspace(0.3, 0.9, n_targets)[rng.permutation(n_targets)]
    pred = rho * s + np.sqrt(1 - rho**2) * rng.standard_normal((T, n_targets))
    truth = np.array([np.corrcoef(pred[:, j], s[:, j])[0, 1] for j in range(n_targets)])
    scores = repeat_scores(pred, repeats)
    expected_ceiling = np.sqrt(1.0 / (1.0 + sigma**2 / n_rep))  # sqrt(var(s) / var(mean))
    np.testing.assert_allclose(scores["cc_max"], expected_ceiling, atol=0.03)
    np.testing.assert_allclose(scores["cc_norm"], truth, atol=0.08)
    assert abs(np.mean(scores["cc_norm"] - truth)) < 0.015
    np.testing.assert_allclose(scores["r_abs_r"], scores["r"] * np.abs(scores["r"]))
    noisy = sigma > 2.5
    assert np.all(scores["r"][noisy] / truth[noisy] < 0.85)  # r alone is shrunk by about CC_max (0.74)


def test_repeat_scores_errors(rng):
    with pytest.raises(ValueError, match=r"prediction has shape \(5, 2\) but the repeats have \(6, 2\)"):
        repeat_scores(np.zeros((5, 2)), rng.standard_normal((3, 6, 2)))
    with pytest.raises(ValueError, match=r"repeats must have shape .* at least 2 repeats"):
        repeat_scores(np.zeros((5, 2)), rng.standard_normal((1, 5, 2)))


def test_holdout_fit_on_a_simulation_recovers_cc_norm_near_one(rng):
    """A linear signal of 5 features, learnt from 3000 training samples, predicts the noise-free
    signal almost exactly (corr > 0.99), so cc_norm of the test on the mean of 10 noisy repeats is
    about 1 while r is about CC_max (0.76 here). Tolerance 0.1: r on 400 test samples has an SD
    of about (1 - 0.76^2) / 20 = 0.02, i.e. 0.028 after dividing by CC_max: 0.1 is 3.5 SD."""
    sizes = {"a": 1000, "b": 1000, "c": 1000, "wheretheressmoke": 400}
    X, S, Y, groups = _runs(rng, sizes, noise=1.0)
    test = groups == "wheretheressmoke"
    repeats = S[test][None] + 2.0 * rng.standard_normal((10, int(test.sum()), S.shape[1]))
    Y[test] = repeats.mean(0)
    ceiling = noise_ceiling_repeats(repeats)
    res = fit_encoding([X], Y, groups=groups, cv="holdout:wheretheressmoke", noise_ceiling=ceiling,
                       alphas=np.logspace(-2, 4, 7), n_permutations=0)
    scores = res.holdout_scores()
    np.testing.assert_allclose(scores["cc_max"], np.sqrt(1 / 1.4), atol=0.03)
    np.testing.assert_allclose(scores["cc_norm"], 1.0, atol=0.1)
    np.testing.assert_allclose(scores["r"], scores["cc_max"], atol=0.08)
    np.testing.assert_allclose(scores["r_abs_r"], signed_square(scores["r"]))
    assert res.settings["cv_folds"] == [[3000, 400]]


# ---------------------------------------------------------------------- published numbers
def test_card_lists_the_published_results_the_report_uses():
    card = yaml.safe_load((ROOT / "datasets" / "lebel2023.yaml").read_text())
    assert card["protocol"]["cv"] == "holdout:wheretheressmoke"
    assert len(card["published"]) == len(LEBEL_PUBLISHED)
    for entry, constant in zip(card["published"], LEBEL_PUBLISHED):
        assert {k: entry[k] for k in constant} == constant
        assert entry["url"].startswith("https://") and entry["protocol"] == "holdout:wheretheressmoke"


def test_published_numbers_shown_beside_the_run_only_when_settings_match():
    entry = {"source": "Someone (2030). A paper.", "url": "https://example.org/paper",
             "protocol": "holdout:wheretheressmoke", "subjects": ["UTS03"], "models": ["org/model-x"],
             "score": "r", "values": {"org/model-x": {"UTS03": 0.123}}, "note": "Table 1."}
    text, table = published_note("holdout:wheretheressmoke", ["UTS03"], "/local/copy/Model-X", {"UTS03": 0.1},
                                 [entry])
    assert "shown beside the run's" in text and "Someone (2030)" in text
    assert table.to_dict("records") == [{"source": "Someone (2030)", "subject": "UTS03", "model": "org/model-x",
                                         "score": "r", "published": 0.123, "this run": 0.1}]
    for protocol, subjects, model in [("holdout:wheretheressmoke", ["UTS01"], "org/model-x"),
                                      ("holdout:wheretheressmoke", ["UTS03"], "org/model-y")]:
        text, table = published_note(protocol, subjects, model, {subjects[0]: 0.1}, [entry])
        assert table is None and "No comparable published number" in text
    assert published_note("runs", ["UTS03"], "org/model-x", {"UTS03": 0.1}, [entry]) == ("", None)


def test_holdout_section_only_for_holdout_results():
    res = EncodingResults(r=np.array([[0.2, -0.4]]), r2=np.zeros((1, 2)), layers=[0], targets=["v0", "v1"],
                          noise_ceiling=np.array([0.5, 0.8]),
                          settings={"cv": "holdout:wheretheressmoke", "cv_folds": [[100, 50]]},
                          provenance={"subject": "UTS03", "model": "m", "holdout_repeats": 10})
    np.testing.assert_allclose(res.holdout_scores()["cc_norm"], [0.4, -0.5])
    section = holdout_section([res], LEBEL_PUBLISHED)
    assert "mean of its 10 repeated presentations" in section.text
    assert "No comparable published number" in section.text and "arXiv:2305.11863" in section.text
    row = section.tables[0][1].iloc[0]
    np.testing.assert_allclose([row["mean r"], row["mean r·|r|"], row["total r·|r|"], row["mean cc_norm"]],
                               [-0.1, -0.06, -0.12, -0.05])
    res.settings["cv"] = "runs"
    assert holdout_section([res], LEBEL_PUBLISHED) is None


# ---------------------------------------------------------------------- the LeBel miniature
@pytest.mark.slow
@pytest.mark.parametrize("source, repeats", [("preprocessed", None), ("bold", "mean")])
def test_protocol_config_on_the_lebel_miniature(tmp_path, layouts, source, repeats):  # noqa: F811
    stories = ["adollshouse", "inamoment", "wheretheressmoke"]
    root = make_miniature("lebel2023", tmp_path / "mini", subjects=["UTS03"], runs=stories, layouts=layouts,
                          n_voxels=6)
    model = tmp_path / "tiny"
    tiny_gpt2(n_layer=2, n_embd=32, n_positions=128, path=model)
    overrides = {"model.name": str(model), "model.context_tokens": 16, "model.stride": 8, "model.device": "cpu",
                 "model.dtype": "float32", "encoding.alphas": {"logspace": [0, 6, 7]},
                 "encoding.n_permutations": 20, "output.dir": str(tmp_path / "out"),
                 "dataset.args": {"root": str(root), "subject": "UTS03", "source": source,
                                  "stories": stories, "repeats": repeats}}
    out = run_pipeline(ROOT / "analyses" / "lebel2023_protocol.yaml", overrides=overrides, verbose=False)
    res = EncodingResults.load(out.results["UTS03"])
    data = load_lebel2023(root, subject="UTS03", stories=stories, source=source, repeats=repeats)
    smoke = data.responses["UTS03"]["wheretheressmoke"]
    assert res.settings["cv"] == "holdout:wheretheressmoke"
    n_train = sum(data.responses["UTS03"][s].n_samples for s in stories[:2])
    assert res.settings["cv_folds"] == [[n_train, smoke.n_samples]]
    assert res.provenance["holdout_repeats"] == 10 and smoke.info["repeats"].shape[0] == 10
    np.testing.assert_allclose(res.noise_ceiling, noise_ceiling_repeats(smoke.info["repeats"]), rtol=1e-10)
    scores = res.holdout_scores()
    shared = scores["cc_max"] > 0  # raw miniature: some voxels share no signal across runs (ceiling 0)
    np.testing.assert_allclose(scores["cc_norm"][shared], (scores["r"] / scores["cc_max"])[shared])
    assert shared.sum() >= 3 and np.isnan(scores["cc_norm"][~shared]).all() and scores["r"].max() > 0.1
    page = html.unescape(re.sub(r"<[^>]+>", " ", out.report.read_text()))
    assert "Fixed train/test protocol (cv: holdout:wheretheressmoke)" in page
    assert "No comparable published number" in page and "arXiv:2305.11863" in page


def test_raw_repeats_load_as_their_mean_for_the_protocol(mini_lebel):  # noqa: F811
    runs = load_lebel2023(mini_lebel, subject="UTS01", source="bold", stories=["adollshouse", "wheretheressmoke"])
    mean = load_lebel2023(mini_lebel, subject="UTS01", source="bold", stories=["adollshouse", "wheretheressmoke"],
                          repeats="mean")
    keys = [f"wheretheressmoke_run-{i}" for i in range(1, 11)]
    assert sorted(mean.responses["UTS01"]) == ["adollshouse", "wheretheressmoke"]
    assert sorted(mean.transcripts) == ["adollshouse", "wheretheressmoke"]
    smoke = mean.responses["UTS01"]["wheretheressmoke"]
    stack = np.stack([runs.responses["UTS01"][k].data for k in keys])
    np.testing.assert_allclose(smoke.info["repeats"], stack)
    np.testing.assert_allclose(smoke.data, stack.mean(0), rtol=1e-6)
    assert smoke.info["repeat_runs"] == keys and smoke.run == "wheretheressmoke"
    np.testing.assert_array_equal(mean.responses["UTS01"]["adollshouse"].data,
                                  runs.responses["UTS01"]["adollshouse"].data)


def test_repeats_option_errors(mini_lebel):  # noqa: F811
    with pytest.raises(ValueError, match=r"repeats='runs': the preprocessed ds003020 file .* use source='bold'"):
        load_lebel2023(mini_lebel, subject="UTS01", stories=["wheretheressmoke"], repeats="runs")
    with pytest.raises(ValueError, match=r"Invalid value for 'repeats'.*'runs', 'mean'.*'median'"):
        load_lebel2023(mini_lebel, subject="UTS01", source="bold", repeats="median")
    a = Response(np.zeros((5, 2)), tr=2.0, run="s_run-1")
    b = Response(np.zeros((4, 2)), tr=2.0, run="s_run-2")
    with pytest.raises(DatasetError, match=r"the repeats of story 's' differ in shape \(s_run-1: \(5, 2\), "
                                           r"s_run-2: \(4, 2\)\).*repeats='runs'"):
        _mean_of_repeats({"s_run-1": a, "s_run-2": b}, {}, lambda story: None)
