"""MEG/EEG results as mne objects: the Info kept in the results file, r as an Evoked, TRF weights
recovered from a planted TRF, a sensor × lag cluster test, and the report's sensor section."""
from __future__ import annotations

import re

import mne
import numpy as np
import pytest
from _bids_fixtures import layouts  # noqa: F401

from neuroenc.align import make_meg_design
from neuroenc.datasets import load_megmasc
from neuroenc.datasets.miniature import _kit_sensor_locs, make_miniature
from neuroenc.encoding import EncodingResults, fit_encoding
from neuroenc.encoding.merge import merge_results
from neuroenc.encoding.sensors import add_trf, fit_trf, info_from_bytes, info_to_bytes
from neuroenc.features import FeatureSet
from neuroenc.mapping import sensor_cluster_test
from neuroenc.mapping.sensors import group_trf, sensor_adjacency
from neuroenc.report import make_report
from neuroenc.responses import Response

SFREQ = 100.0
PEAKS = ("Cz", "Oz", "F3")  # the centre of each feature's planted topography


def _eeg_info(n=32):
    montage = mne.channels.make_standard_montage("biosemi32")
    info = mne.create_info(montage.ch_names[:n], SFREQ, "eeg")
    info.set_montage(montage, on_missing="ignore")
    return info


def _positions(info):
    return np.array([ch["loc"][:3] for ch in info["chs"]])


def _planted(rng, info, duration=240.0, noise=0.5):
    """EEG from three word features, each a known kernel over 0-0.5 s times a known topography."""
    pos = _positions(info)
    topos = np.stack([np.exp(-np.sum((pos - pos[info["ch_names"].index(c)]) ** 2, 1) / (2 * 0.05 ** 2))
                      for c in PEAKS]) * np.array([[1.0], [-1.0], [1.0]])
    t = np.arange(51) / SFREQ
    kernels = np.stack([np.exp(-((t - 0.1) / 0.03) ** 2), -np.exp(-((t - 0.25) / 0.05) ** 2),
                        np.sin(2 * np.pi * 4 * t) * np.exp(-t / 0.15)], axis=1)
    onsets = 0.5 + np.cumsum(rng.uniform(0.2, 0.6, int(duration / 0.3)))
    onsets = onsets[onsets < duration - 1.0]
    feats = rng.standard_normal((onsets.size, 3))
    n = int(duration * SFREQ)
    impulses = np.zeros((n, 3))
    np.add.at(impulses, np.rint(onsets * SFREQ).astype(int), feats)
    clean = np.stack([np.convolve(impulses[:, d], kernels[:, d])[:n] for d in range(3)], axis=1)
    data = clean @ topos + noise * rng.standard_normal((n, len(info["ch_names"])))
    raw = mne.io.RawArray(data.T, info, verbose="error")
    fs = FeatureSet({0: feats, 1: rng.standard_normal((onsets.size, 3))}, onsets, onsets + 0.25, run="story",
                    model="sim")
    return fs, raw, topos, kernels


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(0)
    info = _eeg_info()
    fs, raw, topos, kernels = _planted(rng, info)
    design = make_meg_design(fs, Response.from_mne(raw, run="story"), tmin=-0.1, tmax=0.6)
    results = fit_encoding(design, n_permutations=0)
    return design, results, topos, kernels


