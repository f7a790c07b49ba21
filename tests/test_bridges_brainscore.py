"""The Brain-Score bridge: regions -> layers from encoding results, a neuroenc model as an
ArtificialSubject, and Brain-Score-style assemblies as stimulus-level data sets."""
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose

from neuroenc.bridges import brainscore as bridge
from neuroenc.encoding import EncodingResults
from neuroenc.encoding.compare import compare_layers


def _results(rng, comparison=True):
    """5 layers x 3 targets: A best at layer 1, B at layer 3 (layer 4 nearly as good), C at 4."""
    r = np.full((5, 3), 0.05)
    r[1, 0] = 0.5
    r[3, 1], r[4, 1] = 0.50, 0.499
    r[4, 2] = 0.4
    draws = rng.normal(0, 0.01, (500, 5, 3))
    return EncodingResults(r=r, r2=r ** 2, layers=np.arange(5), targets=["A", "B", "C"],
                           comparison=compare_layers(r, draws) if comparison else None,
                           provenance={"model": "tiny"})


def test_region_layers_best_and_set(rng):
    res = _results(rng)
    assert bridge.region_layers(res, ["A"]) == [1]
    assert bridge.region_layers(res, ["B"]) == [3]
    assert bridge.region_layers(res, ["A", "C"]) == [1, 4]
    assert bridge.region_layers(res, ["B"], choice="set") == [3, 4]  # 0.499 is not reliably worse
    assert bridge.region_layers(res, ["A"], choice="set") == [1]
    assert bridge.map_regions(res) == {"language_system": [1, 3, 4]}
    assert bridge.map_regions(res, {"language_system_left_hemisphere": ["A"]}, "set") == {
        "language_system_left_hemisphere": [1]}


def test_region_layers_errors(rng):
    res = _results(rng, comparison=False)
    with pytest.raises(ValueError, match=r"region targets \['Z'\] are not in the results; their targets are"):
        bridge.region_layers(res, ["Z"])
    with pytest.raises(ValueError, match=r"choice='set' needs the layer comparison"):
        bridge.region_layers(res, ["A"], choice="set")
    with pytest.raises(ValueError, match=r"Invalid value for 'choice'"):
        bridge.region_layers(res, ["A"], choice="all")
    res.r[:, 2] = np.nan
    with pytest.raises(ValueError, match=r"target\(s\) \['C'\] have no finite score"):
        bridge.region_layers(res, ["C"])


def test_subject_without_brainscore_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "brainscore_language", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "brainscore_language.artificial_subject", None)
    monkeypatch.setattr(bridge, "_SUBJECT_CLASS", None)
    with pytest.raises(ImportError,
                       match=r"needs the package 'brainscore-language'.*pip install neuroenc\[brainscore\]"):
        from neuroenc.bridges.brainscore import NeuroencSubject  # noqa: F401
    with pytest.raises(AttributeError, match="no attribute 'Other'"):
        bridge.Other  # noqa: B018


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from neuroenc.testing import tiny_gpt2

    path = tmp_path_factory.mktemp("tiny-gpt2-bs")
    tiny_gpt2(n_layer=4, n_embd=16, n_positions=64, path=path)
    return path


TEXTS = ["the cat sat on the mat", "and then it slept", "the end"]


def _check_digest(subject, tiny_model, layers):
    from neuroenc.features.stimuli import StimulusExtractor
    from neuroenc.stimuli import StimulusSet

    with pytest.raises(RuntimeError, match="call start_neural_recording"):
        subject.digest_text(TEXTS)
    with pytest.raises(ValueError, match=r"no layers are mapped to recording target 'elsewhere'"):
        subject.start_neural_recording("elsewhere", "fMRI")
    subject.start_neural_recording("language_system", "fMRI")
    out = subject.digest_text(TEXTS)["neural"]
    assert out.dims == ("presentation", "neuroid") and out.shape == (3, 16 * len(layers))
    assert list(out["stimulus"].values) == TEXTS and list(out["stimulus_id"].values) == [0, 1, 2]
    assert sorted(set(out["layer"].values.tolist())) == layers
    # the same features as neuroenc's own extraction: each part after the earlier ones, last token
    ref = StimulusExtractor(tiny_model, layers=layers, pooling="last", context="group").transform(
        StimulusSet(["a", "b", "c"], TEXTS, groups=["g"] * 3))
    for layer in layers:
        assert_allclose(out.values[:, out["layer"].values == layer], ref[layer], rtol=1e-5, atol=1e-6)
    single = subject.digest_text(TEXTS[0])["neural"]
    assert_allclose(single.values[0], out.values[0], rtol=1e-5, atol=1e-6)  # the first part has no context
    return out


def test_subject_core_digest_matches_extraction(rng, tiny_model):
    pytest.importorskip("xarray")
    res = _results(rng)
    subject = bridge._SubjectCore(tiny_model, res, regions={"language_system": ["B"]}, choice="set")
    assert subject.region_layers_ == {"language_system": [3, 4]}
    assert subject.identifier() == "neuroenc:tiny:set"
    _check_digest(subject, tiny_model, [3, 4])
    with pytest.raises(NotImplementedError, match="neural responses only"):
        subject.start_behavioral_task("next_word")


