"""One reader for brain data: NIfTI + mask, GIfTI, CIFTI-2, tables, .npy and .fif, each with the
TR it stores (in seconds) and the geometry of its targets; tiny files written here with nibabel."""
from __future__ import annotations

import logging

import mne
import nibabel as nib
import numpy as np
import pytest
from nibabel.cifti2 import cifti2_axes

from neuroenc._validation import DatasetError
from neuroenc.responses import SensorSpace, SurfaceSpace, VolumeSpace, read_bold, read_responses
from neuroenc.responses.bold import read_subject_bold
from neuroenc.responses.space import CompositeSpace

AFFINE = np.diag([3.0, 3.0, 3.0, 1.0])


def _nifti(path, data, tr=2.0, unit="sec"):
    """(x, y, z, t) float32 image with the TR in pixdim[4], in ``unit``."""
    img = nib.Nifti1Image(data.astype(np.float32), AFFINE)
    if unit is not None:
        img.header.set_xyzt_units("mm", unit)
    img.header.set_zooms((3.0, 3.0, 3.0, float(tr)))
    nib.save(img, path)
    return path


def _mask(path, shape, voxels):
    mask = np.zeros(shape, dtype=np.uint8)
    for v in voxels:
        mask[v] = 1
    nib.save(nib.Nifti1Image(mask, AFFINE), path)
    return path