def test_planted_trf_weights_and_topography_are_recovered(planted, tmp_path):
    design, results, topos, kernels = planted
    assert results.sensor_info is not None and results.sensor_info["ch_names"] == results.targets
    add_trf(results, design)
    w = results.trf(0)  # (channels, features, lags)
    assert w.shape == (32, 3, 71)
    np.testing.assert_allclose(results.trf_lags, np.arange(-10, 61) / SFREQ)
    truth = np.zeros_like(w)
    truth[:, :, 10:61] = topos.T[:, :, None] * kernels.T[None]  # nothing before the word
    overall = np.corrcoef(w.ravel(), truth.ravel())[0, 1]
    assert overall > 0.95
    for f, centre in enumerate(PEAKS):
        peak = 10 + int(np.argmax(np.abs(kernels[:, f])))
        topography = np.corrcoef(w[:, f, peak], truth[:, f, peak])[0, 1]
        assert topography > 0.98  # the planted topography at the kernel's peak lag
        ch = results.targets.index(centre)
        assert np.corrcoef(w[ch, f], truth[ch, f])[0, 1] > 0.98  # the kernel at its centre channel
    # layer 1 is noise: its weights are small and unrelated to the truth
    assert abs(np.corrcoef(results.trf(1).ravel(), truth.ravel())[0, 1]) < 0.1
    # saved and read back with the results: the weights, lags and mne's Info (positions kept)
    path = results.save(tmp_path / "res.h5")
    back = EncodingResults.load(path)
    np.testing.assert_allclose(back.trf(0), w)
    np.testing.assert_allclose(back.trf_lags, results.trf_lags)
    assert back.sensor_info["ch_names"] == results.targets
    np.testing.assert_allclose(_positions(back.sensor_info), _positions(results.sensor_info), atol=1e-6)
    assert back.sensor_info.get_channel_types() == ["eeg"] * 32
    with pytest.raises(KeyError, match=r"no TRF weights for layer 5: .*layers \[0, 1\]; fit them with"):
        back.trf(5)


def test_fit_trf_equals_a_ridge_at_those_penalties(planted):
    from sklearn.linear_model import Ridge

    design, results, _, _ = planted
    weights = fit_trf(design, 30.0, layers=[0])[0]
    X, Y = design.X(0, dtype=np.float64), design.Y.astype(np.float64)
    ref = Ridge(alpha=30.0, fit_intercept=False).fit(X, Y).coef_.T  # (lags * features, channels)
    np.testing.assert_allclose(weights, design.reshape_by_delays(ref, axis=0).transpose(2, 1, 0), atol=1e-8)
    with pytest.raises(ValueError, match="fit_trf needs a time-lagged MEG/EEG design"):
        fit_trf(object(), 1.0)
    with pytest.raises(ValueError, match="penalties of layer 0 must be finite and >= 0"):
        fit_trf(design, -1.0, layers=[0])
    with pytest.raises(ValueError, match=r"Y has shape \(5, 2\); the design has 24000 rows"):
        fit_trf(design, 1.0, Y=np.zeros((5, 2)))
    bare = EncodingResults(results.r, results.r2, results.layers, results.targets)
    with pytest.raises(ValueError, match="no ridge penalties"):
        add_trf(bare, design)
    other = EncodingResults(results.r[:, :3], results.r2[:, :3], results.layers, results.targets[:3],
                            alphas=results.alphas[:, :3])
    with pytest.raises(ValueError, match="design's 32 channels are not the results' 3 targets"):
        add_trf(other, design)


def test_to_evoked_holds_r_and_delta_r_per_channel(planted):
    _, results, _, _ = planted
    ev = results.to_evoked(0)
    assert isinstance(ev, mne.EvokedArray) and ev.ch_names == results.targets
    np.testing.assert_allclose(ev.data[:, 0], results.r[0])
    both = results.to_evoked()
    np.testing.assert_allclose(both.times, [0.0, 1.0])  # times are the layers
    np.testing.assert_allclose(both.data, results.r.T)
    with_base = EncodingResults(results.r, results.r2, results.layers, results.targets,
                                baseline={"r": np.full(32, 0.1)}, sensor_info=results.sensor_info)
    np.testing.assert_allclose(with_base.to_evoked(1, kind="delta_r").data[:, 0], results.r[1] - 0.1)
    # the planted topography shows in r: the centre channels predict best
    assert results.r[0, results.targets.index("Cz")] > results.r[0, results.targets.index("T8")] + 0.2
    with pytest.raises(ValueError, match="kind='delta_r' needs a baseline model's r"):
        results.to_evoked(0, kind="delta_r")
    with pytest.raises(ValueError, match=r"Invalid value for 'kind'.*got 'p'"):
        results.to_evoked(0, kind="p")
    with pytest.raises(ValueError, match=r"Invalid layer 7: these results have layers \[0, 1\]"):
        results.to_evoked(7)


