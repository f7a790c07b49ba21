"""The BIDS run index and the miniature builder, on the real layouts."""
from __future__ import annotations

import h5py
import nibabel as nib
import pytest
from _bids_fixtures import layouts, mini_lebel, mini_narratives  # noqa: F401

from neuroenc.datasets import DatasetError, make_miniature
from neuroenc.datasets.bids import RUN_COLUMNS, check_tr, index_runs, natural_key, normalize_subject
from neuroenc.datasets.miniature import read_tree


def test_index_lists_runs_with_inherited_tr_and_transcripts(mini_lebel):
    def textgrid(row):
        path = mini_lebel / "derivative" / "TextGrids" / f"{row['task']}.TextGrid"
        return path if path.exists() else None

    table = index_runs(mini_lebel, subjects=["sub-UTS01"], transcript=textgrid)
    assert list(table.columns) == list(RUN_COLUMNS)
    stories = table[table["task"] == "adollshouse"].iloc[0]
    assert (stories["subject"], stories["session"], stories["run"]) == ("UTS01", "5", None)
    # no per-run sidecar was copied: RepetitionTime comes from the top-level task sidecar
    assert stories["tr"] == 2.0 and stories["metadata"]["TaskName"] == "adollshouse"
    assert stories["transcript"].name == "adollshouse.TextGrid"
    assert stories["events"] is None  # story runs have no events.tsv
    smoke = table[table["task"] == "wheretheressmoke"]
    assert list(smoke["session"]) == [str(s) for s in range(2, 12)]  # ses-2 .. ses-11, natural order
    assert list(smoke["run"]) == [str(r) for r in range(1, 11)]
    assert smoke["transcript"].notna().all()
    # localizers: events found through the top-level task-*_events.tsv inheritance is not BIDS;
    # they have no transcript
    assert table[table["task"] == "CategoryLocalizer1"]["transcript"].isna().all()


def test_index_of_derivatives_takes_events_and_tr_from_raw(mini_narratives):
    table = index_runs(mini_narratives, tasks=["milkyway"], derivatives="derivatives/afni-nosmooth",
                       filters={"space": "MNI152NLin2009cAsym"})
    assert list(table["subject"]) == ["023", "034", "038", "105", "115"]
    assert list(table["tr"]) == [1.5, 1.5, 1.5, 1.5, 1.52]
    assert all(p.name.endswith("_events.tsv") and "derivatives" not in str(p) for p in table["events"])
    assert table.iloc[0]["entities"]["desc"] == "clean"


def test_helpers():
    assert normalize_subject("sub-01") == "01" and normalize_subject("UTS03") == "UTS03"
    assert sorted(["10", "2", "1"], key=natural_key) == ["1", "2", "10"]
    assert check_tr("x.nii.gz", 2.0, 2.0004) == 2.0
    assert check_tr("x.nii.gz", None, 1.5) == 1.5
    with pytest.raises(DatasetError, match=r"TR mismatch for 'x\.nii\.gz'"):
        check_tr("x.nii.gz", 2.0, 1.0)
    with pytest.raises(DatasetError, match=r"no TR for 'x\.nii\.gz'"):
        check_tr("x.nii.gz", None, None)


def test_miniature_matches_the_tree(layouts, mini_lebel):
    tree = read_tree(layouts / "ds003020")
    assert tree["marker"].value_counts().to_dict() == {"A": 3247, "F": 414}
    sizes = tree.set_index("path")["size"]
    # every synthetic file has a path of the real tree
    for p in (mini_lebel / "derivative" / "preprocessed_data").rglob("*.hf5"):
        assert p.relative_to(mini_lebel).as_posix() in sizes.index
    for p in mini_lebel.glob("sub-*/ses-*/func/*_bold.nii.gz"):
        rel = p.relative_to(mini_lebel).as_posix()
        assert rel in sizes.index
        assert nib.load(str(p)).header.get_zooms()[3] == 2.0
    # real files are byte-exact copies
    real = layouts / "ds003020" / "files" / "derivative" / "respdict.json"
    assert (mini_lebel / "derivative" / "respdict.json").read_bytes() == real.read_bytes()
    with h5py.File(mini_lebel / "derivative/preprocessed_data/UTS02/inamoment.hf5") as f:
        assert f["resp"].shape == (205, 16)


def test_miniature_bad_input(layouts, tmp_path):
    with pytest.raises(ValueError, match="Invalid value for 'dataset'"):
        make_miniature("ds000001", tmp_path, layouts=layouts)
    with pytest.raises(FileNotFoundError, match=r"no layout for 'ds003020'"):
        make_miniature("lebel2023", tmp_path, layouts=tmp_path)
    with pytest.raises(DatasetError, match="no story 'nosuch'"):
        make_miniature("lebel2023", tmp_path, runs=["nosuch"], layouts=layouts)
