"""Stimulus sets, their readers and stimulus-level responses: values and every bad-input message."""
from __future__ import annotations

import numpy as np
import pytest
from _stimuli_fixtures import write_sentences

from neuroenc.stimuli import StimulusError, StimulusSet, read_stimuli
from neuroenc.stimuli.responses import StimulusResponses, read_stimulus_responses
from neuroenc.stimuli.stimulus_set import read_stimuli_events


def test_read_stimuli_csv(tmp_path):
    ids = write_sentences(tmp_path / "sentences.csv", n_passages=3)
    s = read_stimuli(tmp_path / "sentences.csv", text_column="sentence", group_column="passage")
    assert s.ids == ids and s.texts[0] == "The cat sat on the mat." and s.texts[3] == "Rain fell on the roof."
    assert s.groups[:4] == ["p1", "p1", "p1", "p2"] and s.group_names == ["p1", "p2", "p3"]
    assert s.rows.tolist() == list(range(2, 11))  # line numbers, the header is line 1
    assert s.preceding(2) == [0, 1] and s.preceding(3) == []
    assert [g.tolist() for g in s.group_indices()] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert s.select(["s05", "s01"]).ids == ["s01", "s05"]


def test_read_stimuli_tsv_without_id_column_uses_line_numbers(tmp_path):
    (tmp_path / "s.tsv").write_text("text\tpassage\nHello there.\ta\n\nGood bye.\tb\n", encoding="utf-8")
    s = read_stimuli(tmp_path / "s.tsv", text_column="text", id_column=None)
    assert s.ids == ["2", "4"] and s.texts == ["Hello there.", "Good bye."] and s.groups is None


@pytest.mark.parametrize("content, kwargs, match", [
    ("id,sentence\n1,Hello.\n2,   \n3,Bye.\n", {}, r"'.*s\.csv'.*1 stimulus text\(s\) are empty, first at row 3 "
                                                   r"\(id '2'\).*Fill in the text or delete those rows"),
    ("id,sentence\n1,Hello.\n2,Hi.\n1,Bye.\n", {}, r"id '1' repeats at row 2 and row 4.*Ids must be unique"),
    ("id,text\n1,Hello.\n", {}, r"has no column 'sentence' for the texts \(columns: \['id', 'text'\]\); pass "
                                r"text_column="),
    ("key,sentence\n1,Hello.\n", {}, r"has no column 'id' for the ids.*pass id_column="),
    ("id,sentence,passage\n1,Hello.,a\n2,Hi.,\n", {"group_column": "passage"},
     r"row 3: the group \(column 'passage'\) is empty"),
])
def test_read_stimuli_errors_name_file_row_and_fix(tmp_path, content, kwargs, match):
    (tmp_path / "s.csv").write_text(content, encoding="utf-8")
    with pytest.raises(StimulusError, match=match):
        read_stimuli(tmp_path / "s.csv", text_column="sentence", **kwargs)


def test_read_stimuli_non_utf8_names_the_line(tmp_path):
    (tmp_path / "s.csv").write_bytes("id,sentence\n1,Hello.\n2,Caf\xe9 noir.\n".encode("latin-1"))
    with pytest.raises(StimulusError, match=r"s\.csv', line 3: the file is not UTF-8 text.*Save it as UTF-8"):
        read_stimuli(tmp_path / "s.csv", text_column="sentence")


def test_stimulus_set_validation():
    with pytest.raises(StimulusError, match="has no stimuli"):
        StimulusSet([], [])
    with pytest.raises(StimulusError, match="3 ids but 2 texts"):
        StimulusSet(["a", "b", "c"], ["x", "y"])
    assert StimulusSet(["a"], ["x"]).sha256() != StimulusSet(["a"], ["y"]).sha256()


