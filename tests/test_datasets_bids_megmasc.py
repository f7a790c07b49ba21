"""MEG-MASC (NEMAR nm000229) on a miniature copy: real events.tsv in both formats, synthetic MEG."""
from __future__ import annotations

import json

import numpy as np
import pytest
from _bids_fixtures import copy_tree, layouts, mini_megmasc  # noqa: F401

from neuroenc.datasets import DatasetError, load_megmasc
from neuroenc.datasets.megmasc import megmasc_transcripts, read_megmasc_events


def _events(root, sub, task, ses="0"):
    return root / f"sub-{sub}" / f"ses-{ses}" / "meg" / f"sub-{sub}_ses-{ses}_task-{task}_events.tsv"


def test_both_event_formats_read_alike(mini_megmasc):
    flat = read_megmasc_events(_events(mini_megmasc, "01", "0"))
    dicts = read_megmasc_events(_events(mini_megmasc, "12", "0"))
    assert "trial_type" not in dicts.columns  # the dict literal was expanded
    for df in (flat, dicts):
        assert list(df["kind"].iloc[:3]) == ["sound", "phoneme", "word"]
        assert (df["kind"] == "word").sum() == 668
    # first word row of each file: line 4 of the file
    assert flat.loc[2, ["word", "onset", "line"]].tolist() == ["Tara", 23.506, 4]
    assert dicts.loc[2, ["word", "onset", "line"]].tolist() == ["Tara", 15.473, 4]


def test_transcripts_identical_across_subjects_and_formats(mini_megmasc):
    a = load_megmasc(mini_megmasc, subject="01", tasks=[0, 1, 2], raw=False)
    b = load_megmasc(mini_megmasc, subject="sub-12", tasks=[0, 1, 2], raw=False)
    assert list(a.transcripts) == list(b.transcripts)
    assert list(a.transcripts)[:5] == ["lw1_0", "lw1_1", "lw1_2", "lw1_3", "cable_spool_fort_0"]
    for key in a.transcripts:
        ta, tb = a.transcripts[key], b.transcripts[key]
        assert ta.words == tb.words
        np.testing.assert_array_equal(ta.onsets, tb.onsets)
        np.testing.assert_array_equal(ta.offsets, tb.offsets)
    lw = a.transcripts["lw1_0"]
    assert lw.words[:8] == ("Tara", "stood", "stock", "still", "waiting", "for", "the", "first")
    np.testing.assert_array_equal(lw.onsets[:5], [0.0, 0.31, 0.55, 1.08, 1.63])
    np.testing.assert_array_equal(lw.offsets[:2], [0.3, 0.55])
    assert lw.rows[0] == 4 and "sub-01_ses-0_task-0_events.tsv" in lw.source
    # recording clock = sound onset + transcript clock (sub-01: lw1_1 starts at 127.185 s)
    snd = a.info["sounds"]["01"].set_index("run")
    ev = a.info["events"]["01"]["lw1"]
    words1 = ev[(ev["kind"] == "word") & (ev["sound_id"] == 1)]
    assert snd.loc["lw1_1", "onset"] == 127.185
    np.testing.assert_allclose(a.transcripts["lw1_1"].onsets + 127.185, words1["onset"], atol=1e-9)


def test_conditions_filter_word_lists(mini_megmasc):
    events = read_megmasc_events(_events(mini_megmasc, "01", "0"))
    every = megmasc_transcripts(events)
    sentences = megmasc_transcripts(events, conditions=["sentence"])
    assert sum(map(len, every.values())) == 668
    assert sum(map(len, sentences.values())) == 613
    # the first word list of lw1_0 starts with "tiny" at 39.24 s in the sound file
    i = int(np.flatnonzero(every["lw1_0"].onsets == 39.24)[0])
    assert every["lw1_0"].words[i] == "tiny"
    assert 39.24 not in sentences["lw1_0"].onsets


def test_responses_per_sound_at_the_sidecar_rate(mini_megmasc):
    ds = load_megmasc(mini_megmasc, subject=["01", "12"], tasks=[0], responses=True, pad=(0.5, 1.0))
    assert ds.subjects == ["01", "12"]
    for sub, onset0 in (("01", 23.506), ("12", 15.473)):
        runs = ds.responses[sub]
        assert list(runs) == ["lw1_0", "lw1_1", "lw1_2", "lw1_3"]
        resp = runs["lw1_0"]
        assert resp.sfreq == 1000.0  # SamplingFrequency of the _meg.json sidecar
        assert resp.start == pytest.approx(-0.5)
        assert resp.end == pytest.approx(ds.transcripts["lw1_0"].end + 1.0, abs=2e-3)
        raw = ds.info["raw"][sub]["lw1"]
        i0 = int(np.floor((onset0 - 0.5) * 1000))
        np.testing.assert_array_equal(resp.data, raw.get_data()[:, i0:i0 + resp.n_samples].T)
    assert ds.responses["01"]["lw1_0"].names == ["MEG 001", "MEG 002", "MEG 003", "MEG 004"]
    assert ds.info["task_order"]["12"] == "[2, 0, 3, 1]"


