"""Stimulus-level encoding: CV by stimulus and group, the permutation null over stimuli, pooled r,
subjects' mean with a split-half ceiling, and the CLI against a plain scikit-learn pipeline."""
from __future__ import annotations

import numpy as np
import pytest
from _encoding_fixtures import _one_blas_thread  # noqa: F401
from _features_helpers import one_torch_thread  # noqa: F401
from _stimuli_fixtures import simulate_stimulus_layers, write_sentences

from neuroenc.encoding import EncodingResults, LayerSweep, make_cv, noise_ceiling_split_half
from neuroenc.encoding.cv import inner_splits
from neuroenc.encoding.designs import LayerDesigns
from neuroenc.encoding.merge import merge_results
from neuroenc.encoding.stats import PermutedDraws
from neuroenc.encoding.stimulus_fit import fit_stimuli, stimulus_cv
from neuroenc.features import StimulusFeatures
from neuroenc.stimuli.responses import StimulusResponses


# ---------------------------------------------------------------------- CV
def test_group_kfold_never_splits_a_group():
    groups = np.repeat([f"g{i}" for i in range(11)], np.arange(3, 14))
    outer = make_cv("group-kfold:4", groups, groups.size)
    assert len(outer) == 4
    held = np.concatenate([te for _, te in outer])
    assert np.array_equal(np.sort(held), np.arange(groups.size))  # every stimulus held out once
    for train, test in outer:
        assert not set(groups[train]) & set(groups[test])
        for itr, iva in inner_splits(train, groups, 5, scheme="group-kfold"):
            assert set(itr) | set(iva) == set(train)
            assert not set(groups[itr]) & set(groups[iva])
    from sklearn.model_selection import GroupKFold

    ref = list(GroupKFold(4).split(np.zeros((groups.size, 1)), groups=groups))
    for (_, te), (_, rte) in zip(outer, ref):
        np.testing.assert_array_equal(te, np.sort(rte))


def test_kfold_is_shuffled_and_seeded():
    a = make_cv("kfold:5", None, 50, random_state=3)
    b = make_cv("kfold:5", None, 50, random_state=3)
    c = make_cv("kfold:5", None, 50, random_state=4)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    assert not all(np.array_equal(x[1], y[1]) for x, y in zip(a, c))
    assert not np.array_equal(a[0][1], np.arange(10))  # shuffled, not contiguous


@pytest.mark.parametrize("cv, groups, match", [
    ("group-kfold:5", None, r"holds out whole groups, but no groups were given.*cv='kfold:K'"),
    ("group-kfold:5", np.repeat(["a", "b", "c"], 4), r"needs at least 5 groups, but there are 3; use fewer folds"),
    ("group-kfold:1", np.repeat(["a", "b"], 4), r"Write group-kfold:K with K >= 2 folds"),
])
def test_stimulus_cv_errors(cv, groups, match):
    with pytest.raises(ValueError, match=match):
        make_cv(cv, groups, 12)


def test_stimulus_cv_auto():
    assert stimulus_cv("auto", ["a", "b", "c"]) == "group-kfold:3"
    assert stimulus_cv("auto", [f"g{i}" for i in range(9)]) == "group-kfold:5"
    assert stimulus_cv("auto", None) == "kfold:5"
    assert stimulus_cv("kfold:3", None) == "kfold:3"


def test_permuted_draws_stay_within_groups_and_batches_agree():
    groups = np.repeat([0, 1, 2], [4, 5, 6])
    units = [np.flatnonzero(groups == g) for g in range(3)]
    d = PermutedDraws(units, 50, groups.size, random_state=1)
    idx = d.indices(0, 50)
    assert np.all(groups[idx] == groups[None, :])  # each sample takes a response of its own group
    assert (idx != np.arange(groups.size)).any(1).all()
    small = PermutedDraws(units, 50, groups.size, random_state=1, cache_bytes=0)
    np.testing.assert_array_equal(small.indices(10, 20), idx[10:20])
    with pytest.raises(ValueError, match="needs a group of at least 2 stimuli"):
        PermutedDraws([np.array([0]), np.array([1])], 5, 2)


