"""Le Petit Prince (ds003643) on a miniature copy of its real layout."""
from __future__ import annotations

import logging
import shutil

import nibabel as nib
import numpy as np
import pytest
from _bids_fixtures import (  # noqa: F401
    best_lag,
    copy_tree,
    flatten_nifti,
    layouts,
    make_voxel_constant,
    mini_lpp,
)

from neuroenc.datasets import DatasetError, load_lpp, make_miniature
from neuroenc.datasets.bids import index_runs
from neuroenc.datasets.lpp import LPP_SCAN_PREPROC, LPP_SCAN_RAW


def test_preprocessed_sections_follow_run_order(mini_lpp):
    ds = load_lpp(mini_lpp, "EN", subjects=["EN057", "EN059"], sections=[1, 2, 9])
    assert ds.runs == ["section-1", "section-2", "section-9"]
    # run labels are scanner series numbers: EN059's derivatives skip 15 and 16
    assert ds.info["run_map"]["EN059"] == {1: "07", 2: "08", 3: "09", 4: "10", 5: "11", 6: "12",
                                           7: "13", 8: "14", 9: "17"}
    assert ds.info["run_map"]["EN057"][1] == "15" and ds.info["run_map"]["EN057"][9] == "23"
    for sub in ("EN057", "EN059"):
        for k in (1, 2, 9):
            resp = ds.responses[sub][f"section-{k}"]
            assert resp.n_samples == LPP_SCAN_PREPROC["EN"][k - 1]  # 282, 298, 368
            assert resp.tr == 2.0  # from the raw echo sidecars: the derivatives have none
            assert resp.start == 0.0
    source = ds.responses["EN059"]["section-9"].info["source"]
    assert source.endswith("run-17_space-MNIColin27_desc-preproc_bold.nii.gz")


def test_raw_runs_skip_aborted_series(mini_lpp):
    en = load_lpp(mini_lpp, "EN", subjects=["EN059"], sections=[8, 9], source="raw", echo=2)
    assert en.info["run_map"]["EN059"][9] == "17"  # runs 15 and 16 were aborted
    resp = en.responses["EN059"]["section-9"]
    assert resp.n_samples == LPP_SCAN_RAW["EN"][8] == 372
    assert resp.start == -8.0  # 4 extra scans before the audio in the raw EN runs
    assert resp.info["source"].endswith("run-17_echo-2_bold.nii.gz")
    cn = load_lpp(mini_lpp, "CN", subjects=["CN032"], sections=[1], source="raw", echo=1)
    assert cn.info["run_map"]["CN032"][1] == "05"  # run-03 was aborted
    assert cn.responses["CN032"]["section-1"].start == 0.0
    assert cn.responses["CN032"]["section-1"].n_samples == 287


def test_raw_and_preprocessed_share_the_audio_clock(mini_lpp):
    pre = load_lpp(mini_lpp, "EN", subjects=["EN057"], sections=[3])
    raw = load_lpp(mini_lpp, "EN", subjects=["EN057"], sections=[3], source="raw", echo=1)
    tr = pre.transcripts["section-3"]
    for ds in (pre, raw):
        resp = ds.responses["EN057"]["section-3"]
        assert best_lag(resp.data[:, :8], tr.onsets, resp.times, resp.tr) == 0


def test_transcripts_from_the_annotation_textgrids(mini_lpp):
    ds = load_lpp(mini_lpp, "FR", sections=[1, 2])
    assert ds.subjects == ["FR001"]
    tr = ds.transcripts["section-1"]
    assert tr.name == "section-1" and "#" not in tr.words
    assert tr.end < 613.5  # README audio length of FR section 1
    assert "annotation/FR/lppFR_section1.TextGrid" in tr.source


@pytest.mark.slow
def test_run_index_over_the_whole_real_layout(layouts, tmp_path):
    root = make_miniature("lpp", tmp_path, subjects=["EN057"], runs=["1"], placeholders=True,
                          layouts=layouts)
    table = index_runs(root, derivatives="derivatives", filters={"space": "MNIColin27"})
    counts = table.groupby("subject").size()
    assert len(counts) == 112 and (counts == 9).all()  # 49 EN + 35 CN + 28 FR subjects
    raw = index_runs(root, subjects=["CN032", "EN059"], filters={"echo": 1})
    assert raw.groupby("subject").size().to_dict() == {"CN032": 10, "EN059": 11}
    assert list(raw[raw["subject"] == "EN059"]["run"])[-3:] == ["15", "16", "17"]
    # the real sidecar gives the TR; placeholders are refused with a clear message
    en57 = index_runs(root, subjects=["EN057"], filters={"echo": 1, "run": 15})
    assert en57["tr"].tolist() == [2.0]  # the real copied sidecar
    with pytest.raises(DatasetError, match=r"sub-EN059_task-lppEN_run-07.*is empty"):
        load_lpp(root, "EN", subjects=["EN059"], sections=[1])


