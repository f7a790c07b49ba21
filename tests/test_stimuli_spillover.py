"""Spill-over regressors of word-level (stimulus-row) data: the previous words' features, within a story."""
from __future__ import annotations

import numpy as np
import pytest
from _encoding_fixtures import _one_blas_thread  # noqa: F401

from neuroenc.align import make_stimulus_design
from neuroenc.align.stimuli import add_spillover, parse_spillover, spillover_rows, zscore_columns
from neuroenc.features import StimulusFeatures
from neuroenc.stimuli.responses import StimulusResponses

GROUPS = ["a", "a", "a", "b", "b", "a"]  # the last row is story a's 4th word, after story b's


def _design(spillover, layer=None, groups=GROUPS):
    n = len(groups)
    layer = np.arange(n, dtype=float)[:, None] ** 2 if layer is None else layer
    fs = StimulusFeatures({0: layer, 1: layer + 1.0}, [f"w{i}" for i in range(n)], [f"word{i}" for i in range(n)],
                          groups, name="words", model="m", n_model_layers=2)
    y = np.random.default_rng(0).standard_normal((n, 1))
    return make_stimulus_design(fs, StimulusResponses(y, fs.ids, ["rt"], "readers"), spillover=spillover)


def test_previous_rows_stay_within_the_story():
    # row 5 (story a) follows row 2, not row 4 (story b); a story's first word has none
    np.testing.assert_array_equal(spillover_rows(GROUPS, 6, 3),
                                  [[-1, 0, 1, -1, 3, 2], [-1, -1, 0, -1, -1, 1], [-1, -1, -1, -1, -1, 0]])
    np.testing.assert_array_equal(spillover_rows(None, 3, 1), [[-1, 0, 1]])  # no groups: one sequence
    x = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    np.testing.assert_array_equal(add_spillover(x, np.array([[-1, 0, 1], [-1, -1, 0]])),
                                  [[1, 10, 0, 0, 0, 0], [2, 20, 1, 10, 0, 0], [3, 30, 2, 20, 1, 10]])


def test_layers_and_baseline_get_the_previous_words():
    design = _design({"baseline": 2, "layers": 1})
    z = zscore_columns(np.arange(6.0) ** 2)[:, 0]
    X = design.X(0)
    assert X.shape == (6, 2) and design.n_features(0) == 2
    np.testing.assert_allclose(X[:, 0], z)
    np.testing.assert_allclose(X[:, 1], [0.0, z[0], z[1], 0.0, z[3], z[2]])  # zeros: no previous word
    length = np.array([3.0, 5.0, 2.0, 7.0, 4.0, 6.0])
    nuisance = design.nuisance({"length": length, "position": np.arange(6.0)})
    assert list(nuisance) == ["length", "position"]  # a regressor and its spill-over: one entry
    zl = zscore_columns(length)[:, 0]
    np.testing.assert_allclose(nuisance["length"], np.stack([
        zl, [0, zl[0], zl[1], 0, zl[3], zl[2]], [0, 0, zl[0], 0, 0, zl[1]]], axis=1))
    assert design.settings["spillover"]["baseline"] == 2 and design.settings["spillover"]["layers"] == 1
    assert "spill-over 2 (baseline) / 1 (layers)" in repr(design)
    # one number for both, and the command line's spelling
    assert _design(1).spillover == {"baseline": 1, "layers": 1}
    assert _design("layers=3").spillover == {"baseline": 0, "layers": 3}


def test_without_spillover_the_design_is_unchanged():
    for off in (None, 0, {"baseline": 0}):
        design = _design(off)
        np.testing.assert_allclose(design.X(1), zscore_columns(np.arange(6.0) ** 2 + 1))
        assert design.nuisance({"length": np.arange(6.0)})["length"].shape == (6, 1)
        assert "spillover" not in design.settings and "spill-over" not in repr(design)