def test_neuroenc_subject_is_an_artificial_subject(rng, tiny_model):
    pytest.importorskip("brainscore_language")
    from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly
    from brainscore_language.artificial_subject import ArtificialSubject

    from neuroenc.bridges.brainscore import NeuroencSubject

    subject = NeuroencSubject(tiny_model, _results(rng), regions={"language_system": ["A"]})
    assert isinstance(subject, ArtificialSubject) and subject.region_layers_ == {"language_system": [1]}
    out = _check_digest(subject, tiny_model, [1])
    assert isinstance(out, NeuroidAssembly)
    subject.start_neural_recording(ArtificialSubject.RecordingTarget.language_system,
                                   ArtificialSubject.RecordingType.fMRI)


# ---------------------------------------------------------------------- assemblies
def _assembly(rng, multiindex=True):
    """Pereira-like: 2 experiments (3 + 2 sentences, a repeat of s1), 2 subjects x 2 neuroids;
    subject 2's second neuroid was not recorded in experiment 'e2' (NaN)."""
    xr = pytest.importorskip("xarray")
    ids = ["s1", "s2", "s3", "s4", "s5", "s1"]
    texts = ["A b.", "C d.", "E f.", "G h.", "I j.", "A b."]
    passages = ["p1", "p1", "p2", "p3", "p3", "p1"]
    exps = ["e1", "e1", "e1", "e2", "e2", "e1"]
    data = rng.standard_normal((6, 4))
    data[3:5, 3] = np.nan
    da = xr.DataArray(data, dims=["presentation", "neuroid"], coords={
        "stimulus_id": ("presentation", ids), "stimulus": ("presentation", texts),
        "passage_label": ("presentation", passages), "experiment": ("presentation", exps),
        "neuroid_id": ("neuroid", ["1.a", "1.b", "2.a", "2.b"]), "subject": ("neuroid", ["1", "1", "2", "2"]),
    }, attrs={"identifier": "Pereira2018.language-like"})
    if multiindex:
        da = da.set_index(presentation=["stimulus_id", "stimulus", "passage_label", "experiment"],
                          neuroid=["neuroid_id", "subject"])
    return da, data


@pytest.mark.parametrize("multiindex", [True, False])
def test_assembly_to_dataset(rng, multiindex):
    da, data = _assembly(rng, multiindex)
    ds = bridge.assembly_to_dataset(da, experiment="e1", repeats="mean")
    assert ds.name == "Pereira2018.language-like"
    assert ds.stimuli.ids == ["s1", "s2", "s3"] and ds.stimuli.texts == ["A b.", "C d.", "E f."]
    assert ds.stimuli.groups == ["p1", "p1", "p2"]
    assert ds.subjects == ["1", "2"] and ds.responses["2"].names == ["2.a", "2.b"]
    assert_allclose(ds.responses["1"].data[0], (data[0, :2] + data[5, :2]) / 2)  # the repeat averaged
    assert_allclose(ds.responses["2"].data[1:], data[1:3, 2:])
    e2 = bridge.assembly_to_dataset(da, experiment="e2")
    assert e2.stimuli.ids == ["s4", "s5"] and e2.responses["2"].names == ["2.a"]  # NaN neuroid dropped
    assert_allclose(e2.responses["2"].data[:, 0], data[3:5, 2])


def test_assembly_errors(rng):
    da, _ = _assembly(rng)
    with pytest.raises(ValueError, match=r"stimulus id\(s\) \['s1'\] are presented several times; pass repeats='mean'"):
        bridge.assembly_to_dataset(da)
    with pytest.raises(ValueError, match=r"no presentation of experiment 'e9'; the experiments are \['e1', 'e2'\]"):
        bridge.assembly_to_dataset(da, experiment="e9")
    with pytest.raises(ValueError, match=r"no coordinate 'sentence' \(text_coord\)"):
        bridge.assembly_to_dataset(da, experiment="e2", text_coord="sentence")
    with pytest.raises(ValueError, match=r"subject '2' has 1 neuroid\(s\) with missing values; pass drop_nan=True"):
        bridge.assembly_to_dataset(da, experiment="e2", drop_nan=False)
    with pytest.raises(ValueError, match=r"dimensions are \('presentation', 'neuroid', 'time_bin'\)"):
        bridge.assembly_to_dataset(da.expand_dims(time_bin=1, axis=-1))


def test_assembly_dataset_fits(rng):
    """The imported data set goes through neuroenc's stimulus-level fit like any other."""
    pytest.importorskip("xarray")
    from neuroenc.encoding.stimulus_fit import fit_stimuli
    from neuroenc.features.stimulus_features import StimulusFeatures

    xr = pytest.importorskip("xarray")
    n = 40
    X = rng.standard_normal((n, 5))
    y = X @ rng.standard_normal(5) + 0.1 * rng.standard_normal(n)
    da = xr.DataArray(np.c_[y, rng.standard_normal(n)], dims=["presentation", "neuroid"], coords={
        "stimulus_id": ("presentation", [f"s{i}" for i in range(n)]),
        "stimulus": ("presentation", [f"sentence {i}." for i in range(n)]),
        "passage_label": ("presentation", [f"p{i // 4}" for i in range(n)]),
        "neuroid_id": ("neuroid", ["signal", "noise"])})
    ds = bridge.assembly_to_dataset(da)
    feats = StimulusFeatures({0: X}, ds.stimuli.ids, ds.stimuli.texts, groups=ds.stimuli.groups)
    res = fit_stimuli(feats, ds.responses["all"], cv="group-kfold:5", alphas=[0.1, 1.0, 10.0])
    assert res.targets == ["signal", "noise"]
    assert res.r[0, 0] > 0.9 and abs(res.r[0, 1]) < 0.5