def test_errors_name_the_file(mini_lpp, tmp_path):
    with pytest.raises(ValueError, match="Invalid value for 'language'"):
        load_lpp(mini_lpp, "DE")
    with pytest.raises(ValueError, match="not in the FR cohort"):
        load_lpp(mini_lpp, "FR", subjects=["EN057"])
    root = copy_tree(mini_lpp, tmp_path)
    (root / "annotation/EN/lppEN_section2.TextGrid").unlink()
    with pytest.raises(FileNotFoundError, match=r"run 'section-2' has no transcript: .*lppEN_section2\.TextGrid"):
        load_lpp(root, "EN", subjects=["EN057"], sections=[2])
    path = root / "derivatives/sub-EN057/func/sub-EN057_task-lppEN_run-15_space-MNIColin27_desc-preproc_bold.nii.gz"
    img = nib.load(str(path))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., :280], img.affine, img.header), str(path))
    with pytest.raises(DatasetError, match=r"run-15_space-MNIColin27_desc-preproc_bold\.nii\.gz' \(section 1\) "
                                           r"has 280 volumes; the README gives 282"):
        load_lpp(root, "EN", subjects=["EN057"], sections=[1])
    ds = load_lpp(root, "EN", subjects=["EN057"], sections=[1], check_lengths=False)
    assert ds.responses["EN057"]["section-1"].n_samples == 280
    img = nib.load(str(path))
    img.header.set_zooms(img.header.get_zooms()[:3] + (1.0,))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header), str(path))
    with pytest.raises(DatasetError, match=r"TR mismatch for .*run-15_space-MNIColin27.*RepetitionTime=2 s"):
        load_lpp(root, "EN", subjects=["EN057"], sections=[1], check_lengths=False)


def test_trailing_aborted_raw_run_after_the_ninth_section(mini_lpp, tmp_path, caplog):
    root = copy_tree(mini_lpp, tmp_path)
    func = root / "sub-EN057/func"
    last = func / "sub-EN057_task-lppEN_run-23_echo-2_bold.nii.gz"
    extra = func / "sub-EN057_task-lppEN_run-24_echo-2_bold.nii.gz"
    img = nib.load(str(last))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., :10], img.affine, img.header), str(extra))
    shutil.copyfile(str(last).replace(".nii.gz", ".json"), str(extra).replace(".nii.gz", ".json"))
    with caplog.at_level(logging.INFO, logger="neuroenc"):
        ds = load_lpp(root, "EN", subjects=["EN057"], sections=[9], source="raw", echo=2)
    assert ds.info["run_map"]["EN057"] == {k: str(14 + k) for k in range(1, 10)}  # runs 15..23
    assert ds.responses["EN057"]["section-9"].n_samples == LPP_SCAN_RAW["EN"][8] == 372
    assert "skipped raw run(s) ['run-24 (10 volumes)']" in caplog.text
    by_order = load_lpp(root, "EN", subjects=["EN057"], sections=[9], source="raw", echo=2,
                        check_lengths=False)
    assert by_order.info["run_map"]["EN057"][9] == "23"
    # a tenth full-length run is not a section either: still nine sections, run-24 skipped
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header), str(extra))
    again = load_lpp(root, "EN", subjects=["EN057"], sections=[9], source="raw", echo=2,
                     check_lengths=False)
    assert again.info["run_map"]["EN057"][9] == "23"


def test_one_voxel_set_per_subject(mini_lpp, tmp_path, caplog):
    root = copy_tree(mini_lpp, tmp_path)
    deriv = root / "derivatives/sub-EN057/func"
    paths = {k: deriv / f"sub-EN057_task-lppEN_run-{14 + k}_space-MNIColin27_desc-preproc_bold.nii.gz"
             for k in (1, 2, 3)}
    make_voxel_constant(paths[2], 5)  # constant in section 2 only
    with caplog.at_level(logging.INFO, logger="neuroenc"):
        ds = load_lpp(root, "EN", subjects=["EN057", "EN059"], sections=[1, 2, 3])
    expected = [f"v{i}" for i in range(16) if i != 5]
    for k in (1, 2, 3):
        resp = ds.responses["EN057"][f"section-{k}"]
        assert resp.names == expected
        np.testing.assert_array_equal(resp.data, np.delete(flatten_nifti(paths[k]), 5, axis=1))
    assert "sub-EN057: kept the 15 voxels that vary in all 3 runs; dropped 1" in caplog.text
    # the other subject keeps every voxel
    assert ds.responses["EN059"]["section-2"].names == [f"v{i}" for i in range(16)]
    # sections loaded without section 2 keep voxel 5
    ds13 = load_lpp(root, "EN", subjects=["EN057"], sections=[1, 3])
    assert ds13.responses["EN057"]["section-3"].n_targets == 16
    # an explicit mask is used as given
    mask = np.zeros((16, 1, 1), bool)
    mask[[2, 5, 7]] = True
    masked = load_lpp(root, "EN", subjects=["EN057"], sections=[2], mask=mask)
    assert masked.responses["EN057"]["section-2"].names == ["v2", "v5", "v7"]
