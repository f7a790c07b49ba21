"""Settings have one source: the run config's sections are the library's parameters.

The ``model``, ``alignment`` and ``encoding`` sections are read from the signatures, declared
constraints and numpydoc of FeatureExtractor, make_fmri_design/make_meg_design and
fit_encoding; values are type-checked from the same constraints; a value not given is not
passed, so the library's default applies, and results record the effective values.
"""
from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from neuroenc.align import make_fmri_design, make_meg_design
from neuroenc.encoding import LayerSweep, fit_encoding
from neuroenc.features import FeatureExtractor, FeatureSet
from neuroenc.pipeline import ConfigError, load_config
from neuroenc.pipeline.config import ENCODING_ONLY, MODEL_ONLY, config_from_dict, section_settings
from neuroenc.responses import Response

ROOT = Path(__file__).resolve().parents[1]
#: The library calls behind each config section.
OWNERS = {"model": [FeatureExtractor], "alignment": [make_fmri_design, make_meg_design],
          "encoding": [fit_encoding]}
CONFIG_ONLY = {"model": MODEL_ONLY, "alignment": {}, "encoding": ENCODING_ONLY}


def _signature_defaults(func):
    target = func.__init__ if inspect.isclass(func) else func
    return {name: p.default for name, p in inspect.signature(target).parameters.items()}


def _config(**sections):
    return config_from_dict({"dataset": {"loader": "alice"}, **sections}, source="run.yaml")


@pytest.mark.parametrize("section", ["model", "alignment", "encoding"])
def test_config_defaults_are_the_library_defaults(section):
    config = _config()
    settings = section_settings(section)
    library = {}
    for owner in OWNERS[section]:
        for name, default in _signature_defaults(owner).items():
            library.setdefault(name, []).append(default)
    checked = 0
    for name, setting in settings.items():
        if name in CONFIG_ONLY[section]:
            assert name not in library, f"{section}.{name} is config-only but also a library parameter"
        else:
            assert name in library, f"{section}.{name} is no parameter of {OWNERS[section]}"
            for default in library[name]:  # every call that takes it has the same default
                assert np.all(setting.default == default) if not isinstance(default, tuple) \
                    else tuple(setting.default) == default, (section, name)
            checked += 1
        effective = getattr(getattr(config, section), name)
        assert effective is setting.default or np.all(effective == setting.default)
        # the default is a value the setting allows (the declaration matches the signature)
        assert setting.is_valid(setting.default), (section, name, setting.default, setting.expected())
    assert checked >= {"model": 14, "alignment": 15, "encoding": 14}[section]
    assert config.to_dict()[section] == {}  # nothing given
    assert config.to_dict(effective=True)[section] == {k: s.default for k, s in settings.items()}


def test_sections_use_the_library_constraints():
    model = section_settings("model")
    for name, constraints in FeatureExtractor._parameter_constraints.items():
        if name in model:
            assert len(model[name].constraints) == len(constraints)
    assert model["context_tokens"].expected() == "an int >= 0 or 'full'"
    enc = section_settings("encoding")
    # the sweep's, and what the results keep beside the scores (the encoders, Brain-Score's metric, TRFs)
    assert set(fit_encoding._parameter_constraints) - {"save_weights", "scoring", "trf"} <= set(
        LayerSweep._parameter_constraints)
    assert enc["permutation"].expected() == "'auto', 'refit', 'circular' or 'block'"
    # fit_encoding's docstring leaves cv, alphas... to LayerSweep: the help text comes from there
    assert enc["cv"].doc.startswith("Outer CV") and enc["cv"].owner == "fit_encoding"


def test_fit_encoding_and_layer_sweep_share_their_defaults():
    sweep, fit = _signature_defaults(LayerSweep), _signature_defaults(fit_encoding)
    shared = (set(sweep) & set(fit)) - {"self", "verbose"}
    assert {"n_permutations", "random_state", "alphas", "cv", "n_blocks", "compare"} <= shared
    for name in shared:
        assert sweep[name] == fit[name], name
    assert (fit["n_permutations"], fit["random_state"]) == (1000, 0)