def test_read_stimuli_events_drops_non_text_rows_and_sorts_by_onset(tmp_path):
    rows = ["onset\tduration\ttrial_type\tsentence\tsent_id",
            "12.0\t3\tsentence\tThe dog barked.\tb",
            "0.0\t1\tfixation\tn/a\tn/a",
            "4.0\t3\tsentence\tA cat meowed.\ta",
            "9.0\t1\tresponse\t\t"]
    (tmp_path / "sub-01_task-read_events.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    s = read_stimuli_events(tmp_path / "sub-01_task-read_events.tsv", text_column="sentence", id_column="sent_id")
    assert s.ids == ["a", "b"] and s.texts == ["A cat meowed.", "The dog barked."] and s.rows.tolist() == [4, 2]
    assert s.name == "sub-01_task-read"
    q = read_stimuli_events(tmp_path / "sub-01_task-read_events.tsv", text_column="sentence",
                            query="onset > 5")
    assert q.texts == ["The dog barked."] and q.ids == ["2"]


# ---------------------------------------------------------------------- responses
def test_responses_csv_matched_by_id(tmp_path):
    (tmp_path / "r.csv").write_text("id,lang,md,note\ns2,0.5,1.0,x\ns1,0.25,2.0,y\n", encoding="utf-8")
    r = read_stimulus_responses(tmp_path / "r.csv", columns=["lang", "md"])
    m = r.match(["s1", "s2"])
    assert m.ids == ["s1", "s2"] and m.names == ["lang", "md"]
    np.testing.assert_array_equal(m.data, [[0.25, 2.0], [0.5, 1.0]])
    with pytest.raises(StimulusError, match=r"column\(s\) \['note'\] are not numbers; name the response columns"):
        read_stimulus_responses(tmp_path / "r.csv")


def test_responses_missing_and_extra_ids_are_listed(tmp_path):
    (tmp_path / "r.csv").write_text("id,y\ns1,1\ns2,2\nzz,3\n", encoding="utf-8")
    r = read_stimulus_responses(tmp_path / "r.csv")
    with pytest.raises(StimulusError, match=r"1 of the stimuli have no response: ids \['s3'\]; 1 response row\(s\) "
                                            r"match no stimulus: ids \['zz'\].*fix the id column"):
        r.match(["s1", "s2", "s3"])


def test_responses_errors(tmp_path):
    (tmp_path / "r.csv").write_text("id,y\ns1,1\ns1,2\n", encoding="utf-8")
    with pytest.raises(StimulusError, match=r"stimulus id\(s\) \['s1'\] have several rows"):
        read_stimulus_responses(tmp_path / "r.csv")
    (tmp_path / "r2.csv").write_text("id,y\ns1,1\ns2,\n", encoding="utf-8")
    with pytest.raises(StimulusError, match=r"line 3 \(id 's2'\): column 'y' holds '', not a number"):
        read_stimulus_responses(tmp_path / "r2.csv")
    with pytest.raises(StimulusError, match=r"has no column 'stim'.*pass id_column=NAME"):
        read_stimulus_responses(tmp_path / "r2.csv", id_column="stim")
    np.save(tmp_path / "r.npy", np.zeros((3, 2)))
    with pytest.raises(StimulusError, match=r"has no stimulus ids: give ids=FILE"):
        read_stimulus_responses(tmp_path / "r.npy")
    with pytest.raises(StimulusError, match="has 3 rows but 2 ids were given"):
        read_stimulus_responses(tmp_path / "r.npy", ids=["a", "b"])


def test_responses_long_table_by_subject(tmp_path):
    rows = ["subject,id,y", "A,s1,1", "A,s2,2", "B,s2,4", "B,s1,3"]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = read_stimulus_responses(tmp_path / "r.csv", subject_column="subject")
    assert list(out) == ["A", "B"]
    np.testing.assert_array_equal(out["B"].match(["s1", "s2"]).data[:, 0], [3, 4])


def test_responses_npy_and_row_ids_file(tmp_path):
    np.save(tmp_path / "r.npy", np.arange(6.0).reshape(3, 2))
    (tmp_path / "ids.txt").write_text("c\na\nb\n", encoding="utf-8")
    r = read_stimulus_responses(tmp_path / "r.npy", ids=tmp_path / "ids.txt").match(["a", "b", "c"])
    np.testing.assert_array_equal(r.data, [[2, 3], [4, 5], [0, 1]])


def test_responses_nifti_4d_and_pattern(tmp_path):
    import nibabel as nib

    rng = np.random.default_rng(0)
    vols = rng.standard_normal((4, 3, 2, 3))
    affine = np.eye(4)
    nib.save(nib.Nifti1Image(vols, affine), tmp_path / "betas.nii.gz")
    mask = np.zeros((4, 3, 2))
    mask[1, 2, 0] = mask[3, 0, 1] = 1
    nib.save(nib.Nifti1Image(mask, affine), tmp_path / "mask.nii.gz")
    r = read_stimulus_responses(tmp_path / "betas.nii.gz", ids=["x", "y", "z"], mask=tmp_path / "mask.nii.gz")
    assert r.names == ["1_2_0", "3_0_1"] and r.info["shape"] == [4, 3, 2]
    np.testing.assert_allclose(r.data, vols[[1, 3], [2, 0], [0, 1]].T)
    for k, sid in enumerate(["x", "y", "z"]):
        nib.save(nib.Nifti1Image(vols[..., k], affine), tmp_path / f"beta_{sid}.nii.gz")
    p = read_stimulus_responses(str(tmp_path / "beta_{id}.nii.gz"), ids=["z", "x"], mask=tmp_path / "mask.nii.gz")
    np.testing.assert_allclose(p.data, r.data[[2, 0]])
    with pytest.raises(StimulusError, match=r"1 stimulus id\(s\) have no beta map for the pattern.*\['w'\]"):
        read_stimulus_responses(str(tmp_path / "beta_{id}.nii.gz"), ids=["x", "w"], mask=tmp_path / "mask.nii.gz")
    with pytest.raises(StimulusError, match="give a brain mask"):
        read_stimulus_responses(tmp_path / "betas.nii.gz", ids=["x", "y", "z"])


def test_stimulus_responses_shape_check():
    with pytest.raises(StimulusError, match=r"responses of shape \(2, 1\) for 3 ids"):
        StimulusResponses(np.zeros((2, 1)), ["a", "b", "c"], ["y"])