# ---------------------------------------------------------------------- the sweep
def test_best_layer_recovered_with_group_kfold():
    layers, Y, groups = simulate_stimulus_layers(n_groups=24, per_group=8, generating=3, n_targets=6,
                                                 signal=1.5, random_state=0)
    sweep = LayerSweep(alphas=np.logspace(-1, 4, 11), cv="group-kfold:6", n_permutations=199,
                       refit=False, backend="numpy", random_state=0).fit(layers, Y, groups=groups)
    assert (sweep.best_layer_ == 3).all()
    assert sweep.permutation_ == "refit" and sweep.null_unit_ == "stimuli"
    assert (sweep.pvalues_best_ <= 0.01).all()
    assert sweep.comparison_.in_best_set[3].all()
    assert not sweep.comparison_.in_best_set[0].any()  # a shared-part-only layer is reliably worse
    settings = sweep.fitted_settings()
    assert settings["null_within_groups"] is True and settings["gap_used"] == 0
    assert "pooled" in settings["scores"]["r_pooled"]


def test_pooled_r_is_the_r_of_all_held_out_predictions():
    from sklearn.linear_model import Ridge

    layers, Y, groups = simulate_stimulus_layers(n_groups=10, per_group=5, n_layers=1, generating=0, random_state=2)
    X = layers[0]
    sweep = LayerSweep(alphas=[10.0], cv="group-kfold:5", refit=False, backend="numpy",
                       dtype="float64").fit(X, Y, groups=groups)
    pred = np.zeros_like(Y)
    for tr, te in sweep.cv_splits_:
        pred[te] = Ridge(alpha=10.0, fit_intercept=False).fit(X[tr], Y[tr]).predict(X[te])
    ref = [np.corrcoef(pred[:, j], Y[:, j])[0, 1] for j in range(Y.shape[1])]
    np.testing.assert_allclose(sweep.r_pooled_[0], ref, atol=1e-10)
    fold = np.mean([[np.corrcoef(pred[te, j], Y[te, j])[0, 1] for j in range(Y.shape[1])]
                    for _, te in sweep.cv_splits_], 0)
    np.testing.assert_allclose(sweep.r_[0], fold, atol=1e-10)
    assert not np.allclose(sweep.r_[0], sweep.r_pooled_[0])


def test_null_calibration_permuting_within_groups():
    """Null data with group structure in features and responses: about 5 % of p < 0.05."""
    pvalues = []
    for seed in range(4):
        layers, Y, groups = simulate_stimulus_layers(n_groups=12, per_group=6, n_layers=1, generating=0,
                                                     n_targets=60, signal=0.0, group_effect=0.7,
                                                     random_state=100 + seed)
        sweep = LayerSweep(alphas=np.logspace(-1, 4, 6), cv="group-kfold:4", inner_cv=3, n_permutations=99,
                           refit=False, compare=False, backend="numpy", random_state=seed).fit(layers[0], Y,
                                                                                               groups=groups)
        pvalues.append(sweep.pvalues_[0])
    p = np.concatenate(pvalues)
    share = np.mean(p < 0.05)
    assert 0.02 <= share <= 0.09, share
    assert 0.4 <= np.mean(p < 0.5) <= 0.6


def test_stimulus_cv_rejects_time_options():
    X, Y = np.random.default_rng(0).standard_normal((40, 3)), np.random.default_rng(1).standard_normal((40, 2))
    with pytest.raises(ValueError, match="permutation='circular' shifts responses in time, but stimulus-level CV"):
        LayerSweep(cv="kfold:4", n_permutations=9, permutation="circular", refit=False).fit(X, Y)
    with pytest.raises(ValueError, match="gap=3: stimulus-level CV .* has no time, so no gap"):
        LayerSweep(cv="kfold:4", gap=3, refit=False).fit(X, Y)


# ---------------------------------------------------------------------- fit_stimuli
def _features(layers, groups):
    n = layers[0].shape[0]
    ids = [f"s{i}" for i in range(n)]
    return StimulusFeatures({k: x for k, x in enumerate(layers)}, ids, [f"text {i}" for i in range(n)],
                            list(groups), name="sim", model="sim-model", n_model_layers=len(layers))


