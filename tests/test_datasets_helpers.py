"""Helpers shared by the loaders: file checks, transcript lookup, subject discovery, the
subject-level voxel mask, and DatasetError's place among the exceptions."""
from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from neuroenc._validation import check_content
from neuroenc.datasets import DatasetError
from neuroenc.datasets._base import check_transcript
from neuroenc.datasets.bids import find_subjects
from neuroenc.datasets.miniature import write_gifti, write_nifti
from neuroenc.responses import read_bold
from neuroenc.responses.bold import read_subject_bold


def test_dataset_error_is_a_value_error():
    assert issubclass(DatasetError, ValueError)
    with pytest.raises(ValueError, match="broken"):
        raise DatasetError("broken")


def test_check_content(tmp_path):
    good = tmp_path / "a.txt"
    good.write_text("x")
    assert check_content(good) == good
    with pytest.raises(FileNotFoundError, match=r"TextGrid not found: .*b\.txt'\. Fetch it\.$"):
        check_content(tmp_path / "b.txt", "TextGrid", fix="Fetch it.")
    empty = tmp_path / "e.txt"
    empty.write_text("")
    with pytest.raises(DatasetError, match=r"events file .*e\.txt' is empty \(0 bytes\)"):
        check_content(empty, "events file")
    link = tmp_path / "annexed.nii.gz"
    os.symlink(tmp_path / ".git/annex/objects/XX/missing", link)
    with pytest.raises(FileNotFoundError, match=r"BOLD file .*annexed\.nii\.gz' is a git-annex link whose "
                                                r"content is not here; fetch it with 'datalad get annexed\.nii\.gz'"):
        check_content(link, "BOLD file")


def test_check_transcript(tmp_path):
    path = tmp_path / "story.TextGrid"
    with pytest.raises(FileNotFoundError, match=r"^run 'story-2' has no transcript: .*story\.TextGrid' is "
                                                r"missing\. Fetch it or leave the run out\.$"):
        check_transcript(path, "story-2", "Fetch it or leave the run out.")
    os.symlink(tmp_path / "absent", path)  # an annex link without content
    with pytest.raises(FileNotFoundError, match="TextGrid .*story.TextGrid' is a git-annex link"):
        check_transcript(path, "story-2", "", what="TextGrid")
    path.unlink()
    path.write_text("File type")
    assert check_transcript(path, "story-2", "") == path


def test_find_subjects(tmp_path):
    for name in ("sub-10", "sub-2", "sub-EN1", "sub-CN3", "UTS01"):
        (tmp_path / name).mkdir()
    (tmp_path / "sub-3.txt").write_text("")  # not a folder
    assert find_subjects(tmp_path) == ["2", "10", "CN3", "EN1"]
    assert find_subjects(tmp_path, label_start="EN") == ["EN1"]
    assert find_subjects(tmp_path, prefix="", label_start="UTS") == ["UTS01"]
    with pytest.raises(DatasetError, match=r"no subject folders 'sub-FR\*' under .*'\. Fetch them\.$"):
        find_subjects(tmp_path, label_start="FR", hint="Fetch them.")
    with pytest.raises(DatasetError, match=r"no subject folders 'sub-\*' under .*nowhere'\.$"):
        find_subjects(tmp_path / "nowhere")


def _runs(tmp_path, rng, n_vox=6, shape=None):
    paths = []
    for k in range(3):
        data = rng.standard_normal((20, n_vox)).astype(np.float32)
        paths.append(write_nifti(tmp_path / f"run-{k}_bold.nii.gz", data, 2.0, shape=shape))
    return paths


def test_read_subject_bold_keeps_voxels_that_vary_in_every_run(tmp_path, rng, caplog):
    import nibabel as nib

    paths = _runs(tmp_path, rng)
    for path, voxel in ((paths[0], 1), (paths[2], 4)):  # constant in one run each
        img = nib.load(str(path))
        vol = np.asarray(img.dataobj).copy()
        vol[voxel, 0, 0, :] = 7.0
        nib.save(nib.Nifti1Image(vol, img.affine, img.header), str(path))
    # per run, read_bold keeps what varies in that run only
    assert read_bold(paths[0])[2]["names"] == ["v0", "v2", "v3", "v4", "v5"]
    with caplog.at_level(logging.INFO, logger="neuroenc"):
        runs = read_subject_bold(paths, subject="07")
    for path, (data, tr, info) in zip(paths, runs):
        assert info["names"] == ["v0", "v2", "v3", "v5"]
        np.testing.assert_array_equal(info["voxel_index"], [0, 2, 3, 5])
        full = np.asarray(nib.load(str(path)).dataobj)[:, 0, 0, :].T
        np.testing.assert_array_equal(data, full[:, [0, 2, 3, 5]])
        assert tr == 2.0 and data.flags["C_CONTIGUOUS"]
    assert "sub-07: kept the 4 voxels that vary in all 3 runs; dropped 2" in caplog.text
    # an explicit mask is used as given, constant voxels included
    mask = np.zeros((6, 1, 1), bool)
    mask[[1, 4]] = True
    assert [r[2]["names"] for r in read_subject_bold(paths, mask=mask)] == [["v1", "v4"]] * 3
    # a single run: its own varying voxels
    assert read_subject_bold(paths[:1])[0][2]["names"] == ["v0", "v2", "v3", "v4", "v5"]


def test_read_subject_bold_errors(tmp_path, rng):
    import nibabel as nib

    a = _runs(tmp_path / "a", rng, n_vox=6)
    b = _runs(tmp_path / "b", rng, n_vox=6, shape=(3, 2, 1))
    with pytest.raises(DatasetError, match=r"sub-01: the runs have different volume shapes "
                                           r"\[\(3, 2, 1\), \(6, 1, 1\)\] .*not in one space.*pass mask="):
        read_subject_bold([a[0], b[0]], subject="01")
    # the runs vary in disjoint voxels
    for k, path in enumerate(a[:2]):
        img = nib.load(str(path))
        vol = np.asarray(img.dataobj).copy()
        vol[(slice(0, 3) if k == 0 else slice(3, 6)), 0, 0, :] = 1.0
        nib.save(nib.Nifti1Image(vol, img.affine, img.header), str(path))
    with pytest.raises(DatasetError, match=r"^subject: no voxel varies in every run \(2 runs"):
        read_subject_bold(a[:2])


def test_read_subject_bold_surfaces_keep_every_vertex(tmp_path, rng):
    paths = []
    for k in range(2):
        data = rng.standard_normal((10, 5)).astype(np.float32)
        data[:, k] = 0.0  # a constant vertex is kept: surfaces have no background
        paths.append(write_gifti(tmp_path / f"run-{k}.func.gii", data))
    runs = read_subject_bold(paths)
    assert [r[2]["names"] for r in runs] == [["0", "1", "2", "3", "4"]] * 2
    assert runs[1][0][:, 1].tolist() == [0.0] * 10
