"""Narratives (ds002345) on a miniature copy of its real layout and events."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from _bids_fixtures import (  # noqa: F401
    best_lag,
    copy_tree,
    flatten_nifti,
    layouts,
    make_voxel_constant,
    mini_narratives,
)

from neuroenc.datasets import DatasetError, load_narratives
from neuroenc.datasets.narratives import NARRATIVES_STORY_OFFSETS, read_participants


def test_pieman_two_runs_of_one_subject(mini_narratives):
    ds = load_narratives(mini_narratives, task="pieman", subjects=["001", "sub-023"])
    assert ds.responses["001"].keys() == {"pieman_run-1", "pieman_run-2"}
    assert list(ds.responses["023"]) == ["pieman"]
    for key, resp in ds.responses["001"].items():
        assert resp.tr == 1.5  # the run's sidecar
        # real events: story at 15.0 s for 422 s; audio offset 15 s -> crop from volume 10
        assert resp.info["story_onset"] == 15.0
        assert resp.info["cropped_volumes"] == 10
        assert resp.n_samples == 281  # round(422 / 1.5), as the authors' event_meta.json
        assert resp.start == pytest.approx(15.0)
        assert ds.transcripts[key].words == ds.transcripts["pieman"].words


def test_milkyway_versions_onsets_and_tr(mini_narratives):
    ds = load_narratives(mini_narratives, task="milkyway", crop=False)
    runs = {sub: list(r) for sub, r in ds.responses.items()}
    # the stimulus each subject heard, from the real events' stim_file
    assert runs == {"023": ["milkywayvodka"], "034": ["milkywayoriginal"], "038": ["milkywayvodka"],
                    "105": ["milkywayoriginal"], "115": ["milkywaysynonyms"]}
    onsets = {sub: next(iter(r.values())).info["story_onset"] for sub, r in ds.responses.items()}
    assert onsets == {"023": 21.0, "034": 21.0, "038": 15.0, "105": 13.5, "115": 21.0}
    starts = {sub: next(iter(r.values())).start for sub, r in ds.responses.items()}
    # row 0 is audio time offset - story onset (offset 21 s for milkyway)
    assert starts == pytest.approx({"023": 0.0, "034": 0.0, "038": 6.0, "105": 7.5, "115": 0.0})
    trs = {sub: next(iter(r.values())).tr for sub, r in ds.responses.items()}
    assert trs == {"023": 1.5, "034": 1.5, "038": 1.5, "105": 1.5, "115": 1.52}


def test_cropped_milkyway_starts_at_the_story(mini_narratives):
    ds = load_narratives(mini_narratives, task="milkyway", subjects=["038", "105", "115"])
    for sub, first in (("038", 10), ("105", 9), ("115", 14)):
        resp = next(iter(ds.responses[sub].values()))
        assert resp.info["cropped_volumes"] == first
    assert ds.responses["038"]["milkywayvodka"].start == pytest.approx(21.0)
    assert ds.responses["115"]["milkywaysynonyms"].start == pytest.approx(21.28)
    assert ds.responses["115"]["milkywaysynonyms"].n_samples == 266  # round(404 / 1.52)


@pytest.mark.parametrize("subject", ["023", "038", "105"])
def test_timing_recovers_the_synthetic_drive(mini_narratives, subject):
    ds = load_narratives(mini_narratives, task="milkyway", subjects=[subject], crop=False)
    key, resp = next(iter(ds.responses[subject].items()))
    tr = ds.transcripts[key]
    assert best_lag(resp.data[:, :8], tr.onsets, resp.times, resp.tr) == 0


def test_gentle_transcript_on_the_audio_clock(mini_narratives):
    ds = load_narratives(mini_narratives, task="slumlordreach")
    tr = ds.transcripts["slumlordreach"]
    align = json.loads((mini_narratives / "stimuli/gentle/slumlordreach/align.json").read_text())
    aligned = [w for w in align["words"] if w.get("case") == "success"]
    assert len(tr) == len(aligned) and tr.onsets[0] == aligned[0]["start"]
    # two stories with the music between them (events: 29.5 + 903 s, then 969.5 s)
    off = NARRATIVES_STORY_OFFSETS["slumlordreach"]
    gap = (tr.onsets > 903 + off) & (tr.onsets < 969.5 - 29.5 + off)
    assert not gap.any() and (tr.onsets > 969.5 - 29.5 + off).any()
    resp = ds.responses["016"]["slumlordreach"]
    assert resp.n_samples == 1177  # round((969.5 + 825 - 29.5) / 1.5)


def test_surface_space_joins_hemispheres(mini_narratives):
    vol = load_narratives(mini_narratives, task="pieman", subjects=["001"], mask=None)
    surf = load_narratives(mini_narratives, task="pieman", subjects=["001"], space="fsaverage6")
    a, b = vol.responses["001"]["pieman_run-1"], surf.responses["001"]["pieman_run-1"]
    assert b.names[:2] == ["L0", "L1"] and b.names[8] == "R0"
    np.testing.assert_allclose(b.data + 100.0, a.data, rtol=1e-6)  # the NIfTI adds a baseline
    assert b.tr == 1.5
    # a run without a run entity: both hemispheres still pair up
    surf = load_narratives(mini_narratives, task="milkyway", subjects=["023"], space="fsaverage6")
    assert surf.responses["023"]["milkywayvodka"].n_targets == 16


def test_auto_mask_is_the_task_brain_mask(mini_narratives):
    masked = load_narratives(mini_narratives, task="pieman", subjects=["023"])
    every = load_narratives(mini_narratives, task="pieman", subjects=["023"], mask=None)
    a, b = masked.responses["023"]["pieman"], every.responses["023"]["pieman"]
    assert a.n_targets == 12 and b.n_targets == 16  # the miniature's mask drops 4 of 16 voxels
    assert a.names == b.names[:12]
    np.testing.assert_array_equal(a.data, b.data[:, :12])


def test_participants_split_per_task(mini_narratives):
    table = read_participants(mini_narratives)
    sub1 = table[table["subject"] == "001"].set_index("task")
    assert sub1.loc["pieman", "age"] == "22" and sub1.loc["tunnel", "age"] == "23"
    assert sub1.loc["tunnel", "sex"] == "F"


def test_errors_name_the_file(mini_narratives, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"run 'notthefallshortscram' has no transcript: "
                                                r".*gentle/notthefallshortscram/align\.json"):
        load_narratives(mini_narratives, task="notthefallshortscram")
    with pytest.raises(ValueError, match="Invalid value for 'pipeline'"):
        load_narratives(mini_narratives, pipeline="spm")
    with pytest.raises(FileNotFoundError, match=r"derivatives/fmriprep"):
        load_narratives(mini_narratives, pipeline="fmriprep")
    root = copy_tree(mini_narratives, tmp_path)
    side = root / "sub-023/func/sub-023_task-milkyway_bold.json"
    meta = json.loads(side.read_text())
    meta["RepetitionTime"] = 2.0
    side.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"TR mismatch for .*sub-023_task-milkyway.*RepetitionTime=2 s.*1\.5 s"):
        load_narratives(root, task="milkyway", subjects=["023"])
    (root / "sub-038/func/sub-038_task-milkyway_events.tsv").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no events\.tsv .*sub-038_task-milkyway_events\.tsv"):
        load_narratives(root, task="milkyway", subjects=["038"])


def test_without_the_task_mask_runs_share_one_voxel_set(mini_narratives, tmp_path, caplog):
    root = copy_tree(mini_narratives, tmp_path)
    (root / "derivatives/afni-smooth/tpl-MNI152NLin2009cAsym/"
            "tpl-MNI152NLin2009cAsym_res-pieman_desc-brain_mask.nii.gz").unlink()
    func = root / "derivatives/afni-nosmooth/sub-001/func"
    run1 = func / "sub-001_task-pieman_run-1_space-MNI152NLin2009cAsym_res-native_desc-clean_bold.nii.gz"
    run2 = func / "sub-001_task-pieman_run-2_space-MNI152NLin2009cAsym_res-native_desc-clean_bold.nii.gz"
    make_voxel_constant(run2, 7)
    expected = [f"v{i}" for i in range(16) if i != 7]
    for mask in ("auto", None):  # no template: "auto" falls back to the subject-level mask
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="neuroenc"):
            ds = load_narratives(root, task="pieman", subjects=["001"], mask=mask, crop=False)
        a, b = ds.responses["001"]["pieman_run-1"], ds.responses["001"]["pieman_run-2"]
        assert a.names == b.names == expected
        np.testing.assert_array_equal(a.data, np.delete(flatten_nifti(run1), 7, axis=1))
        assert "sub-001: kept the 15 voxels that vary in all 2 runs; dropped 1" in caplog.text


def test_missing_transcript_is_reported_before_reading_the_runs(mini_narratives, tmp_path):
    root = copy_tree(mini_narratives, tmp_path)
    (root / "stimuli/gentle/pieman/align.json").write_text("")
    bold = root / ("derivatives/afni-nosmooth/sub-023/func/"
                   "sub-023_task-pieman_space-MNI152NLin2009cAsym_res-native_desc-clean_bold.nii.gz")
    bold.write_bytes(b"")  # would be refused as empty if it were read first
    with pytest.raises(DatasetError, match=r"Gentle alignment .*gentle/pieman/align\.json' is empty"):
        load_narratives(root, task="pieman", subjects=["023"])
    (root / "stimuli/gentle/pieman/align.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"run 'pieman' has no transcript: .*gentle/pieman/align\.json' "
                                                r"is missing\. The Gentle alignments are in the DataLad release"):
        load_narratives(root, task="pieman", subjects=["023"])
