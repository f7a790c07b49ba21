"""Geometry travels with the responses: through the design and the fit into the results'
provenance, across target chunks, and back into brain maps without reading target names; and the
design knows its own reach, which sets the CV gap."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from _encoding_fixtures import layer_walk

from neuroenc.align import make_fmri_design
from neuroenc.datasets import load_alice
from neuroenc.encoding import EncodingResults, fit_encoding
from neuroenc.encoding.designs import as_layer_designs, design_reach, gap_for
from neuroenc.encoding.merge import merge_results
from neuroenc.features import FeatureSet
from neuroenc.mapping.brainmaps import mapping_maps, surface_values, target_space
from neuroenc.responses import Response, SurfaceSpace, VolumeSpace
from neuroenc.responses.space import space_from_dict

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
SHAPE = (4, 3, 2)
VOXELS = [23, 1, 7, 12]  # any order: the geometry says where each target is


def _design(rng, space, names, n_tr=80):
    onsets = np.sort(rng.uniform(0.0, n_tr * 2.0 - 4.0, 300))
    layers = layer_walk(rng, n_samples=300, n_features=4, n_layers=2, smooth=1)
    fs = FeatureSet(dict(enumerate(layers)), onsets, onsets + 0.3, run="story", model="toy")
    resp = Response(rng.standard_normal((n_tr, len(names))), tr=2.0, names=names, run="story", space=space)
    return make_fmri_design(fs, resp), resp, fs


def test_volume_geometry_goes_through_the_fit_to_brain_maps(tmp_path, rng):
    space = VolumeSpace(AFFINE, SHAPE, VOXELS, mask="brain_mask.nii.gz")
    design, _, _ = _design(rng, space, ["a", "b", "c", "d"])  # names say nothing
    assert design.space is not None and design.space == space
    res = fit_encoding(design, n_permutations=0, n_blocks=3, inner_cv=2)
    path = res.save(tmp_path / "res.h5")
    loaded = EncodingResults.load(path)
    assert space_from_dict(loaded.provenance["target_space"]) == space
    found = target_space(loaded)
    assert found["kind"] == "volume" and found["voxel_index"].tolist() == VOXELS
    img = mapping_maps({"r": np.array([1.0, 2.0, 3.0, 4.0])}, found)["r"]
    flat = img.get_fdata().reshape(-1)
    assert flat[VOXELS].tolist() == [1.0, 2.0, 3.0, 4.0] and flat.sum() == 10.0
    assert np.allclose(img.affine, AFFINE) and img.shape == SHAPE


def test_old_results_with_voxel_names_still_map(caplog):
    """Results written before target spaces: 'v<index>' names with the affine and shape."""
    targets = [f"v{i}" for i in VOXELS]
    r = np.tile([[1.0, 2.0, 3.0, 4.0]], (2, 1))
    old = EncodingResults(r=r, r2=r**2, layers=np.arange(2), targets=targets,
                          provenance={"affine": AFFINE.tolist(), "shape": list(SHAPE)})
    new = EncodingResults(r=r, r2=r**2, layers=np.arange(2), targets=["a", "b", "c", "d"],
                          provenance={"target_space": VolumeSpace(AFFINE, SHAPE, VOXELS).to_dict()})
    maps = [mapping_maps({"r": r[0]}, target_space(x))["r"].get_fdata() for x in (old, new)]
    np.testing.assert_array_equal(maps[0], maps[1])
    assert maps[0].reshape(-1)[VOXELS].tolist() == [1.0, 2.0, 3.0, 4.0]
    # a ROI space carries no geometry: the older keys are still read
    roi = EncodingResults(r=r, r2=r**2, layers=np.arange(2), targets=targets,
                          provenance={"affine": AFFINE.tolist(), "shape": list(SHAPE),
                                      "target_space": {"kind": "roi", "n_targets": 4}})
    assert target_space(roi)["voxel_index"].tolist() == VOXELS
    # a target space of other targets (Y fitted apart from its design) is not used, and said so
    bad = EncodingResults(r=r, r2=r**2, layers=np.arange(2), targets=targets,
                          provenance={"target_space": VolumeSpace(AFFINE, SHAPE, [1, 2]).to_dict()})
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        assert target_space(bad) == {"kind": "roi", "space": None}
    assert "target space describes 2 targets but the results have 4; it is ignored" in caplog.text


def test_surface_geometry_maps_vertices_without_names():
    space = SurfaceSpace([3, 10241, 0], ["left", "right", "right"], mesh="fsaverage5")
    res = EncodingResults(r=np.ones((1, 3)), r2=np.ones((1, 3)), layers=np.arange(1),
                          targets=["x", "y", "z"], provenance={"target_space": space.to_dict()})
    found = target_space(res)
    assert found["kind"] == "surface" and found["mesh"] == "fsaverage5"
    values = mapping_maps({"r": np.array([0.1, 0.2, 0.3])}, found)["r"]
    assert values["left"][3] == 0.1 and values["right"][10241] == 0.2 and values["right"][0] == 0.3
    assert np.count_nonzero(~np.isnan(values["left"])) == 1 and values["left"].size == 10242
    # the same from legacy names
    legacy = surface_values(np.array([0.1, 0.2, 0.3]), names=["L3", "R10241", "R0"])
    for side in ("left", "right"):
        np.testing.assert_array_equal(values[side], legacy[side])
    other_mesh = EncodingResults(r=np.ones((1, 2)), r2=np.ones((1, 2)), layers=np.arange(1),
                                 targets=["x", "y"],
                                 provenance={"target_space": SurfaceSpace([0, 1], "left", {"left": 32492}).to_dict()})
    assert target_space(other_mesh)["kind"] == "roi"  # not an fsaverage mesh: no map, a note


def test_target_chunks_merge_their_spaces(rng):
    space = VolumeSpace(AFFINE, SHAPE, VOXELS)
    design, resp, fs = _design(rng, space, ["a", "b", "c", "d"])
    parts = []
    for chunk in ([0, 1], [2, 3]):
        sub = make_fmri_design(fs, resp.select(chunk))
        parts.append(fit_encoding(sub, n_permutations=0, n_blocks=3, inner_cv=2))
    assert parts[0].provenance["target_space"] != parts[1].provenance["target_space"]
    merged = merge_results(parts)
    assert space_from_dict(merged.provenance["target_space"]) == space
    whole = fit_encoding(design, n_permutations=0, n_blocks=3, inner_cv=2)
    np.testing.assert_allclose(merged.r, whole.r, atol=1e-10)
    with pytest.raises(ValueError, match="different provenance"):  # layer subsets keep one space
        merge_results(parts, axis="layers")


def test_runs_in_different_spaces_are_refused(rng):
    onsets = np.sort(rng.uniform(0.0, 150.0, 200))
    feats = [FeatureSet({0: rng.standard_normal((200, 3))}, onsets, onsets + 0.3, run=r, model="toy")
             for r in ("r1", "r2")]
    resps = [Response(rng.standard_normal((80, 2)), tr=2.0, names=["a", "b"], run=r,
                      space=VolumeSpace(AFFINE, SHAPE, vox)) for r, vox in (("r1", [0, 1]), ("r2", [0, 2]))]
    with pytest.raises(ValueError, match=r"responses for run 'r2' have targets in <VolumeSpace .* but run "
                                         r"'r1' in <VolumeSpace .*; the runs of one design need the same targets"):
        make_fmri_design(feats, resps)


@pytest.fixture(scope="module")
def alice(data_dir):
    ds = load_alice(data_dir, subjects=["s18"])
    return ds.transcripts["alice"], ds.responses["s18"]["alice"]


def test_alice_design_reach_gives_the_gap_of_8_trs(alice, rng):
    transcript, response = alice
    fs = FeatureSet({0: rng.standard_normal((len(transcript), 4))}, transcript.onsets, transcript.offsets,
                    run="alice", model="toy")
    design = make_fmri_design(fs, response)  # delays 1-4, Lanczos with 3 lobes at 1 / TR
    assert design.reach == 4 + 3 and gap_for(as_layer_designs(design), 5) == 8
    # the design's own reach equals what is computed from its settings (older LayerDesigns)
    for kwargs, expected in [(dict(), 7), (dict(hrf="glover"), 0 + 15 + 3), (dict(method="rect"), 4 + 1),
                             (dict(method="sinc", window=2, cutoff_mult=0.5), 4 + 4),
                             (dict(hrf="spm", delays=(0, 1, 2)), 2 + 15 + 3)]:
        d = make_fmri_design(fs, response, **kwargs)
        assert d.reach == expected, kwargs
        assert design_reach({"delays": list(d.delays), "design": d.settings}) == expected, kwargs
        assert as_layer_designs(d).info["reach"] == expected
