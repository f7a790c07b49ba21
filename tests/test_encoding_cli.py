"""``neuroenc fit`` end to end: feature files + responses (.npy, .txt, .tsv, NIfTI, .fif) -> results."""
from __future__ import annotations

import numpy as np
import pytest
from _encoding_fixtures import _one_blas_thread, layer_walk  # noqa: F401

from neuroenc.cli import main
from neuroenc.encoding import EncodingResults
from neuroenc.features import FeatureSet
from neuroenc.features.featureset import save_features
from neuroenc.responses import read_responses

TR, N_TR = 2.0, 80


@pytest.fixture
def files(tmp_path, rng):
    """Two runs: feature files (4 layers) and ROI responses driven by layer 2 of the words."""
    from neuroenc.align import make_fmri_design
    from neuroenc.responses import Response

    feats, paths = {}, {}
    for run in ("run-1", "run-2"):
        onsets = np.sort(rng.uniform(1.0, N_TR * TR - 4.0, 300))
        layers = layer_walk(rng, n_samples=300, n_features=5, n_layers=4, smooth=1)
        fs = FeatureSet(dict(enumerate(layers)), onsets, onsets + 0.3, run=run, model="toy", n_model_layers=4)
        feats[run] = fs
        paths[run] = save_features(fs, tmp_path / f"{run}.h5")
    dummy = {run: Response(np.arange(N_TR, dtype=float)[:, None], tr=TR, run=run) for run in feats}
    design = make_fmri_design(feats, dummy)
    X = design.X(2).astype(float)
    W = rng.standard_normal((X.shape[1], 3))
    Y = X @ W / np.sqrt(X.shape[1]) + 0.7 * rng.standard_normal((X.shape[0], 3))
    per_run = design.split(Y)
    rate = {run: np.abs(rng.standard_normal(N_TR)) for run in feats}
    return tmp_path, paths, per_run, rate


def _run(argv):
    return main(["-q", "fit", *map(str, argv)])


def test_fit_cli_text_and_npy(files, capsys):
    tmp, paths, per_run, rate = files
    np.savetxt(tmp / "run-1.txt", per_run["run-1"])
    np.save(tmp / "run-2.npy", per_run["run-2"])
    for run in per_run:
        np.savetxt(tmp / f"{run}-rate.txt", rate[run])
    out = tmp / "res.h5"
    code = _run(["--features", paths["run-1"], paths["run-2"], "--responses", tmp / "run-1.txt", tmp / "run-2.npy",
                 "--tr", TR, "--delays", "1,2,3,4", "--target-names", "LATL,LPTL,LIFG",
                 "--nuisance", tmp / "run-1-rate.txt", tmp / "run-2-rate.txt", "--n-permutations", 100,
                 "--subject", "s1", "--out", out])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Results written to" in printed and "LPTL  best layer   2" in printed
    res = EncodingResults.load(out)
    # per target: the best layer and the best-layer set, each p-value said against what it tests
    sets = res.best().set_index("target")["best_set"]
    assert f"LPTL  best layer   2  best set {sets['LPTL']:<12}  r=" in printed
    assert "best set: layers not reliably worse than the best, tested against the other layers" in printed
    assert "p: the best layer's r against chance" in printed
    assert res.targets == ["LATL", "LPTL", "LIFG"] and res.layers.tolist() == [0, 1, 2, 3]
    assert np.all(np.argmax(res.r, 0) == 2)
    assert res.baseline["r"].shape == (3,) and res.pvalues.shape == (4, 3)
    assert len(res.settings["cv_folds"]) == 2  # leave-one-run-out
    assert res.provenance["subject"] == "s1" and set(res.provenance["features_sha256"]) == {"run-1", "run-2"}
    np.testing.assert_allclose(res.relative_depth, [0, 1 / 3, 2 / 3, 1])


def test_fit_cli_tsv_header_and_blocks(files):
    tmp, paths, per_run, _ = files
    Y = per_run["run-1"]
    (tmp / "r.tsv").write_text("a\tb\tc\n" + "\n".join("\t".join(f"{v:.6f}" for v in row) for row in Y))
    out = tmp / "one.h5"
    code = _run(["--features", paths["run-1"], "--responses", tmp / "r.tsv", "--tr", TR, "--layers", "1-3",
                 "--n-blocks", 4, "--inner-cv", 3, "--n-permutations", 0, "--alphas", "logspace:0,4,5",
                 "--out", out])
    assert code == 0
    res = EncodingResults.load(out)
    assert res.targets == ["a", "b", "c"] and res.layers.tolist() == [1, 2, 3]
    assert len(res.settings["cv_folds"]) == 4 and res.settings["alphas"] == pytest.approx(np.logspace(0, 4, 5))
    assert res.pvalues is None