def test_fit_stimuli_matches_ids_and_records_scores(tmp_path):
    layers, Y, groups = simulate_stimulus_layers(n_groups=15, per_group=6, generating=2, n_targets=2,
                                                 signal=1.5, random_state=5)
    fs = _features(layers, groups)
    order = np.random.default_rng(0).permutation(len(fs.ids))
    resp = StimulusResponses(Y[order], [fs.ids[i] for i in order], ["roi1", "roi2"], "sub-01")
    res = fit_stimuli(fs, resp, n_permutations=49, alphas=np.logspace(-1, 4, 6),
                      baseline={"length": np.arange(len(fs.ids)) % 7})
    assert res.settings["cv"] == "group-kfold:5" and res.settings["null_unit"] == "stimuli"
    assert (res.best()["best_layer"] == 2).all()
    assert res.r_pooled.shape == res.r.shape and "baseline_r" in res.to_frame()
    path = res.save(tmp_path / "res.h5")
    back = EncodingResults.load(path)
    np.testing.assert_array_equal(back.r_pooled, res.r_pooled)
    merged = merge_results([back, back.__class__(**{**back.__dict__, "targets": ["a", "b"]})])
    assert merged.r_pooled.shape == (res.n_layers, 4)
    with pytest.raises(Exception, match=r"1 of the stimuli have no response: ids \['s0'\]"):
        fit_stimuli(fs, StimulusResponses(Y[1:], fs.ids[1:], ["a", "b"]), n_permutations=0)


def test_subjects_mean_with_split_half_ceiling():
    layers, Y, groups = simulate_stimulus_layers(n_groups=10, per_group=6, n_targets=2, random_state=7)
    fs = _features(layers, groups)
    rng = np.random.default_rng(1)
    subjects = {f"sub-{k}": StimulusResponses(Y + rng.standard_normal(Y.shape), fs.ids, ["a", "b"], f"sub-{k}")
                for k in range(4)}
    res = fit_stimuli(fs, subjects, n_permutations=0, alphas=[1.0, 100.0])
    stack = np.stack([(s.data - s.data.mean(0)) / s.data.std(0) for s in subjects.values()])
    np.testing.assert_allclose(res.noise_ceiling, noise_ceiling_split_half(stack, random_state=0))
    assert res.provenance["group_members"] == list(subjects)
    assert "split halves of subjects" in res.settings["noise_ceiling"]


