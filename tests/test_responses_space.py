"""Target spaces: geometry as objects that select, join, write and read themselves back exactly,
and the Response that carries one."""
from __future__ import annotations

import json

import mne
import nibabel as nib
import numpy as np
import pytest

from neuroenc.responses import Response, RoiSpace, SensorSpace, SurfaceSpace, VolumeSpace
from neuroenc.responses.response import pick_channels
from neuroenc.responses.space import (
    CompositeSpace,
    ParcelSpace,
    concat_spaces,
    pack_array,
    space_from_dict,
    unpack_array,
)

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def _roundtrip(space):
    """Through JSON text, as the results' provenance stores it."""
    return space_from_dict(json.loads(json.dumps(space.to_dict())))


def test_pack_array_is_exact_and_compact(rng):
    sorted_idx = np.flatnonzero(rng.random(400_000) < 0.5)  # ~200k sorted voxel indices
    packed = pack_array(sorted_idx)
    assert packed["encoding"] == "zlib-delta-int32" and packed["size"] == sorted_idx.size
    np.testing.assert_array_equal(unpack_array(packed), sorted_idx)
    contiguous = pack_array(np.arange(50_000, 250_000))
    assert len(contiguous["data"]) < 2_000  # a range costs almost nothing
    shuffled = rng.permutation(1000)
    np.testing.assert_array_equal(unpack_array(pack_array(shuffled)), shuffled)
    np.testing.assert_array_equal(unpack_array(pack_array(shuffled, delta=False)), shuffled)
    assert pack_array([3, 1, 2]) == [3, 1, 2]  # short arrays stay readable
    with pytest.raises(TypeError, match="pack_array needs integers, got dtype float64"):
        pack_array(np.ones(3))
    with pytest.raises(ValueError, match="Invalid value for 'encoding' of a packed array"):
        unpack_array({"encoding": "gzip", "size": 1, "data": ""})


def test_volume_space_maps_values_to_their_voxels_in_any_order():
    mask = np.zeros((3, 4, 5), dtype=np.uint8)
    mask[0, 1, 2] = mask[2, 3, 4] = mask[1, 0, 0] = 1
    space = VolumeSpace.from_mask(nib.Nifti1Image(mask, AFFINE), mask="m.nii.gz")
    assert space.n_targets == 3 and space.in_masker_order
    np.testing.assert_array_equal(space.ijk, [[0, 1, 2], [1, 0, 0], [2, 3, 4]])  # C order, as nilearn
    img = space.to_image([1.0, 2.0, np.nan])  # nilearn's unmask
    assert img.shape == (3, 4, 5) and np.allclose(img.affine, AFFINE)
    data = img.get_fdata()
    assert data[0, 1, 2] == 1.0 and data[1, 0, 0] == 2.0 and data[2, 3, 4] == 0.0 and data.sum() == 3.0
    picked = space.select([2, 0])  # another order: filled by index
    assert not picked.in_masker_order
    data = picked.to_image([5.0, 7.0]).get_fdata()
    assert data[2, 3, 4] == 5.0 and data[0, 1, 2] == 7.0 and data.sum() == 12.0
    series = space.to_image(np.arange(6.0).reshape(2, 3))
    assert series.shape == (3, 4, 5, 2) and series.get_fdata()[1, 0, 0, 1] == 4.0
    back = _roundtrip(space)
    assert back == space and back.mask == "m.nii.gz" and back.shape == (3, 4, 5)
    np.testing.assert_array_equal(back.voxel_index, space.voxel_index)
    assert space != picked


def test_volume_space_bad_input():
    with pytest.raises(ValueError, match=r"'affine' must be 4 x 4, got shape \(3, 3\)"):
        VolumeSpace(np.eye(3), (2, 2, 2), [0])
    with pytest.raises(ValueError, match=r"voxel index 8 is outside the volume of shape \(2, 2, 2\)"):
        VolumeSpace(AFFINE, (2, 2, 2), [0, 8])
    with pytest.raises(TypeError, match="'voxel_index' must be a 1-D array of integers"):
        VolumeSpace(AFFINE, (2, 2, 2), [0.5])
    with pytest.raises(ValueError, match="got 2 values per image for a volume space of 1 voxels"):
        VolumeSpace(AFFINE, (2, 2, 2), [3]).to_image([1.0, 2.0])


