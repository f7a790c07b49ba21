"""LeBel et al. 2023 (ds003020) on a miniature copy of its real layout."""
from __future__ import annotations

import json
import logging
import shutil

import h5py
import numpy as np
import pytest
from _bids_fixtures import (  # noqa: F401
    best_lag,
    copy_tree,
    flatten_nifti,
    layouts,
    make_voxel_constant,
    mini_lebel,
)

from neuroenc.datasets import DatasetError, load_lebel2023
from neuroenc.datasets.lebel2023 import read_lebel_transcript, split_repeats
from neuroenc.datasets.miniature import write_textgrid
from neuroenc.stimuli.textgrid import read_chronological
from neuroenc.stimuli.textgrid import read_textgrid_tiers as read_tiers


def test_preprocessed_rows_are_respdict_minus_trim(mini_lebel):
    respdict = json.loads((mini_lebel / "derivative" / "respdict.json").read_text())
    # the real respdict.json of ds003020
    assert (respdict["adollshouse"], respdict["inamoment"], respdict["wheretheressmoke"]) == (261, 225, 311)
    ds = load_lebel2023(mini_lebel, subject=["UTS01", "sub-UTS02"])
    assert ds.subjects == ["UTS01", "UTS02"]
    assert sorted(ds.runs) == ["adollshouse", "inamoment", "wheretheressmoke"]
    for sub in ds.subjects:
        for story, resp in ds.responses[sub].items():
            assert resp.n_samples == respdict[story] - 20
            assert resp.tr == 2.0  # top-level task-<story>_bold.json
            assert resp.start == 10.0
            assert resp.times[0] == 10.0 and resp.times[1] == 12.0
    assert ds.info["respdict"]["adollshouse"] == 261
    assert ds.responses["UTS01"]["adollshouse"].n_samples == 241


def test_repeated_test_story_is_averaged(mini_lebel):
    ds = load_lebel2023(mini_lebel, subject="UTS01", stories=["wheretheressmoke"])
    resp = ds.responses["UTS01"]["wheretheressmoke"]
    reps = resp.info["repeats"]
    # 11 blocks of 291 rows, as the annex size of the real file implies: the 10 raw repeats and
    # their mean, which is not a repeat
    assert reps.shape == (10, 291, 16) and resp.info["stored_mean_dropped"] is True
    np.testing.assert_allclose(resp.data, reps.mean(axis=0), rtol=1e-6)
    with h5py.File(mini_lebel / "derivative/preprocessed_data/UTS01/wheretheressmoke.hf5") as f:
        assert f["resp"].shape == (11 * 291, 16)
        np.testing.assert_array_equal(reps[3], f["resp"][3 * 291: 4 * 291])
        np.testing.assert_allclose(resp.data, f["resp"][10 * 291:], rtol=1e-5, atol=1e-5)


def _write_smoke(root, blocks, flat=True):
    path = root / "derivative/preprocessed_data/UTS01/wheretheressmoke.hf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("resp", data=blocks.reshape(-1, blocks.shape[-1]) if flat else blocks)
    return path


@pytest.mark.parametrize("flat", [True, False])
def test_repeat_layouts_with_and_without_a_stored_mean(mini_lebel, tmp_path, rng, flat):
    root = copy_tree(mini_lebel, tmp_path)
    reps = rng.standard_normal((5, 291, 4))
    # 5 repeats and their mean (UTS04-09's 6 blocks): the mean is dropped
    _write_smoke(root, np.concatenate([reps, reps.mean(axis=0, keepdims=True)]), flat)
    resp = load_lebel2023(root, subject="UTS01", stories=["wheretheressmoke"]).responses["UTS01"]["wheretheressmoke"]
    np.testing.assert_array_equal(resp.info["repeats"], reps)
    assert resp.info["stored_mean_dropped"] is True
    np.testing.assert_allclose(resp.data, reps.mean(axis=0), rtol=1e-12)
    # 6 blocks without a mean: all six are repeats
    six = np.concatenate([reps, rng.standard_normal((1, 291, 4))])
    _write_smoke(root, six, flat)
    resp = load_lebel2023(root, subject="UTS01", stories=["wheretheressmoke"]).responses["UTS01"]["wheretheressmoke"]
    np.testing.assert_array_equal(resp.info["repeats"], six)
    assert resp.info["stored_mean_dropped"] is False
    np.testing.assert_allclose(resp.data, six.mean(axis=0), rtol=1e-12)
    # voxels= reads the same columns of every block
    _write_smoke(root, np.concatenate([reps, reps.mean(axis=0, keepdims=True)]), flat)
    ds = load_lebel2023(root, subject="UTS01", stories=["wheretheressmoke"], voxels=[1, 3])
    resp = ds.responses["UTS01"]["wheretheressmoke"]
    np.testing.assert_array_equal(resp.info["repeats"], reps[:, :, [1, 3]])
    assert resp.names == ["v1", "v3"]