# ---------------------------------------------------------------------- CLI vs scikit-learn
@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    from neuroenc.testing import tiny_gpt2

    root = tmp_path_factory.mktemp("stimcli")
    tiny_gpt2(n_layer=2, path=root / "model")
    ids = write_sentences(root / "sentences.csv", n_passages=6, per_passage=3)
    rng = np.random.default_rng(0)
    rows = ["id,lang,md"] + [f"{i},{rng.standard_normal():.6f},{rng.standard_normal():.6f}" for i in reversed(ids)]
    (root / "responses.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def test_cli_equals_a_plain_sklearn_pipeline(cli_files, tmp_path, capsys):
    """The CLI's r, pooled r and penalties equal GroupKFold + RidgeCV per target (same alphas).

    What must match, and does by construction of both sides: the outer folds (GroupKFold(3) on
    the passages), the inner folds (GroupKFold(3) on the training passages), the criterion of
    the penalty (the mean over inner folds of the held-out mean squared error:
    ``scoring="neg_mean_squared_error"``), no intercept (``fit_intercept=False``; neuroenc's ridge
    has none), the inputs (each layer's features and each response z-scored over all stimuli,
    as the pipeline does before the fit) and the score (Pearson r within each fold, mean over
    folds; and r of the pooled predictions)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GroupKFold

    from neuroenc.cli import main
    from neuroenc.features import load_stimulus_features
    from neuroenc.stimuli.responses import read_stimulus_responses

    feats, res = tmp_path / "f.h5", tmp_path / "res.h5"
    assert main(["extract", "--model", str(cli_files / "model"), "--stimuli", str(cli_files / "sentences.csv"),
                 "--text-column", "sentence", "--group-column", "passage", "--pooling", "mean",
                 "--out", str(feats)]) == 0
    assert main(["fit", "--features", str(feats), "--responses", str(cli_files / "responses.csv"),
                 "--id-column", "id", "--response-columns", "all", "--cv", "group-kfold:3", "--inner-cv", "3",
                 "--alphas", "logspace:-2,4,13", "--n-permutations", "0", "--dtype", "float64",
                 "--backend", "numpy", "--out", str(res)]) == 0
    out = capsys.readouterr().out
    assert "best layer" in out
    results = EncodingResults.load(res)
    fs = load_stimulus_features(feats)
    Y = read_stimulus_responses(cli_files / "responses.csv").match(fs.ids).data
    Y = (Y - Y.mean(0)) / Y.std(0)
    groups = np.asarray(fs.groups)
    alphas = np.logspace(-2, 4, 13)
    for j_layer, layer in enumerate(results.layers):
        X = fs[layer].astype(np.float64)
        sd = X.std(0)
        X = (X - X.mean(0)) / np.where(sd > 0, sd, 1.0)
        fold_r, pred, chosen = [], np.zeros_like(Y), []
        for tr, te in GroupKFold(3).split(X, groups=groups):
            inner = list(GroupKFold(3).split(X[tr], groups=groups[tr]))
            rs, al = [], []
            for t in range(Y.shape[1]):
                m = RidgeCV(alphas=alphas, fit_intercept=False, cv=inner,
                            scoring="neg_mean_squared_error").fit(X[tr], Y[tr, t])
                pred[te, t] = m.predict(X[te])
                rs.append(np.corrcoef(pred[te, t], Y[te, t])[0, 1])
                al.append(m.alpha_)
            fold_r.append(rs)
            chosen.append(al)
        np.testing.assert_allclose(results.r[j_layer], np.mean(fold_r, 0), atol=1e-6)
        np.testing.assert_allclose(results.fold_r[:, j_layer], fold_r, atol=1e-6)
        pooled = [np.corrcoef(pred[:, t], Y[:, t])[0, 1] for t in range(Y.shape[1])]
        np.testing.assert_allclose(results.r_pooled[j_layer], pooled, atol=1e-6)
        np.testing.assert_allclose(results.alphas[j_layer], np.exp(np.mean(np.log(chosen), 0)), rtol=1e-9)
    assert results.targets == ["lang", "md"] and results.settings["cv"] == "group-kfold:3"


def test_cli_fit_stimuli_errors(cli_files, tmp_path, capsys):
    from neuroenc.cli import main

    feats = tmp_path / "f.h5"
    main(["extract", "--model", str(cli_files / "model"), "--stimuli", str(cli_files / "sentences.csv"),
          "--text-column", "sentence", "--out", str(feats)])
    capsys.readouterr()
    assert main(["fit", "--features", str(feats), "--responses", str(cli_files / "responses.csv"), "--tr", "2",
                 "--out", str(tmp_path / "r.h5")]) == 1
    assert "--tr: the features are stimulus-level" in capsys.readouterr().err
    (tmp_path / "short.csv").write_text("id,y\ns01,1\nzz,2\n", encoding="utf-8")
    assert main(["fit", "--features", str(feats), "--responses", str(tmp_path / "short.csv"),
                 "--out", str(tmp_path / "r.h5")]) == 1
    err = capsys.readouterr().err
    assert "17 of the stimuli have no response" in err and "['zz']" in err
    # no groups in this features file: group-kfold is an error that says what to do
    assert main(["fit", "--features", str(feats), "--responses", str(cli_files / "responses.csv"),
                 "--cv", "group-kfold:3", "--n-permutations", "0", "--out", str(tmp_path / "r.h5")]) == 1
    assert "no groups were given" in capsys.readouterr().err


def test_cli_fit_subjects_and_baseline(cli_files, tmp_path, capsys):
    """Several responses files are subjects (their mean fitted, a split-half ceiling); --nuisance
    is a table of baseline regressors matched by id."""
    from neuroenc.cli import main

    feats = tmp_path / "f.h5"
    main(["extract", "--model", str(cli_files / "model"), "--stimuli", str(cli_files / "sentences.csv"),
          "--text-column", "sentence", "--group-column", "passage", "--out", str(feats)])
    rng = np.random.default_rng(3)
    ids = [f"s{i:02d}" for i in range(1, 19)]
    for k in range(3):
        rows = ["id,lang"] + [f"{i},{rng.standard_normal():.5f}" for i in ids]
        (tmp_path / f"sub-{k}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "base.csv").write_text("id,length\n" + "\n".join(f"{i},{len(i) + n % 4}" for n, i in enumerate(ids))
                                       + "\n", encoding="utf-8")
    assert main(["fit", "--features", str(feats), "--responses", *[str(tmp_path / f"sub-{k}.csv") for k in range(3)],
                 "--nuisance", str(tmp_path / "base.csv"), "--cv", "group-kfold:3", "--n-permutations", "9",
                 "--out", str(tmp_path / "r.h5")]) == 0
    res = EncodingResults.load(tmp_path / "r.h5")
    assert res.noise_ceiling is not None and res.provenance["group_members"] == ["sub-0.csv", "sub-1.csv",
                                                                                     "sub-2.csv"]
    assert "r" in res.baseline and res.settings["baseline_regressors"] == ["length"]


# ---------------------------------------------------------------------- one design, rows that say what they are
def test_stimulus_responses_are_responses_with_a_space(tmp_path):
    """Stimulus-level responses are Responses whose rows are stimuli; NIfTI betas carry their voxels' space."""
    import nibabel as nib

    from neuroenc.responses import Response, VolumeSpace
    from neuroenc.stimuli.responses import read_stimulus_responses

    r = StimulusResponses(np.arange(6.0).reshape(3, 2), ["c", "a", "b"], ["x", "y"], "sub-01")
    assert isinstance(r, Response) and r.kind == "stimuli" and r.rows == "stimuli"
    assert r.grid == ("stimuli", ("c", "a", "b"))
    m = r.match(["a", "b", "c"])
    np.testing.assert_array_equal(m.data[:, 0], [2.0, 4.0, 0.0])
    assert m.ids == ["a", "b", "c"] and m.select(["y"]).names == ["y"]
    with pytest.raises(ValueError, match="stimulus-level .* no time grid"):
        _ = r.period
    with pytest.raises(ValueError, match="Give exactly one of 'tr'.*'ids'"):
        Response(np.zeros((3, 1)), tr=2.0, ids=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"stimulus id\(s\) \['a'\] have several rows for subject 's'"):
        Response(np.zeros((2, 1)), ids=["a", "a"], subject="s")
    mask = np.zeros((3, 3, 2), dtype=np.uint8)
    mask[0, 1, 0] = mask[2, 0, 1] = 1
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(mask, affine), tmp_path / "mask.nii.gz")
    nib.save(nib.Nifti1Image(np.random.default_rng(0).standard_normal((3, 3, 2, 4)), affine), tmp_path / "b.nii.gz")
    betas = read_stimulus_responses(tmp_path / "b.nii.gz", ids=list("wxyz"), mask=tmp_path / "mask.nii.gz")
    assert isinstance(betas.space, VolumeSpace) and betas.space.n_targets == 2
    np.testing.assert_array_equal(betas.space.ijk, [[0, 1, 0], [2, 0, 1]])
    # the fit keeps the voxels' geometry (the results' target space), so brain maps need no target names
    from neuroenc.mapping.brainmaps import target_space

    rng = np.random.default_rng(1)
    fs = StimulusFeatures({0: rng.standard_normal((4, 3)), 1: rng.standard_normal((4, 3))}, list("wxyz"),
                          list("abcd"), name="betas")
    res = fit_stimuli(fs, betas, cv="kfold:2", inner_cv=2, n_permutations=0, alphas=[1.0])
    where = target_space(res)
    assert where["kind"] == "volume" and where["voxel_index"].tolist() == [2, 13]