@pytest.mark.parametrize("section, values, message", [
    ("model", {"context_tokens": "abc"},
     r"model.context_tokens in 'run.yaml' must be an int >= 0 or 'full'; got 'abc' \(str\)"),
    ("model", {"context_tokens": -1}, r"model.context_tokens in 'run.yaml' must be an int >= 0 or 'full'; got -1"),
    ("model", {"context_tokens": True}, r"model.context_tokens .* got True \(bool\)"),
    ("alignment", {"delays": 1}, r"alignment.delays in 'run.yaml' must be null or a list of ints; got 1 \(int\)"),
    ("alignment", {"delays": ["a"]},
     r"alignment.delays in 'run.yaml' must be null or a list of ints; got \['a'\] \(list\)"),
    ("alignment", {"trim": [1, 2, 3]}, r"alignment.trim .* must be an int >= 0 or a list of 2 ints >= 0"),
    ("alignment", {"hrf": "canonical"}, r"Invalid value for 'alignment.hrf' in 'run.yaml'. Allowed values are "
                                        r"null, 'glover', 'spm', but got 'canonical' instead."),
    ("alignment", {"window": 0}, r"alignment.window in 'run.yaml' must be a positive number; got 0"),
    ("encoding", {"n_permutations": "many"}, r"encoding.n_permutations in 'run.yaml' must be an int >= 0"),
    ("encoding", {"cv": 1}, r"encoding.cv in 'run.yaml' must be 'auto', 'runs', 'blocks', an int >= 2, kfold:K, "
                            r"group-kfold:K \(K >= 2 folds\) or holdout:RUN \(.*\); got 1"),
    ("encoding", {"cv": "kfold:1"}, r"encoding.cv .* kfold:K, group-kfold:K \(K >= 2 folds\) or holdout:RUN .*; "
                                    r"got 'kfold:1'"),
    ("encoding", {"alphas": {"logspace": [0, 7]}}, r"encoding.alphas .* \{logspace: \[start, stop, num\]\}"),
    ("encoding", {"blas_threads": 0}, r"encoding.blas_threads in 'run.yaml' must be null or an int >= 1; got 0"),
    ("encoding", {"n_permutaions": 5}, r"unknown key encoding.n_permutaions in 'run.yaml'; did you mean "
                                       r"encoding.n_permutations\?"),
])
def test_values_are_type_checked(section, values, message):
    with pytest.raises(ConfigError, match=message):
        _config(**{section: values})