@pytest.mark.parametrize("value, match", [
    ({"layer": 1}, r"Invalid key\(s\) \['layer'\] of 'spillover'.*the keys are \['baseline', 'layers'\]"),
    ({"layers": 4}, r"Invalid value for 'spillover.layers': 4; the previous stimuli to add, an int 0-3"),
    ({"baseline": 1.5}, r"Invalid value for 'spillover.baseline': 1.5"),
    ("baseline=x", r"Invalid value for 'spillover': 'baseline=x'"),
])
def test_spillover_bad_input(value, match):
    with pytest.raises(ValueError, match=match):
        parse_spillover(value)
    with pytest.raises(ValueError, match="spillover"):
        _design(value)


def test_spillover_recovers_a_previous_word_effect():
    """Reading times driven by the previous word's features (a spill-over effect): the fit with
    spill-over columns recovers them, the fit without cannot."""
    from neuroenc.encoding.stimulus_fit import fit_stimuli

    rng = np.random.default_rng(3)
    n_stories, per_story, p = 12, 40, 6
    groups = np.repeat([f"story-{g}" for g in range(n_stories)], per_story)
    layer = rng.standard_normal((n_stories * per_story, p))
    prev = add_spillover(layer, spillover_rows(groups, len(groups), 1))[:, p:]
    rt = prev @ rng.standard_normal((p, 1)) + 0.5 * rng.standard_normal((len(groups), 1))
    ids = [f"w{i}" for i in range(len(groups))]
    fs = StimulusFeatures({0: layer}, ids, ids, list(groups), name="words", model="m", n_model_layers=1)
    resp = StimulusResponses(rt, ids, ["rt"], "readers")
    kwargs = dict(n_permutations=0, alphas=np.logspace(-1, 3, 5), cv="group-kfold:4")
    without = fit_stimuli(fs, resp, **kwargs)
    with_spill = fit_stimuli(fs, resp, spillover={"layers": 1}, **kwargs)
    assert without.r[0, 0] < 0.2 < 0.8 < with_spill.r[0, 0]
    assert with_spill.settings["spillover"]["layers"] == 1 and "spillover" not in without.settings


def test_spillover_is_a_setting_of_stimulus_level_configs():
    from neuroenc.pipeline.config import ConfigError, config_from_dict, section_settings
    from neuroenc.pipeline.tasks import _design as pipeline_design

    assert "spillover" in section_settings("encoding", "stimuli")
    assert "spillover" not in section_settings("encoding", "story")
    values = {"name": "rt", "dataset": {"loader": "naturalstories_rt"}, "output": {"dir": "out"},
              "encoding": {"spillover": {"baseline": 2, "layers": 1}}}
    config = config_from_dict(values)
    n = len(GROUPS)
    fs = StimulusFeatures({0: np.arange(n, dtype=float)[:, None]}, [f"w{i}" for i in range(n)], list("abcdef"),
                          GROUPS, name="words", model="m", n_model_layers=1)
    resp = StimulusResponses(np.arange(n, dtype=float)[:, None], fs.ids, ["rt"], "readers")
    design = pipeline_design(config, {"stimuli": fs}, {"stimuli": resp})
    assert design.spillover == {"baseline": 2, "layers": 1} and design.X(0).shape == (n, 2)
    for bad in ([1, 2], {"layers": 5}, {"layer": 1}):
        with pytest.raises(ConfigError, match=r"encoding.spillover must be null, an int in \[0, 3\] or "
                                              r"\{baseline: N, layers: N\} \(N in 0-3\)"):
            config_from_dict({**values, "encoding": {"spillover": bad}})


def test_spillover_on_the_command_line(capsys):
    from neuroenc.cli import build_parser

    parser = build_parser()
    argv = ["fit", "--features", "f.h5", "--responses", "r.csv", "--out", "o.h5", "--spillover"]
    assert parser.parse_args(argv + ["baseline=2,layers=1"]).spillover == {"baseline": 2, "layers": 1}
    assert parser.parse_args(argv + ["1"]).spillover == 1
    with pytest.raises(SystemExit):
        parser.parse_args(argv + ["layers=4"])
    assert "must be none, an int in [0, 3] or baseline=N,layers=N (N in 0-3)" in capsys.readouterr().err