def _gifti(path, data, hemi="CortexLeft", time_step=None):
    """(n_volumes, n_vertices) as one data array per volume, as fMRIPrep writes them."""
    meta = {"TimeStep": f"{time_step:f}"} if time_step is not None else None
    arrays = [nib.gifti.GiftiDataArray(row.astype(np.float32), intent="NIFTI_INTENT_TIME_SERIES",
                                       datatype="NIFTI_TYPE_FLOAT32", meta=meta if i == 0 else None)
              for i, row in enumerate(data)]
    img = nib.gifti.GiftiImage(darrays=arrays,
                               meta=nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": hemi}) if hemi else None)
    nib.save(img, path)
    return path


def _cifti(path, data, step=0.8, unit="SECOND"):
    """Grayordinates: vertices 0, 2, 5 of a 6-vertex left cortex, 1 and 3 of the right one, and two
    voxels of the left thalamus in a (4, 4, 4) grid: 7 columns."""
    left = cifti2_axes.BrainModelAxis.from_mask(np.array([1, 0, 1, 0, 0, 1], bool), name="CortexLeft")
    right = cifti2_axes.BrainModelAxis.from_mask(np.array([0, 1, 0, 1, 0, 0], bool), name="CortexRight")
    vol = np.zeros((4, 4, 4), bool)
    vol[1, 2, 3] = vol[0, 0, 1] = True
    thal = cifti2_axes.BrainModelAxis.from_mask(vol, name="thalamus_left", affine=AFFINE)
    models = left + right + thal
    series = cifti2_axes.SeriesAxis(start=0.0, step=step, size=data.shape[0], unit=unit)
    header = nib.cifti2.Cifti2Header.from_axes((series, models))
    nib.save(nib.Cifti2Image(data.astype(np.float32), header), path)
    return path


def test_nifti_with_mask_reads_voxels_tr_and_geometry(tmp_path, rng):
    vol = rng.standard_normal((3, 2, 2, 30)) + 5.0
    path = _nifti(tmp_path / "bold.nii.gz", vol, tr=2000.0, unit="msec")
    mask = _mask(tmp_path / "mask.nii.gz", (3, 2, 2), [(2, 1, 1), (0, 0, 0), (1, 1, 0)])
    resp = read_responses(path, mask=mask, start=20.0)
    assert resp.tr == 2.0  # 2000 ms in the header
    assert resp.names == ["0_0_0", "1_1_0", "2_1_1"]  # C order, as nilearn's maskers
    np.testing.assert_allclose(resp.data[:, 1], vol[1, 1, 0].astype(np.float32))
    space = resp.space
    assert isinstance(space, VolumeSpace) and space.shape == (3, 2, 2) and space.mask == str(mask)
    assert space.voxel_index.tolist() == [0, 6, 11] and np.allclose(space.affine, AFFINE)
    back = space.to_image(resp.data[0])  # and back through nilearn
    np.testing.assert_allclose(back.get_fdata()[2, 1, 1], vol[2, 1, 1, 0], rtol=1e-6)
    assert resp.info["shape"] == [3, 2, 2] and resp.info["header_tr"] == 2.0


def test_nifti_tr_disagreeing_with_tr_is_an_error(tmp_path, rng, caplog):
    vol = rng.standard_normal((2, 2, 1, 12))
    mask = _mask(tmp_path / "m.nii.gz", (2, 2, 1), [(0, 0, 0), (1, 1, 0)])
    path = _nifti(tmp_path / "b.nii.gz", vol, tr=1.5)
    assert read_responses(path, mask=mask, tr=1.5).tr == 1.5
    with pytest.raises(ValueError, match=r"b\.nii\.gz' stores a TR of 1\.5 s \(its pixdim\[4\] \(xyzt_units "
                                         r"'sec'\)\) but tr=2 s was given"):
        read_responses(path, mask=mask, tr=2.0)
    # a header whose time unit is unset (nibabel leaves pixdim[4] at 1): a warning, tr= wins
    loose = tmp_path / "loose.nii.gz"
    nib.save(nib.Nifti1Image(vol.astype(np.float32), AFFINE), loose)
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        assert read_responses(loose, mask=mask, tr=2.0).tr == 2.0
    assert "stores a TR of 1 s" in caplog.text and "time unit is not set" in caplog.text


def test_nifti_bad_masks(tmp_path, rng):
    path = _nifti(tmp_path / "b.nii.gz", rng.standard_normal((2, 2, 2, 5)))
    with pytest.raises(ValueError, match="is a NIfTI image: give a brain mask"):
        read_responses(path, tr=2.0)
    with pytest.raises(DatasetError, match=r"mask shape \(3, 2, 2\) does not match the volumes of .*b\.nii\.gz"):
        read_responses(path, mask=_mask(tmp_path / "m1.nii.gz", (3, 2, 2), [(0, 0, 0)]))
    nib.save(nib.Nifti1Image(np.ones((2, 2, 2), np.uint8), np.eye(4)), tmp_path / "m2.nii.gz")
    with pytest.raises(DatasetError, match="m2.nii.gz' and .*b.nii.gz' have different affines"):
        read_responses(path, mask=tmp_path / "m2.nii.gz")
    with pytest.raises(DatasetError, match="m3.nii.gz' selects no voxel"):
        read_responses(path, mask=_mask(tmp_path / "m3.nii.gz", (2, 2, 2), []))
    nib.save(nib.Nifti1Image(np.ones((2, 2, 2), np.float32), AFFINE), tmp_path / "three.nii.gz")
    with pytest.raises(DatasetError, match=r"three\.nii\.gz' has 3 dimensions .*expected a 4-D image"):
        read_responses(tmp_path / "three.nii.gz", mask=tmp_path / "m1.nii.gz")


def test_gifti_reads_vertices_hemisphere_and_time_step(tmp_path, rng):
    data = rng.standard_normal((15, 10242))  # fsaverage5: the mesh is known from the count
    path = _gifti(tmp_path / "sub-01_hemi-R_bold.func.gii", data, hemi="CortexRight", time_step=1500.0)
    resp = read_responses(path, start=0.0)
    assert resp.tr == 1.5 and resp.n_samples == 15 and resp.names[:2] == ["R0", "R1"]
    np.testing.assert_allclose(resp.data, data.astype(np.float32))
    space = resp.space
    assert isinstance(space, SurfaceSpace) and space.mesh == "fsaverage5" and set(space.hemi) == {"right"}
    with pytest.raises(ValueError, match=r"stores a TR of 1\.5 s \(its TimeStep metadata, in ms\) but tr=2 s"):
        read_responses(path, tr=2.0)
    # no metadata: the hemisphere from the BIDS name, no TR stored
    bare = _gifti(tmp_path / "sub-01_hemi-L_bold.func.gii", data[:, :40], hemi=None)
    resp = read_responses(bare, tr=2.0)
    assert resp.space.hemi[0] == "left" and resp.space.mesh is None and resp.space.n_vertices == {"left": 40}
    with pytest.raises(ValueError, match="Give the sampling of"):
        read_responses(bare)


def test_cifti_reads_grayordinates(tmp_path, rng):
    data = rng.standard_normal((20, 7))
    path = _cifti(tmp_path / "sub-01_bold.dtseries.nii", data, step=0.8)
    resp = read_responses(path, start=4.0)
    assert resp.tr == 0.8 and resp.start == 4.0 and resp.run == "sub-01_bold"
    assert resp.names == ["L0", "L2", "L5", "R1", "R3", "THALAMUS_LEFT:0_0_1", "THALAMUS_LEFT:1_2_3"]
    np.testing.assert_allclose(resp.data, data.astype(np.float32))
    space = resp.space
    assert isinstance(space, CompositeSpace) and [p.kind for p in space.parts] == ["surface", "volume"]
    surface, volume = space.parts
    assert surface.hemi == ["left"] * 3 + ["right"] * 2 and surface.vertex_index.tolist() == [0, 2, 5, 1, 3]
    assert surface.n_vertices == {"left": 6, "right": 6}
    assert volume.shape == (4, 4, 4) and volume.ijk.tolist() == [[0, 0, 1], [1, 2, 3]]
    assert np.allclose(volume.affine, AFFINE)
    with pytest.raises(ValueError, match=r"stores a TR of 0\.8 s \(its series step, in seconds\) but tr=2 s"):
        read_responses(path, tr=2.0)
    # the data set reader gives the same grayordinates
    data_b, tr_b, info = read_bold(path)
    assert tr_b == 0.8 and info["names"] == resp.names and info["target_space"] == space
    np.testing.assert_allclose(data_b, resp.data.astype(np.float32))


def test_read_bold_carries_the_subject_level_space(tmp_path, rng):
    shape = (3, 2, 1)
    paths = []
    for k in range(3):
        vol = rng.standard_normal(shape + (8,))
        vol[1, 0, 0] = 0.0  # background (flat index 2)
        if k == 2:
            vol[2, 1, 0] = 1.0  # constant in one run only (flat index 5): dropped from every run
        paths.append(_nifti(tmp_path / f"run-{k}.nii.gz", vol, tr=2.0))
    data, tr, info = read_bold(paths[0])
    assert tr == 2.0 and info["target_space"].voxel_index.tolist() == [0, 1, 3, 4, 5]
    runs = read_subject_bold(paths, subject="01")
    for data, _, info in runs:
        space = info["target_space"]
        assert space.voxel_index.tolist() == [0, 1, 3, 4] == info["voxel_index"].tolist()
        assert info["names"] == ["v0", "v1", "v3", "v4"] and data.shape == (8, 4)
    gifti = _gifti(tmp_path / "lh.bold.func.gii", rng.standard_normal((8, 12)), hemi=None, time_step=2000.0)
    data, tr, info = read_bold(gifti)
    assert tr == 2.0 and info["target_space"].hemi == ["left"] * 12  # 'lh.' is the left hemisphere


def test_fif_gets_a_sensor_space(tmp_path, rng):
    info = mne.create_info(["MEG1", "EEG1", "STI"], 200.0, ["mag", "eeg", "stim"])
    raw = mne.io.RawArray(rng.standard_normal((3, 400)), info, verbose="error")
    raw.save(tmp_path / "rec_raw.fif", verbose="error")
    resp = read_responses(tmp_path / "rec_raw.fif")
    assert resp.names == ["MEG1", "EEG1"] and resp.sfreq == 200.0 and resp.run == "rec_raw"
    assert isinstance(resp.space, SensorSpace) and resp.space.ch_types == ["mag", "eeg"]
    assert len(resp.info["sha256"]) == 64


def test_tables_and_npy_have_no_geometry(tmp_path, rng):
    Y = rng.standard_normal((20, 3))
    (tmp_path / "r.csv").write_text("a,b,c\n" + "\n".join(",".join(f"{v:.8f}" for v in row) for row in Y))
    resp = read_responses(tmp_path / "r.csv", tr=2.0)
    assert resp.names == ["a", "b", "c"] and resp.space.kind == "roi" and resp.space.n_targets == 3
    np.testing.assert_allclose(resp.data, Y, atol=1e-8)
    np.save(tmp_path / "m.npy", Y[:, 0])
    resp = read_responses(tmp_path / "m.npy", sfreq=100.0)
    assert resp.space.kind == "sensor" and resp.n_targets == 1
    with pytest.raises(ValueError, match=r"Unknown responses format '\.xlsx'.*\.gii, \.dtseries\.nii, \.fif"):
        (tmp_path / "x.xlsx").write_text("x")
        read_responses(tmp_path / "x.xlsx", tr=2.0)