def test_surface_space_hemispheres_and_mesh():
    space = SurfaceSpace([5, 0, 7], ["left", "right", "left"], mesh="fsaverage5")
    assert space.n_vertices == {"left": 10242, "right": 10242}
    full = space.to_vertices([1.0, 2.0, 3.0])
    assert full["left"][5] == 1.0 and full["left"][7] == 3.0 and full["right"][0] == 2.0
    assert np.isnan(full["left"][0]) and np.count_nonzero(~np.isnan(full["right"])) == 1
    back = _roundtrip(space)
    assert back == space and back.hemi == ["left", "right", "left"] and back.mesh == "fsaverage5"
    one_side = SurfaceSpace(np.arange(20), "right", {"right": 20})
    assert one_side.to_dict()["hemi"] == "right"  # one hemisphere: stored as one word
    sub = space.select(np.array([False, True, True]))
    assert sub.hemi == ["right", "left"] and sub.vertex_index.tolist() == [0, 7]
    with pytest.raises(ValueError, match=r"vertex 10242 of the left hemisphere is outside the mesh \(10242"):
        SurfaceSpace([10242], "left", mesh="fsaverage5")
    with pytest.raises(ValueError, match="Invalid value for 'hemi'"):
        SurfaceSpace([1], "top")


def test_parcel_space_paints_parcels(tmp_path):
    labels = np.zeros((4, 4, 4), dtype=np.int16)
    labels[:2] = 3
    labels[2:, :2] = 7
    img = nib.Nifti1Image(labels, AFFINE)
    space = ParcelSpace([7, 3], img)
    painted = space.to_image([0.5, -1.0]).get_fdata()
    assert painted[0, 0, 0] == -1.0 and painted[3, 0, 0] == 0.5 and painted[3, 3, 3] == 0.0
    embedded = _roundtrip(space)  # an image in memory travels inside the dict
    np.testing.assert_array_equal(np.asarray(embedded.labels_img.dataobj), labels)
    np.testing.assert_array_equal(embedded.to_image([0.5, -1.0]).get_fdata(), painted)
    nib.save(img, tmp_path / "atlas.nii.gz")
    on_disk = ParcelSpace([3], tmp_path / "atlas.nii.gz")
    assert on_disk.to_dict()["labels_img"] == str(tmp_path / "atlas.nii.gz")
    assert _roundtrip(on_disk).to_image([2.0]).get_fdata().sum() == 2.0 * 32
    with pytest.raises(FileNotFoundError, match="labels image not found: .*nope.nii.gz"):
        ParcelSpace([1], tmp_path / "nope.nii.gz").to_image([1.0])


def test_sensor_space_from_mne_info():
    info = mne.create_info(["MEG1", "MEG2", "EEG1"], 100.0, ["mag", "grad", "eeg"])
    space = SensorSpace.from_info(info)
    assert space.ch_types == ["mag", "grad", "eeg"]
    picked = space.select([2, 0])
    assert picked.ch_types == ["eeg", "mag"] and picked.info["ch_names"] == ["EEG1", "MEG1"]
    assert _roundtrip(space) == space and _roundtrip(space).info is None  # Info stays in memory
    with pytest.raises(ValueError, match="the mne Info has 3 channels but 2 types were given"):
        SensorSpace(["mag", "mag"], info=info)


