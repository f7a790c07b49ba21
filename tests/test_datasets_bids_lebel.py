"""LeBel et al. 2023 (ds003020) on a miniature copy of its real layout."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from _bids_fixtures import best_lag, copy_tree, layouts, mini_lebel  # noqa: F401

from neuroenc.datasets import DatasetError, load_lebel2023, read_lebel_transcript
from neuroenc.stimuli.textgrid import read_chronological
from neuroenc.stimuli.textgrid import read_textgrid_tiers as read_tiers
from neuroenc.datasets.miniature import write_textgrid


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
    # 11 blocks of 291 rows, as the annex size of the real file implies
    assert reps.shape == (11, 291, 16)
    np.testing.assert_allclose(resp.data, reps.mean(axis=0), rtol=1e-6)
    with h5py.File(mini_lebel / "derivative/preprocessed_data/UTS01/wheretheressmoke.hf5") as f:
        np.testing.assert_array_equal(reps[3], f["resp"][3 * 291: 4 * 291])


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
    with pytest.raises(DatasetError, match=r"TR mismatch for .*task-adollshouse_bold\.nii\.gz.*RepetitionTime=2 s.*2\.5 s"):
        load_lebel2023(root, subject="UTS01", source="bold", stories=["adollshouse"])
    # a run that is shorter than respdict says
    short = root / "sub-UTS01/ses-5/func/sub-UTS01_ses-5_task-inamoment_bold.nii.gz"
    img = nib.load(str(short))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., :200], img.affine, img.header), str(short))
    with pytest.raises(DatasetError, match=r"task-inamoment_bold\.nii\.gz' has 200 volumes but respdict\.json says 225"):
        load_lebel2023(root, subject="UTS01", source="bold", stories=["inamoment"])