def test_to_evoked_needs_sensor_results():
    r = np.array([[0.1, 0.2, 0.3]])
    voxels = EncodingResults(r, r, [0], ["v1", "v2", "v3"],
                             provenance={"target_space": {"kind": "volume"}})
    with pytest.raises(ValueError, match="to_evoked needs sensor results .* targets are 'volume'"):
        voxels.to_evoked(0)
    sensors = EncodingResults(r, r, [0], ["Fp1", "AF3", "F7"], provenance={"target_space": {"kind": "sensor"}})
    with pytest.raises(ValueError, match=r"these sensor results carry no mne Info \(.*\); pass info="):
        sensors.to_evoked(0)
    info = _eeg_info(3)
    np.testing.assert_allclose(sensors.to_evoked(0, info=info).data[:, 0], r[0])
    with pytest.raises(ValueError, match=r"info has 32 channels but the results have 3 targets"):
        sensors.to_evoked(0, info=_eeg_info())
    with pytest.raises(ValueError, match=r"EncodingResults.sensor_info has 32 channels .* mne.pick_info"):
        EncodingResults(r, r, [0], ["Fp1", "AF3", "F7"], sensor_info=_eeg_info())
    with pytest.raises(TypeError, match="sensor_info must be an mne.Info"):
        EncodingResults(r, r, [0], ["Fp1", "AF3", "F7"], sensor_info={"ch_names": []})
    with pytest.raises(ValueError, match=r"layer 0 have shape \(2, 1, 4\); expected \(3, n_features, 4\)"):
        EncodingResults(r, r, [0], ["a", "b", "c"], trf_weights={0: np.zeros((2, 1, 4))}, trf_lags=np.arange(4))


def test_info_bytes_round_trip_and_merges_keep_the_info(planted):
    _, results, _, _ = planted
    info = info_from_bytes(info_to_bytes(results.sensor_info))
    assert info["ch_names"] == results.targets and info["sfreq"] == SFREQ
    chunks = []
    for sl in (slice(0, 10), slice(10, 32)):
        picked = mne.pick_info(results.sensor_info, list(range(32))[sl])
        chunks.append(EncodingResults(results.r[:, sl], results.r2[:, sl], results.layers, results.targets[sl],
                                      alphas=results.alphas[:, sl], sensor_info=picked,
                                      trf_weights={0: np.full((len(picked["ch_names"]), 3, 4), sl.start)},
                                      trf_lags=np.arange(4) / SFREQ))
    merged = merge_results(chunks, axis="targets")
    assert merged.sensor_info["ch_names"] == results.targets
    np.testing.assert_allclose(_positions(merged.sensor_info), _positions(results.sensor_info))
    np.testing.assert_array_equal(merged.trf(0)[:, 0, 0], [0] * 10 + [10] * 22)
    chunks[1].trf_weights = {}
    chunks[1].trf_lags = None
    with pytest.raises(ValueError, match="TRF weights are in some parts only"):
        merge_results(chunks, axis="targets")
    layers = [EncodingResults(results.r[[i]], results.r2[[i]], [i], results.targets, sensor_info=results.sensor_info,
                              trf_weights={i: np.full((32, 3, 4), i)}, trf_lags=np.arange(4) / SFREQ)
              for i in (1, 0)]
    by_layer = merge_results(layers, axis="layers")
    assert by_layer.sensor_info["ch_names"] == results.targets and sorted(by_layer.trf_weights) == [0, 1]


def test_cluster_test_finds_the_planted_cluster_and_nothing_in_noise():
    rng = np.random.default_rng(1)
    info = _eeg_info()
    pos = _positions(info)
    topo = np.exp(-np.sum((pos - pos[info["ch_names"].index("Cz")]) ** 2, 1) / (2 * 0.04 ** 2))
    effect = np.zeros((32, 30))
    effect[:, 10:20] = 1.5 * topo[:, None]
    lags = np.arange(30) / SFREQ
    found = sensor_cluster_test(rng.standard_normal((12, 32, 30)) + effect, info, times=lags, n_permutations=500)
    table = found.to_frame()
    assert table.loc[0, "p"] < 0.01 and table.loc[0, "t_sum"] > 0
    sig = found.significant(0.05)
    chans = {found.ch_names[i] for i in np.unique(np.nonzero(sig)[0])}
    assert {"Cz", "FC1", "FC2", "CP1", "CP2"} <= chans  # the channels where the effect is > 0.3
    assert not chans & {"Fp1", "Fp2", "O1", "O2", "T7", "T8"}  # far from Cz: no effect
    cols = np.unique(np.nonzero(sig)[1])
    assert cols.min() >= 10 and cols.max() <= 19  # only the planted lags
    assert 0.10 <= table.loc[0, "tmin"] and table.loc[0, "tmax"] <= 0.19
    null = sensor_cluster_test(rng.standard_normal((12, 32, 30)), info, n_permutations=500)
    assert null.pvalues.min() > 0.05 and not null.significant().any()
    # the same sign flips for the same seed
    data = rng.standard_normal((12, 32, 30)) + effect
    a, b = (sensor_cluster_test(data, info, n_permutations=200, random_state=3) for _ in range(2))
    np.testing.assert_allclose(a.pvalues, b.pvalues)