def test_split_repeats_tolerance():
    rng = np.random.default_rng(3)
    reps = rng.standard_normal((10, 20, 3)).astype(np.float32)
    mean = reps.mean(axis=0)
    out, had = split_repeats(np.concatenate([reps, mean[None]]))
    assert had and out.shape == (10, 20, 3)
    # float32 rounding of the stored mean is within tolerance; a real difference is not
    off = mean.copy()
    off[4, 1] += 1e-2 * np.abs(reps).max()
    out, had = split_repeats(np.concatenate([reps, off[None]]))
    assert not had and out.shape == (11, 20, 3)
    # NaN voxels in the repeats are NaN in their mean too
    reps[:, :, 2] = np.nan
    out, had = split_repeats(np.concatenate([reps, reps.mean(axis=0)[None]]))
    assert had and out.shape[0] == 10
    # two blocks, or all zeros: nothing to tell a mean from a repeat
    assert split_repeats(np.zeros((3, 5, 2)))[1] is False
    assert split_repeats(np.ones((2, 5, 2)))[1] is False


def test_raw_runs_share_one_voxel_set(mini_lebel, tmp_path, caplog):
    root = copy_tree(mini_lebel, tmp_path)
    func = root / "sub-UTS01/ses-5/func"
    path = func / "sub-UTS01_ses-5_task-adollshouse_bold.nii.gz"
    make_voxel_constant(path, 3)
    with caplog.at_level(logging.INFO, logger="neuroenc"):
        ds = load_lebel2023(root, subject="UTS01", source="bold", stories=["adollshouse", "inamoment"])
    a, b = ds.responses["UTS01"]["adollshouse"], ds.responses["UTS01"]["inamoment"]
    assert a.names == b.names == [f"v{i}" for i in range(16) if i != 3]
    np.testing.assert_array_equal(a.data, np.delete(flatten_nifti(path), 3, axis=1)[10:-10])
    assert "sub-UTS01: kept the 15 voxels that vary in all 2 runs; dropped 1" in caplog.text


def test_no_subject_folders(mini_lebel, tmp_path):
    root = copy_tree(mini_lebel, tmp_path)
    shutil.rmtree(root / "derivative/preprocessed_data")
    with pytest.raises(DatasetError, match=r"no subject folders 'UTS\*' under .*derivative/preprocessed_data'\. "
                                           r"Is root the ds003020 folder"):
        load_lebel2023(root, subject=None)
    for sub in ("sub-UTS01", "sub-UTS02"):
        shutil.rmtree(root / sub)
    with pytest.raises(DatasetError, match=r"no subject folders 'sub-\*' under"):
        load_lebel2023(root, subject=None, source="bold")


def test_transcripts_drop_noise_marks_and_follow_the_textgrid(mini_lebel):
    path = mini_lebel / "derivative" / "TextGrids" / "adollshouse.TextGrid"
    tiers = read_tiers(path)
    assert list(tiers) == ["phone", "word"]
    kept = [(a, b, t) for a, b, t in tiers["word"] if t.lower().strip("{}") not in ("sp", "lg", "br", "ns")]
    tr = read_lebel_transcript(mini_lebel, "adollshouse")
    assert tr.words == tuple(t for _, _, t in kept)
    np.testing.assert_array_equal(tr.onsets, [a for a, _, _ in kept])
    assert not {"sp", "{LG}", "{BR}", "{NS}"} & set(tr.words)
    assert any(t in ("{LG}", "{BR}", "{NS}") for _, _, t in tiers["word"])  # marks were there


def test_chronological_textgrid_equals_long_format(tmp_path):
    tiers = {"phone": [(0.0, 0.5, "sp"), (0.5, 0.7, "DH"), (0.7, 1.2, "AH0")],
             "word": [(0.0, 0.5, "sp"), (0.5, 1.2, 'the "old"'), (1.2, 2.0, "{LG}")]}
    long_ = write_textgrid(tmp_path / "a.TextGrid", tiers, 2.0)
    chrono = write_textgrid(tmp_path / "b.TextGrid", tiers, 2.0, chronological=True)
    assert chrono.read_text().startswith('"Praat chronological TextGrid text file"')
    assert read_chronological(chrono) == tiers
    assert read_tiers(long_) == read_tiers(chrono) == tiers