def test_word_locked_signal_lines_up(mini_megmasc):
    ds = load_megmasc(mini_megmasc, subject="12", tasks=[0], responses=True)
    resp = ds.responses["12"]["lw1_1"]
    onsets = ds.transcripts["lw1_1"].onsets
    idx = np.round((onsets - resp.start) * resp.sfreq).astype(int)
    # the synthetic transient peaks 100 ms after each event; compare with 100 ms before
    after = resp.data[idx + 100, :2].mean()
    before = resp.data[np.clip(idx - 100, 0, None), :2].mean()
    assert after > before


def test_session_without_data_is_excluded(mini_megmasc):
    ds = load_megmasc(mini_megmasc, subject=["01", "12"], session=1, tasks=[0], raw=False)
    assert list(ds.info["sounds"]) == ["01"]
    assert "no session 1" in ds.excluded["12"]


def test_errors_name_the_file(mini_megmasc, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no transcript: .*sub-12_ses-0_task-3_events\.tsv"):
        load_megmasc(mini_megmasc, subject="12", tasks=[3], raw=False)
    with pytest.raises(FileNotFoundError, match=r"recording not found: .*sub-01_ses-0_task-1_meg\.con"):
        load_megmasc(mini_megmasc, subject="01", tasks=[1])
    with pytest.raises(ValueError, match="Invalid value for 'task'"):
        load_megmasc(mini_megmasc, tasks=[4], raw=False)
    root = copy_tree(mini_megmasc, tmp_path)
    side = root / "sub-01/ses-0/meg/sub-01_ses-0_task-0_meg.json"
    meta = json.loads(side.read_text())
    meta["SamplingFrequency"] = 500.0
    side.write_text(json.dumps(meta))
    with pytest.raises(DatasetError,
                       match=r"sampling-rate mismatch for .*sub-01_ses-0_task-0_meg\.fif.*500 Hz.*1000 Hz"):
        load_megmasc(root, subject="01", tasks=[0])
    # task -> story is fixed: an events file of another story under task-0 is refused
    _events(root, "12", "0").write_bytes(_events(root, "12", "1").read_bytes())
    with pytest.raises(DatasetError, match=r"sub-12_ses-0_task-0_events\.tsv' names story "
                                           r"\['cable_spool_fort'\], but task-0 is 'lw1'"):
        load_megmasc(root, subject="12", tasks=[0], raw=False)


def test_malformed_dict_events_name_the_line(tmp_path):
    path = tmp_path / "sub-12_ses-0_task-0_events.tsv"
    path.write_text(
        "\ufeffonset\tduration\ttrial_type\tvalue\tsample\n"
        "1.0\t0.0\t{'story': 'lw1', 'kind': 'sound', 'sound_id': 0.0, 'start': 0.0}\t1\t1000\n"
        "1.2\t0.3\t{'story': 'lw1', 'kind': 'word', 'word': 'Tara'\t2\t1200\n",
        encoding="utf-8",
    )
    with pytest.raises(DatasetError, match=r"task-0_events\.tsv', line 3: trial_type .* is not a Python dict literal"):
        read_megmasc_events(path)
    path.write_text("onset\tduration\tvalue\n1.0\t0.0\t1\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="neither 'kind' nor 'trial_type'"):
        read_megmasc_events(path)


def test_missing_events_and_subject_discovery(mini_megmasc, tmp_path):
    ds = load_megmasc(mini_megmasc, subject=None, tasks=[0], raw=False)
    assert ds.subjects == [] and sorted(ds.info["sounds"]) == ["01", "12"]  # the sub-* folders
    root = copy_tree(mini_megmasc, tmp_path)
    _events(root, "12", "0").unlink()
    with pytest.raises(FileNotFoundError, match=r"run 'lw1' has no transcript: .*sub-12_ses-0_task-0_events\.tsv' "
                                                r"is missing\. The word timings of every sound file of story 'lw1'"):
        load_megmasc(root, subject="12", tasks=[0], raw=False)
    _events(root, "01", "0").write_text("")
    with pytest.raises(DatasetError, match=r"events file .*sub-01_ses-0_task-0_events\.tsv' is empty"):
        load_megmasc(root, subject="01", tasks=[0], raw=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"no subject folders 'sub-\*' under .*empty'\. Is root the MEG-MASC"):
        load_megmasc(empty, subject=None, raw=False)