def test_cluster_test_bad_inputs():
    info = _eeg_info()
    data = np.zeros((5, 32, 4))
    with pytest.raises(ValueError, match="needs at least 2 subjects' maps, got 1"):
        sensor_cluster_test(data[:1], info)
    with pytest.raises(ValueError, match="data has 31 channels but the Info has 32"):
        sensor_cluster_test(data[:, :31], info)
    with pytest.raises(ValueError, match=r"times has 3 values for 4 columns"):
        sensor_cluster_test(data, info, times=[0, 1, 2])
    bad = data.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite values"):
        sensor_cluster_test(bad, info)
    with pytest.raises(ValueError, match=r"Invalid value for 'tail'.*got 2"):
        sensor_cluster_test(data, info, tail=2)
    flat = mne.create_info(["a", "b", "c"], SFREQ, "eeg")
    with pytest.raises(ValueError, match="the Info has no channel positions"):
        sensor_adjacency(flat)
    mixed = mne.create_info(["a", "b"], SFREQ, ["mag", "grad"])
    with pytest.raises(ValueError, match=r"several types \['grad', 'mag'\]; pass ch_type="):
        sensor_adjacency(mixed)


# ---------------------------------------------------------------------- MEG-MASC miniature
@pytest.fixture(scope="module")
def megmasc_results(tmp_path_factory, layouts):  # noqa: F811
    """Two subjects of the MEG-MASC miniature (8 KIT channels with positions, the first 4 driven by a
    transient at every event), fitted on word impulses (layer 0) and impulses + noise (layer 1)."""
    folder = tmp_path_factory.mktemp("megmasc-sensors")
    root = make_miniature("megmasc", folder / "data", layouts=layouts, subjects=["01", "12"], n_voxels=8)
    ds = load_megmasc(root, subject=["01", "12"], tasks=[0], responses=True, resample=100.0, raw=False)
    rng = np.random.default_rng(0)
    paths = []
    for sub in ds.subjects:
        runs = ds.responses[sub]
        feats = {run: FeatureSet({0: np.ones((len(t.onsets), 1)),
                                  1: np.column_stack([np.ones(len(t.onsets)), rng.standard_normal(len(t.onsets))])},
                                 t.onsets, t.offsets, run=run, model="impulses")
                 for run, t in ds.transcripts.items() if run in runs}
        # impulses of 1 (not z-scored: the transient follows every word alike); responses in units of
        # their SD (in tesla, ~1e-13, every penalty of the grid would fit alike)
        design = make_meg_design(feats, runs, tmin=-0.1, tmax=0.4, zscore=False)
        Y = design.Y / design.Y.std(axis=0)
        res = fit_encoding(design, Y, n_permutations=0, provenance={"subject": sub, "dataset": "megmasc",
                                                                      "model": "impulses"})
        add_trf(res, design, Y=Y)
        paths.append(res.save(folder / f"sub-{sub}.h5"))
    return paths


