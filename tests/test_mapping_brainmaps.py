"""Brain maps: values back into a tiny synthetic NIfTI mask and onto fsaverage5."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from _mapping_fixtures import make_results

from neuroenc.mapping import volume_image
from neuroenc.mapping.brainmaps import mapping_maps, surface_values, target_space


def _mask(shape=(6, 7, 5)):
    data = np.zeros(shape, dtype=np.uint8)
    data[1:4, 2:6, 1:4] = 1
    data[5, 0, 0] = 1
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = [-12, -14, -8]
    return nib.Nifti1Image(data, affine)


def _voxel_results(mask_img, **prov):
    n_vox = int(np.count_nonzero(mask_img.get_fdata()))
    targets = [f"v{i}" for i in range(n_vox)]
    peaks = {t: i % 9 for i, t in enumerate(targets)}
    return make_results("s01", targets=targets, peaks=peaks, provenance=prov)


def test_volume_image_puts_values_in_mask_voxels_in_c_order():
    mask = _mask()
    inside = np.asarray(mask.dataobj) > 0
    values = np.arange(1, inside.sum() + 1, dtype=float)
    img = volume_image(values, mask)
    data = img.get_fdata()
    np.testing.assert_array_equal(data[inside], values)     # C order of the 3-D array
    assert np.all(data[~inside] == 0)
    np.testing.assert_array_equal(img.affine, mask.affine)
    assert data[5, 0, 0] == values[-1]                       # the last voxel in C order
    values[2] = np.nan
    assert volume_image(values, mask).get_fdata()[inside][2] == 0


def test_volume_image_bad_input(tmp_path):
    mask = _mask()
    with pytest.raises(ValueError, match="got 3 values for a mask of 37 voxels"):
        volume_image(np.ones(3), mask)
    with pytest.raises(FileNotFoundError, match="mask image not found: .*nope.nii.gz.*--mask"):
        volume_image(np.ones(3), tmp_path / "nope.nii.gz")
    with pytest.raises(ValueError, match="the mask must be a 3-D image"):
        volume_image(np.ones(3), nib.Nifti1Image(np.ones((2, 2, 2, 2)), np.eye(4)))


def test_target_space_from_provenance(tmp_path):
    mask = _mask()
    nib.save(mask, tmp_path / "mask.nii.gz")
    # relative to the results file's folder
    res = _voxel_results(mask, space="volume", mask="mask.nii.gz")
    res.save(tmp_path / "s01.h5")
    from neuroenc.mapping import load_results

    loaded = load_results(tmp_path / "s01.h5")[0]
    space = target_space(loaded)
    assert space["kind"] == "volume"
    np.testing.assert_array_equal(np.asarray(space["mask_img"].dataobj), np.asarray(mask.dataobj))
    # an explicit mask wins; ROI results have no map
    assert target_space(make_results(), mask_img=None) == {"kind": "roi", "space": None}
    assert target_space(_voxel_results(mask), mask_img=mask)["kind"] == "volume"
    space = target_space(make_results(provenance={"mesh": "fsaverage5"}))
    assert (space["kind"], space["mesh"], space["hemi"]) == ("surface", "fsaverage5", "both")
    assert target_space(make_results(provenance={"space": "fsaverage6"}))["mesh"] == "fsaverage6"


def test_target_space_errors():
    mask = _mask()
    with pytest.raises(ValueError, match="the mask has 37 voxels but the results have 6 targets"):
        target_space(make_results(), mask_img=mask)
    with pytest.raises(ValueError, match="are voxels .* but name no mask"):
        target_space(make_results(provenance={"space": "volume"}))
    with pytest.raises(ValueError, match="must be voxels named 'v<flat index>'"):
        target_space(make_results(provenance={"affine": np.eye(4).tolist(), "shape": [4, 4, 4]}))
    with pytest.raises(ValueError, match=r"voxel index 64 is outside the volume of shape \(4, 4, 4\)"):
        target_space(make_results(targets=["v3", "v64"], peaks={"v3": 1, "v64": 2},
                                  provenance={"affine": np.eye(4).tolist(), "shape": [4, 4, 4]}))
    # a space without a mask, affine or mesh has no map (the report says so)
    assert target_space(make_results(provenance={"space": "subject volume (pycortex)"})) == {
        "kind": "roi", "space": "subject volume (pycortex)"}
    with pytest.raises(ValueError, match=r"Invalid value for \"provenance\['hemi'\]\""):
        target_space(make_results(provenance={"space": "surface", "hemi": "top"}))


def test_surface_values_split_hemispheres():
    values = np.arange(20484, dtype=float)
    split = surface_values(values)
    np.testing.assert_array_equal(split["left"], values[:10242])
    np.testing.assert_array_equal(split["right"], values[10242:])
    assert list(surface_values(values[:10242], hemi="right")) == ["right"]
    with pytest.raises(ValueError, match="got 6 values for fsaverage5 \\(both\\), which has 20484 vertices"):
        surface_values(np.ones(6))


def test_mapping_maps_volume_and_roi():
    mask = _mask()
    space = {"kind": "volume", "mask_img": mask}
    maps = mapping_maps({"best_depth": np.linspace(0, 1, 37), "r": np.full(37, 0.2)}, space)
    assert set(maps) == {"best_depth", "r"}
    inside = np.asarray(mask.dataobj) > 0
    np.testing.assert_allclose(maps["best_depth"].get_fdata()[inside], np.linspace(0, 1, 37), atol=1e-6)
    assert mapping_maps({"r": np.ones(6)}, {"kind": "roi"}) == {}


def test_voxels_named_by_flat_index_with_affine_and_shape():
    """The datasets' convention: targets 'v<flat index>' + provenance affine and shape."""
    shape, affine = (4, 5, 3), np.diag([3.0, 3.0, 3.0, 1.0])
    idx = np.array([59, 7, 30, 12])             # any subset, any order
    targets = [f"v{i}" for i in idx]
    res = make_results(targets=targets, peaks={t: 2 for t in targets},
                       provenance={"space": "MNI152NLin2009cAsym", "affine": affine.tolist(), "shape": list(shape)})
    space = target_space(res)
    assert space["kind"] == "volume"
    np.testing.assert_array_equal(space["voxel_index"], idx)
    assert np.count_nonzero(np.asarray(space["mask_img"].dataobj)) == 4
    img = mapping_maps({"r": np.array([0.1, 0.2, 0.3, 0.4])}, space)["r"]
    data = img.get_fdata()
    np.testing.assert_array_equal(img.affine, affine)
    for value, flat in zip([0.1, 0.2, 0.3, 0.4], idx):
        assert data[np.unravel_index(flat, shape)] == pytest.approx(value)
    assert np.count_nonzero(data) == 4
    with pytest.raises(ValueError, match="got 3 values for 4 voxel indices"):
        volume_image(np.ones(3), space["mask_img"], idx)


def test_vertices_named_by_hemisphere():
    names = ["L0", "L10241", "R5"]
    split = surface_values(np.array([1.0, 2.0, 3.0]), names=names)
    assert split["left"].shape == (10242,) and split["right"].shape == (10242,)
    assert split["left"][0] == 1 and split["left"][10241] == 2 and split["right"][5] == 3
    assert np.isnan(split["left"][1:10241]).all()
    assert list(surface_values(np.array([1.0]), names=["R3"])) == ["right"]
    with pytest.raises(ValueError, match="vertex 40000 of the left hemisphere is outside fsaverage5"):
        surface_values(np.array([1.0]), names=["L40000"])


def test_load_mesh_offline_error(monkeypatch):
    import nilearn.datasets

    def offline(mesh):
        raise ConnectionError("no network")  # what requests raises offline (an OSError)

    monkeypatch.setattr(nilearn.datasets, "load_fsaverage", offline)
    from neuroenc.mapping.brainmaps import load_mesh

    with pytest.raises(FileNotFoundError, match="the fsaverage6 mesh is not available.*fsaverage5 offline"):
        load_mesh("fsaverage6")