def test_the_design_rows_choose_cv_and_null():
    """The CV and the null follow from the design's rows, not from the cv string: a stimulus design
    with cv='auto' is split by group and permuted within groups; a time design refuses kfold."""
    from neuroenc.align import make_stimulus_design
    from neuroenc.encoding import fit_encoding

    layers, Y, groups = simulate_stimulus_layers(n_groups=8, per_group=5, n_targets=2, random_state=3)
    fs = _features(layers, groups)
    design = make_stimulus_design(fs, StimulusResponses(Y, fs.ids, ["a", "b"]))
    assert design.rows == "stimuli" and design.Y.shape == (40, 2)
    res = fit_encoding(design, n_permutations=9, alphas=[1.0, 10.0], inner_cv=2)
    assert res.settings["cv"] == "group-kfold:5" and res.settings["rows"] == "stimuli"
    assert res.settings["null_unit"] == "stimuli" and res.settings["null_within_groups"] is True
    ref = fit_stimuli(fs, StimulusResponses(Y, fs.ids, ["a", "b"]), n_permutations=9, alphas=[1.0, 10.0],
                      inner_cv=2)
    np.testing.assert_allclose(res.r, ref.r, atol=1e-12)
    np.testing.assert_allclose(res.pvalues, ref.pvalues, atol=1e-12)
    with pytest.raises(ValueError, match="The rows are stimuli, split by stimulus"):
        fit_encoding(design, cv="runs", n_permutations=0)
    with pytest.raises(ValueError, match="The rows are samples in time"):
        LayerSweep(cv="kfold:3", refit=False).fit(LayerDesigns([0], lambda _: layers[0], rows="samples"), Y)