def test_chronological_textgrid_story_loads(mini_lebel):
    path = mini_lebel / "derivative" / "TextGrids" / "inamoment.TextGrid"
    assert path.read_text().startswith('"Praat chronological')
    tr = read_lebel_transcript(mini_lebel, "inamoment")
    words = [t for _, _, t in read_chronological(path)["word"] if t.lower().strip("{}") not in ("sp", "lg", "br", "ns")]
    assert list(tr.words) == words and len(words) > 500


def test_raw_bold_trimmed_and_untrimmed(mini_lebel):
    trimmed = load_lebel2023(mini_lebel, subject="UTS01", source="bold", stories=["adollshouse", "inamoment"])
    full = load_lebel2023(mini_lebel, subject="UTS01", source="bold", stories=["adollshouse", "inamoment"],
                          trim=False)
    for story, n in (("adollshouse", 261), ("inamoment", 225)):
        a, b = trimmed.responses["UTS01"][story], full.responses["UTS01"][story]
        assert (a.n_samples, b.n_samples) == (n - 20, n)
        assert (a.start, b.start) == (10.0, -10.0)
        np.testing.assert_array_equal(a.data, b.data[10:-10])
        np.testing.assert_allclose(a.times, b.times[10:-10])


def test_raw_repeats_are_separate_runs_with_the_story_transcript(mini_lebel):
    ds = load_lebel2023(mini_lebel, subject="UTS01", source="bold", stories=["wheretheressmoke"])
    keys = list(ds.responses["UTS01"])
    assert keys == [f"wheretheressmoke_run-{i}" for i in range(1, 11)]  # sessions 2..11 in order
    assert ds.transcripts["wheretheressmoke_run-3"].words == ds.transcripts["wheretheressmoke_run-1"].words


def test_timing_convention_recovers_the_synthetic_drive(mini_lebel):
    ds = load_lebel2023(mini_lebel, subject="UTS01", stories=["adollshouse"])
    resp = ds.responses["UTS01"]["adollshouse"]
    tr = ds.transcripts["adollshouse"]
    assert best_lag(resp.data[:, :8], tr.onsets, resp.times, resp.tr) == 0


def test_errors_name_the_file(mini_lebel, tmp_path):
    root = copy_tree(mini_lebel, tmp_path)
    with pytest.raises(ValueError, match="already trimmed"):
        load_lebel2023(root, subject="UTS01", trim=False)
    with pytest.raises(ValueError, match="no story 'nosuchstory'"):
        load_lebel2023(root, subject="UTS01", stories=["nosuchstory"])
    # a story without its TextGrid
    (root / "derivative/TextGrids/inamoment.TextGrid").unlink()
    with pytest.raises(FileNotFoundError, match=r"run 'inamoment' has no transcript: .*inamoment\.TextGrid"):
        load_lebel2023(root, subject="UTS01", stories=["inamoment"])
    # a missing response file
    (root / "derivative/preprocessed_data/UTS02/adollshouse.hf5").unlink()
    with pytest.raises(FileNotFoundError, match=r"UTS02/adollshouse\.hf5"):
        load_lebel2023(root, subject="UTS02", stories=["adollshouse"])
    # rows that do not match respdict - 20
    with h5py.File(root / "derivative/preprocessed_data/UTS01/adollshouse.hf5", "w") as f:
        f.create_dataset("resp", data=np.zeros((240, 4)))
    with pytest.raises(DatasetError, match=r"adollshouse\.hf5.*expected 241 rows"):
        load_lebel2023(root, subject="UTS01", stories=["adollshouse"])


def test_tr_mismatch_between_sidecar_and_nifti(mini_lebel, tmp_path):
    import nibabel as nib

    root = copy_tree(mini_lebel, tmp_path)
    path = root / "sub-UTS01/ses-5/func/sub-UTS01_ses-5_task-adollshouse_bold.nii.gz"
    img = nib.load(str(path))
    img.header.set_zooms(img.header.get_zooms()[:3] + (2.5,))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header), str(path))
    with pytest.raises(DatasetError,
                       match=r"TR mismatch for .*task-adollshouse_bold\.nii\.gz.*RepetitionTime=2 s.*2\.5 s"):
        load_lebel2023(root, subject="UTS01", source="bold", stories=["adollshouse"])
    # a run that is shorter than respdict says
    short = root / "sub-UTS01/ses-5/func/sub-UTS01_ses-5_task-inamoment_bold.nii.gz"
    img = nib.load(str(short))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., :200], img.affine, img.header), str(short))
    with pytest.raises(DatasetError,
                       match=r"task-inamoment_bold\.nii\.gz' has 200 volumes but respdict\.json says 225"):
        load_lebel2023(root, subject="UTS01", source="bold", stories=["inamoment"])