def test_concat_and_composite_spaces():
    a = VolumeSpace(AFFINE, (4, 4, 4), [1, 2])
    b = VolumeSpace(AFFINE, (4, 4, 4), [9])
    joined = concat_spaces([a, b])
    assert isinstance(joined, VolumeSpace) and joined.voxel_index.tolist() == [1, 2, 9]
    left = SurfaceSpace([0, 1], "left", {"left": 5})
    right = SurfaceSpace([4], "right", {"right": 5})
    both = concat_spaces([left, right])
    assert isinstance(both, SurfaceSpace) and both.n_vertices == {"left": 5, "right": 5}
    mixed = concat_spaces([both, joined])
    assert isinstance(mixed, CompositeSpace) and mixed.n_targets == 6
    assert _roundtrip(mixed) == mixed
    picked = mixed.select([4, 0, 5])  # across parts, in this order
    assert isinstance(picked, CompositeSpace) and [p.kind for p in picked.parts] == ["volume", "surface", "volume"]
    assert picked.parts[0].voxel_index.tolist() == [2] and picked.parts[2].voxel_index.tolist() == [9]
    assert concat_spaces([RoiSpace(2), RoiSpace(3)]) == RoiSpace(5)
    other_grid = VolumeSpace(np.diag([3.0, 3.0, 3.0, 1.0]), (4, 4, 4), [0])
    assert isinstance(concat_spaces([a, other_grid]), CompositeSpace)


def test_space_from_dict_errors():
    with pytest.raises(ValueError, match="Invalid value for 'kind' of a stored target space.*but got 'blob'"):
        space_from_dict({"kind": "blob"})
    with pytest.raises(ValueError, match="the stored 'volume' target space lacks the field 'affine'"):
        space_from_dict({"kind": "volume", "shape": [2, 2, 2], "voxel_index": [0]})
    with pytest.raises(TypeError, match="a target space is stored as a dict, got list"):
        space_from_dict([])


def test_response_carries_its_space(rng):
    space = VolumeSpace(AFFINE, (3, 3, 3), [0, 4, 26])
    resp = Response(rng.standard_normal((10, 3)), tr=2.0, names=["a", "b", "c"], run="r", space=space)
    sub = resp.select(["c", "a"])
    assert sub.space.voxel_index.tolist() == [26, 0] and sub.names == ["c", "a"]
    assert resp.crop(2, 1).space is resp.space
    assert isinstance(Response(np.ones((4, 2)), tr=1.0).space, RoiSpace)
    assert Response(np.ones((4, 2)), sfreq=100.0).space.ch_types == ["misc", "misc"]
    rate = resp.copy(data=np.ones((10, 1)), names=["word_rate"])  # a derived signal: no voxels
    assert isinstance(rate.space, RoiSpace) and rate.space.n_targets == 1
    with pytest.raises(ValueError, match=r"response for run 'r' has 3 columns but its space describes 2 targets"):
        Response(np.ones((10, 3)), tr=2.0, run="r", space=RoiSpace(2))
    with pytest.raises(TypeError, match="'space' must be an instance of TargetSpace, got dict"):
        Response(np.ones((10, 3)), tr=2.0, space={"kind": "roi"})


def test_response_check_names_bad_columns(rng):
    data = rng.standard_normal((10, 3))
    data[:, 1] = 4.0
    resp = Response(data, tr=2.0, names=["a", "b", "c"], run="r", subject="s1")
    with pytest.raises(ValueError, match=r"response \(run 'r', subject 's1'\) has 1 constant column\(s\) \['b'\]"):
        resp.check()
    resp.select(["a", "c"]).check()  # the others are fine
    data[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"response data \(run 'r', subject 's1'\) has 1 non-finite"):
        Response(data, tr=2.0, run="r", subject="s1").check()


def test_pick_channels_uses_mne_picks_without_bads():
    info = mne.create_info(["a", "b", "c", "d", "stim"], 100.0, ["mag", "grad", "eeg", "eeg", "stim"])
    info["bads"] = ["c"]
    assert pick_channels(info, "data").tolist() == [0, 1, 3]
    assert pick_channels(info, None).tolist() == [0, 1, 3]
    assert pick_channels(info, "eeg").tolist() == [3]
    assert pick_channels(info, ["d", "a"]).tolist() == [3, 0]
    raw = mne.io.RawArray(np.arange(50.0).reshape(5, 10), info, verbose="error")
    resp = Response.from_mne(raw, run="story")
    assert resp.names == ["a", "b", "d"] and resp.space.ch_types == ["mag", "grad", "eeg"]
    assert resp.space.info["ch_names"] == ["a", "b", "d"]
    np.testing.assert_array_equal(resp.data[:, 2], np.arange(30.0, 40.0))