def test_megmasc_miniature_results_are_mne_objects(megmasc_results):
    subjects = [EncodingResults.load(p) for p in megmasc_results]
    names = [f"MEG 00{i}" for i in range(1, 9)]
    for res in subjects:
        info = res.sensor_info  # read back from the results file: mne's Info with the KIT positions
        assert info["ch_names"] == res.targets == names
        assert info.get_channel_types() == ["mag"] * 8
        np.testing.assert_allclose(_positions(info), _kit_sensor_locs(names)[:, :3], atol=1e-6)
        ev = res.to_evoked(0)
        driven, quiet = ev.data[:4, 0], ev.data[4:, 0]
        assert driven.min() > 0.5 and np.abs(quiet).max() < 0.1
        w = res.trf(0)[:, 0]  # (channels, lags): the response to one word
        assert w.shape == (8, 51)
        peaks = res.trf_lags[np.argmax(w[:4], axis=1)]
        assert np.all((peaks >= 0.05) & (peaks <= 0.2))  # the miniature's 0-200 ms transient
        assert np.abs(w[:4]).max() > 50 * np.abs(w[4:]).max()
        np.testing.assert_allclose(w[:4], np.broadcast_to(w[:4].mean(axis=0), (4, 51)),
                                   atol=0.05 * np.abs(w[:4]).max())  # one drive, 4 channels alike
    weights, lags = group_trf(subjects, 0, feature=0)
    assert weights.shape == (2, 8, 51) and lags.size == 51
    adjacency, chans = sensor_adjacency(subjects[0].sensor_info)
    assert chans == names and adjacency.shape == (8, 8)
    assert (adjacency != adjacency.T).nnz == 0 and np.all(np.asarray(adjacency.sum(axis=1)).ravel() >= 2)
    with pytest.raises(ValueError, match="Invalid feature 3: the TRFs of layer 0 have 1 features"):
        group_trf(subjects, 0, feature=3)


def _sections(html):
    return dict(re.findall(r'<section id="([^"]+)">\s*<h2>([^<]+)</h2>', html))


def test_report_has_a_sensor_section_for_sensor_results_only(megmasc_results, tmp_path):
    out = make_report(megmasc_results, tmp_path / "meg.html", n_boot=50, n_permutations=100)
    html = out.read_text(encoding="utf-8")
    block = html.split('id="extra-sensors"')[1].split("</section>")[0]
    assert "Sensors" in block and block.count("<img") == 1  # one row of band topomaps (mag)
    assert "early (layer 0)" in block and "late (layer 1)" in block
    subjects = [EncodingResults.load(p) for p in megmasc_results]
    for res in subjects:
        res.sensor_info = None
    no_info = make_report(subjects, tmp_path / "noinfo.html", n_boot=50, n_permutations=100).read_text("utf-8")
    block = no_info.split('id="extra-sensors"')[1].split("</section>")[0]
    assert "<img" not in block and "No topomaps: these results carry no mne Info" in block
    r = np.tile(np.linspace(0.1, 0.3, 4), (2, 1))
    rois = EncodingResults(r, r, [0, 1], ["a", "b", "c", "d"], provenance={"subject": "s1", "model": "m"})
    other = make_report(rois, tmp_path / "roi.html", n_boot=50).read_text("utf-8")
    assert 'id="extra-sensors"' not in other and 'id="extra-sensors"' in html


def test_delaunay_adjacency_agrees_with_mne_and_replaces_a_foreign_template():
    from neuroenc.mapping.sensors import _delaunay_adjacency

    montage = mne.channels.make_standard_montage("biosemi64")
    info = mne.create_info(montage.ch_names, SFREQ, "eeg").set_montage(montage)
    with mne.utils.use_log_level("error"):
        ref = mne.channels.find_ch_adjacency(info, "eeg")[0].toarray().astype(bool)
    ours = _delaunay_adjacency(_positions(info)).toarray()
    assert (ours & ref).sum() >= 0.95 * ref.sum() and (ours & ref).sum() >= 0.9 * ours.sum()
    # "mag" channels that are not Neuromag's: mne offers Neuromag's 102-channel template; ours fits them
    mags = mne.create_info([f"MEG 00{i}" for i in range(1, 9)], SFREQ, "mag")
    for ch, loc in zip(mags["chs"], _kit_sensor_locs(mags["ch_names"])):
        ch["loc"][:] = loc
    adjacency, names = sensor_adjacency(mags)
    assert names == mags["ch_names"] and adjacency.shape == (8, 8)
    with pytest.raises(ValueError, match="needs at least 4 channels with positions, got 3"):
        _delaunay_adjacency(_positions(mags)[:3])