def test_type_errors_from_a_file_and_from_set(tmp_path, capsys):
    from neuroenc.cli import main

    path = tmp_path / "run.yaml"
    path.write_text("dataset: {loader: alice}\nmodel:\n  context_tokens: abc\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"model.context_tokens in '.*run.yaml' must be an int >= 0 or "
                                          r"'full'; got 'abc'"):
        load_config(path)
    path.write_text("dataset: {loader: alice}\n", encoding="utf-8")
    assert main(["run", str(path), "--set", "alignment.delays=[a]", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "alignment.delays in" in err and "must be null or a list of ints; got ['a']" in err


def test_duplicate_keys_are_errors(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("dataset: {loader: alice}\nmodel:\n  layers: all\nalignment: {}\nmodel:\n  layers: [0]\n")
    with pytest.raises(ConfigError, match=r"run.yaml' gives the key 'model' twice \(lines 2 and 5\); YAML "
                                          r"would keep only the last one"):
        load_config(path)
    path.write_text("dataset: {loader: alice}\nalignment:\n  delays: [1, 2]\n  trim: [0, 0]\n  delays: [3]\n")
    with pytest.raises(ConfigError, match=r"gives the key 'delays' twice \(lines 3 and 5\)"):
        load_config(path)
    # the same key in two different sections is fine, and so is a YAML merge key
    path.write_text("dataset: {loader: alice}\nmodel: {dtype: auto}\nencoding: &e {dtype: auto}\n"
                    "x: &base {a: 1}\n")
    with pytest.raises(ConfigError, match="unknown section 'x'"):
        load_config(path)


def test_config_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("name: caf\u00e9\ndataset: {loader: alice}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"config file '.*latin.yaml' is not UTF-8 text \(byte 9: "
                                          r"b'\\xe9'\); save it as UTF-8"):
        load_config(path)
    path.write_bytes("\ufeffname: caf\u00e9\ndataset: {loader: alice}\n".encode("utf-8"))  # BOM: fine
    assert load_config(path).name == "caf\u00e9"


def _tiny_run(rng, n_tr=60, tr=2.0):
    onsets = np.sort(rng.uniform(2.0, n_tr * tr - 6.0, 120))
    fs = FeatureSet({0: rng.standard_normal((120, 3)).astype(np.float32)}, onsets, onsets + 0.3, run="r1",
                    model="toy", n_model_layers=1)
    return {"r1": fs}, {"r1": Response(rng.standard_normal((n_tr, 2)), tr=tr, run="r1")}


def test_config_hrf_uses_delay_zero_unless_delays_are_given(rng):
    from neuroenc.pipeline.tasks import _design

    feats, resp = _tiny_run(rng)
    assert _design(_config(), feats, resp).delays == (1, 2, 3, 4)
    assert _design(_config(alignment={"hrf": "glover"}), feats, resp).delays == (0,)
    assert _design(_config(alignment={"hrf": "glover", "delays": [0, 1]}), feats, resp).delays == (0, 1)


def test_only_given_values_are_passed_and_results_record_effective_values():
    from neuroenc.pipeline.tasks import extractor_params, mapping_params, results_key

    config = _config(model={"context_tokens": 64}, alignment={"reference": "midpoint"},
                     encoding={"alphas": {"logspace": [0, 2, 3]}})
    assert extractor_params(config) == {"context_tokens": 64, "reference": "midpoint"}
    assert config.encoding.kwargs(fit_encoding) == {"alphas": pytest.approx(np.array([1.0, 10.0, 100.0]))}
    assert mapping_params(config) == {} and mapping_params(_config(encoding={"random_state": 3})) == {
        "random_state": 3}
    effective = config.to_dict(effective=True)
    assert effective["encoding"]["n_permutations"] == 1000 and effective["model"]["pooling"] == "last"
    assert effective["encoding"]["alphas"] == {"logspace": [0, 2, 3]}
    # a config that spells out a default and one that leaves it out are the same fit
    spelt = _config(model={"context_tokens": 64, "pooling": "last"}, alignment={"reference": "midpoint"},
                    encoding={"alphas": {"logspace": [0, 2, 3]}, "n_permutations": 1000})
    assert results_key(config, {}, data_hash="x") == results_key(spelt, {}, data_hash="x")
    assert results_key(config, {}, data_hash="x") != results_key(
        _config(model={"context_tokens": 64}, encoding={"n_permutations": 10}), {}, data_hash="x")
    # reading the given values back gives the same config
    assert config_from_dict(config.to_dict(), source="run.yaml").to_dict() == config.to_dict()


def test_context_tokens_has_one_bound():
    from neuroenc.commands.extract import extractor_settings
    from neuroenc.features.context import CONTEXT_TOKENS, check_context_tokens

    assert CONTEXT_TOKENS[0].left == 0
    assert check_context_tokens(0) == 0 and _config(model={"context_tokens": 0}).model.context_tokens == 0
    assert extractor_settings()["context_tokens"].from_text("0") == 0
    with pytest.raises(ValueError, match="'context_tokens' must be >= 0, got -1"):
        check_context_tokens(-1)
    with pytest.raises(ConfigError, match="must be an int >= 0 or 'full'"):
        _config(model={"context_tokens": -1})
    with pytest.raises(Exception, match="must be an int >= 0 or 'full'"):
        extractor_settings("transcript")["context_tokens"].from_text("-1")
    # the stimulus extractor's: the same bound (or None, its default: not given)
    with pytest.raises(Exception, match="must be an int >= 0 or 'full'"):
        extractor_settings()["context_tokens"].from_text("-1")
    assert extractor_settings("stimuli")["context_tokens"].expected() == "an int >= 0 or 'full'"
    assert extractor_settings("stimuli")["context_tokens"].is_valid(None)


def test_fold_count_and_lags_come_from_encoding_and_align(rng):
    from neuroenc.align.events import lag_samples
    from neuroenc.pipeline.distributed import _fit_shape, _n_lags

    size = {"runs": ["a"], "n_samples": 300, "n_targets": 6, "response_bytes": 0,
            "groups": np.zeros(300, dtype=int)}
    layouts = {"a": ([0, 1], 100, 8), "b": ([0, 1], 100, 8), "c": ([0, 1], 100, 8)}
    fmri = Response(np.zeros((300, 1)), tr=2.0, run="a")
    size["first"] = fmri
    shape, _ = _fit_shape(_config(), size, layouts)
    assert shape.n_folds == 5 and shape.n_features == 8 * 4  # one run: 5 blocks; delays 1-4
    shape, _ = _fit_shape(_config(encoding={"n_blocks": 3}, alignment={"hrf": "spm"}), size, layouts)
    assert shape.n_folds == 3 and shape.n_features == 8  # the HRF carries the lag: delay 0
    three = dict(size, runs=["a", "b", "c"], groups=np.repeat([0, 1, 2], 100))
    assert _fit_shape(_config(), three, layouts)[0].n_folds == 3  # leave-one-run-out
    meg = Response(np.zeros((300, 1)), sfreq=1000.0, run="a")
    config = _config(alignment={"tmin": -0.1, "tmax": 0.6, "decim": 3})
    assert _n_lags(config, meg) == len(lag_samples(-0.1, 0.6, 1000.0 / 3)) == 234
    # the lags make_meg_design builds (-100 ms .. 601 ms, rounded): 702, not int(0.7002 * 1000) + 1
    config = _config(alignment={"tmin": -0.0996, "tmax": 0.6006})
    assert _n_lags(config, meg) == 702


def test_alice_config_has_one_source_and_every_config_loads():
    packaged = ROOT / "neuroenc" / "pipeline" / "configs" / "alice_layers.yaml"
    assert (ROOT / "analyses" / "alice_layers.yaml").read_bytes() == packaged.read_bytes()
    for path in [packaged, *sorted((ROOT / "analyses").glob("*.yaml"))]:
        config = load_config(path)
        assert config.dataset.loader and config.model.name == "smollm2-135m", path


# ---------------------------------------------------------------------- stimulus-level data sets
def _stimulus_config(source="run.yaml", **sections):
    return config_from_dict({"dataset": {"loader": "stimuli"}, **sections}, source=source)


def test_stimulus_config_sections_are_the_stimulus_calls():
    """A stimulus-level loader's model section is StimulusExtractor's and its encoding section
    fit_stimuli's: their defaults, their keys and values; no alignment (no time)."""
    from neuroenc.encoding.stimulus_fit import fit_stimuli
    from neuroenc.features import StimulusExtractor

    config = _stimulus_config()
    assert config.kind == "stimuli" and _config().kind == "story"
    extractor, fit = _signature_defaults(StimulusExtractor), _signature_defaults(fit_stimuli)
    assert (config.model.pooling, config.model.prepend_bos, config.model.context) == ("mean", "auto", "none")
    assert config.model.context_tokens is None and config.model.padding_side == "right"
    for name, setting in section_settings("model", "stimuli").items():
        if name not in MODEL_ONLY:
            assert setting.owner == "StimulusExtractor" and setting.default == extractor[name], name
            assert setting.is_valid(setting.default), name
    for name, setting in section_settings("encoding", "stimuli").items():
        if name not in ENCODING_ONLY:
            assert setting.owner == "fit_stimuli" and np.all(setting.default == fit[name]), name
    assert section_settings("alignment", "stimuli") == {}
    effective = config.to_dict(effective=True)
    assert effective["model"]["pooling"] == "mean" and effective["alignment"] == {}
    assert effective["encoding"]["n_permutations"] == 1000 and "gap" not in effective["encoding"]
    # only what is given is passed to the extractor and the fit
    given = _stimulus_config(model={"context": "group", "context_tokens": 64},
                             encoding={"cv": "group-kfold:3", "baseline": ["length"]})
    assert given.model.kwargs(StimulusExtractor) == {"context": "group", "context_tokens": 64}
    assert given.encoding.kwargs(fit_stimuli, exclude=("baseline",)) == {"cv": "group-kfold:3"}
    assert load_config(ROOT / "analyses" / "naturalstories_reading_times.yaml").model.given["pooling"] == "mean"


@pytest.mark.parametrize("sections, message", [
    ({"model": {"policy": "window"}},
     r"unknown key model.policy in 'run.yaml': it applies to story data sets \(FeatureExtractor\), and "
     r"dataset.loader 'stimuli' is one of the stimulus-level data sets \(StimulusExtractor\); drop "
     r"model.policy. Allowed keys: \['name', 'layers', 'pooling', 'context'"),
    ({"model": {"right_context": 2}}, r"unknown key model.right_context .* applies to story data sets"),
    ({"model": {"pooling": "first"}},
     r"Invalid value for 'model.pooling' in 'run.yaml'. Allowed values are 'mean', 'last', 'last-word', but got "
     r"'first' instead: 'first' applies to story data sets \(FeatureExtractor\)"),
    ({"model": {"context_tokens": 32}}, r"model settings in 'run.yaml': context_tokens and stride apply to "
                                        r"context='group'"),
    ({"model": {"padding": "left"}}, r"unknown key model.padding in 'run.yaml'; did you mean model.padding_side\?"),
    ({"alignment": {"delays": [1, 2]}}, r"the alignment section in 'run.yaml' applies to story data sets \(words "
                                        r"with times\); dataset.loader 'stimuli' is stimulus-level"),
    ({"encoding": {"gap": 3}}, r"unknown key encoding.gap .* applies to story data sets \(fit_encoding\)"),
    ({"encoding": {"cv": "runs"}}, r"encoding.cv in 'run.yaml' must be 'auto', kfold:K or group-kfold:K \(K >= 2 "
                                   r"folds\); got 'runs' \(str\): 'runs' applies to story data sets \(fit_encoding\)"),
])
def test_stimulus_config_refuses_story_settings(sections, message):
    with pytest.raises(ConfigError, match=message):
        _stimulus_config(**sections)


@pytest.mark.parametrize("sections, message", [
    ({"model": {"context": "group"}}, r"unknown key model.context in 'run.yaml': it applies to stimulus-level data "
                                      r"sets \(StimulusExtractor\), and dataset.loader 'alice' is one of the story"),
    ({"model": {"pooling": "last-word"}}, r"but got 'last-word' instead: 'last-word' applies to stimulus-level data "
                                          r"sets \(StimulusExtractor\)"),
])
def test_story_config_refuses_stimulus_settings(sections, message):
    with pytest.raises(ConfigError, match=message):
        _config(**sections)


def test_custom_loader_kind_is_resolved_once_it_may_be_imported(tmp_path, monkeypatch):
    """A ``module:function`` loader is imported to tell its kind only with the opt-in: without
    it the config takes either kind's keys, and the run resolves them after the trust check."""
    import sys

    from neuroenc.pipeline.config import resolve_kind

    monkeypatch.delenv("NEUROENC_ALLOW_CODE", raising=False)
    (tmp_path / "my_sentences.py").write_text(
        "def load(**kwargs):\n    raise RuntimeError('not called')\nload.stimulus_level = True\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    values = {"dataset": {"loader": "my_sentences:load"}, "model": {"context": "group", "pooling": "last-word"}}
    config = config_from_dict(values)
    assert config.kind == "either" and "my_sentences" not in sys.modules  # no code ran
    with pytest.raises(ConfigError, match="runs code of the config's choosing"):
        from neuroenc.pipeline.trust import check_trust

        check_trust(config)
    config.allow_code = True
    resolved = resolve_kind(config)
    assert resolved.kind == "stimuli" and resolved.model.pooling == "last-word" and resolved.model.prepend_bos == "auto"
    assert config_from_dict(values, allow_code=True).kind == "stimuli"
    wrong = config_from_dict({"dataset": {"loader": "my_sentences:load"}, "model": {"policy": "window"}})
    wrong.allow_code = True
    with pytest.raises(ConfigError, match="unknown key model.policy: it applies to story data sets"):
        resolve_kind(wrong)


def test_design_records_the_reference_it_used(rng):
    """A config that gives no alignment.reference passes none (the features keep their own);
    the design's settings record the reference the rows sit at, not the missing value."""
    from neuroenc.pipeline.tasks import _design

    feats, resp = _tiny_run(rng)
    assert _design(_config(), feats, resp).settings["reference"] == "onset"
    assert _design(_config(alignment={"reference": "midpoint"}), feats, resp).settings["reference"] == "midpoint"