def test_fit_cli_nifti_with_mask(files):
    nib = pytest.importorskip("nibabel")
    tmp, paths, per_run, _ = files
    vol = np.zeros((3, 2, 2, N_TR))
    mask = np.zeros((3, 2, 2), dtype=np.uint8)
    for j, (i, k, m) in enumerate([(0, 0, 0), (1, 1, 0), (2, 1, 1)]):
        vol[i, k, m] = per_run["run-1"][:, j] + 10.0
        mask[i, k, m] = 1
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(vol.astype(np.float32), affine), tmp / "bold.nii.gz")
    nib.save(nib.Nifti1Image(mask, affine), tmp / "mask.nii.gz")
    out = tmp / "vox.h5"
    code = _run(["--features", paths["run-1"], "--responses", tmp / "bold.nii.gz", "--mask", tmp / "mask.nii.gz",
                 "--tr", TR, "--n-permutations", 0, "--n-blocks", 4, "--inner-cv", 3, "--out", out])
    assert code == 0
    res = EncodingResults.load(out)
    assert res.targets == ["0_0_0", "1_1_0", "2_1_1"]
    assert res.provenance["mask"].endswith("mask.nii.gz") and res.provenance["shape"] == [3, 2, 2]
    assert np.all(np.argmax(res.r, 0) == 2)


def test_read_responses_fif(tmp_path, rng):
    mne = pytest.importorskip("mne")
    info = mne.create_info(["MEG1", "MEG2"], 100.0, "mag")
    raw = mne.io.RawArray(rng.standard_normal((2, 500)) * 1e-12, info, verbose="error")
    raw.save(tmp_path / "rec_raw.fif", verbose="error")
    resp = read_responses(tmp_path / "rec_raw.fif", run="story-1")
    assert resp.kind == "meg" and resp.sfreq == 100.0 and resp.names == ["MEG1", "MEG2"]
    assert resp.n_samples == 500 and resp.run == "story-1" and len(resp.info["sha256"]) == 64


def test_fit_cli_bad_input(files, capsys):
    tmp, paths, per_run, _ = files
    np.save(tmp / "y.npy", per_run["run-1"])
    code = _run(["--features", paths["run-1"], paths["run-2"], "--responses", tmp / "y.npy", "--tr", TR,
                 "--out", tmp / "x.h5"])
    assert code == 1
    assert "2 features files but 1 responses files" in capsys.readouterr().err
    code = _run(["--features", paths["run-1"], "--responses", tmp / "y.npy", "--out", tmp / "x.h5"])
    assert code == 1 and "Give the sampling of" in capsys.readouterr().err
    (tmp / "y.xlsx").write_text("x")
    code = _run(["--features", paths["run-1"], "--responses", tmp / "y.xlsx", "--tr", TR, "--out", tmp / "x.h5"])
    assert code == 1 and "Unknown responses format '.xlsx'" in capsys.readouterr().err
    bad = per_run["run-1"].copy()
    bad[5, 1] = np.nan
    np.save(tmp / "nan.npy", bad)
    code = _run(["--features", paths["run-1"], "--responses", tmp / "nan.npy", "--tr", TR, "--out", tmp / "x.h5"])
    assert code == 1 and "non-finite" in capsys.readouterr().err.lower()
    code = _run(["--features", paths["run-1"], "--responses", tmp / "bold.nii.gz", "--tr", TR, "--out", tmp / "x.h5"])
    assert code == 1 and "responses file not found" in capsys.readouterr().err
    code = _run(["--features", paths["run-1"], paths["run-1"], "--responses", tmp / "y.npy", tmp / "y.npy",
                 "--tr", TR, "--out", tmp / "x.h5"])
    assert code == 1 and "hold runs ['run-1', 'run-1']; each file must be a different run" in capsys.readouterr().err
    short = per_run["run-1"][:40]
    np.save(tmp / "short.npy", short)
    code = _run(["--features", paths["run-1"], "--responses", tmp / "short.npy", "--tr", TR, "--out", tmp / "x.h5"])
    assert code == 1 and "fall after the end of the response grid" in capsys.readouterr().err


def test_fit_cli_meg_fif(tmp_path, rng):
    """An mne .fif recording gets a time-lagged design; a channel driven by layer 1 picks it."""
    mne = pytest.importorskip("mne")
    from neuroenc.align import make_meg_design
    from neuroenc.responses import Response

    sfreq, n = 50.0, 3000
    onsets = np.sort(rng.uniform(1.0, n / sfreq - 2.0, 240))
    layers = layer_walk(rng, n_samples=240, n_features=3, n_layers=3, smooth=1)
    fs = FeatureSet(dict(enumerate(layers)), onsets, onsets + 0.2, run="story", model="toy")
    path = save_features(fs, tmp_path / "story.h5")
    design = make_meg_design(fs, Response(np.arange(n, dtype=float), sfreq=sfreq, run="story"), tmin=0.0, tmax=0.3)
    X = design.X(1).astype(float)
    signal = X @ rng.standard_normal(X.shape[1])
    data = np.stack([signal / signal.std() + 0.5 * rng.standard_normal(n), rng.standard_normal(n)]) * 1e-12
    raw = mne.io.RawArray(data, mne.create_info(["MEG1", "MEG2"], sfreq, "mag"), verbose="error")
    raw.save(tmp_path / "story_raw.fif", verbose="error")
    out = tmp_path / "meg.h5"
    code = _run(["--features", path, "--responses", tmp_path / "story_raw.fif", "--tmin", "0", "--tmax", "0.3",
                 "--n-permutations", 0, "--n-blocks", 3, "--inner-cv", 2, "--out", out])
    assert code == 0
    res = EncodingResults.load(out)
    assert res.targets == ["MEG1", "MEG2"]
    assert np.argmax(res.r[:, 0]) == 1 and res.r[1, 0] > 0.5 and abs(res.r[1, 1]) < 0.2
    assert res.settings["gap_used"] == 16  # the longest lag (0.3 s = 15 samples) + 1
