"""``loader: stories``: your own transcripts and one response file per subject and run."""
from pathlib import Path

import numpy as np
import pytest
import yaml
from numpy.testing import assert_allclose

from neuroenc._validation import ConfigError, DatasetError
from neuroenc.datasets import EncodingDataset
from neuroenc.datasets.miniature import write_textgrid
from neuroenc.datasets.stories import load_stories
from neuroenc.pipeline import load_dataset
from neuroenc.pipeline.config import config_from_dict, load_config

STORIES = {"tale": ["once", "upon", "a", "time", "there", "was"],
           "fable": ["the", "fox", "and", "the", "crow", "sang"]}
N_TRS = {"tale": 8, "fable": 10}
TR = 1.5


def _write_story(path: Path, words: list[str], step: float = 1.0) -> list[float]:
    onsets = [0.5 + step * i for i in range(len(words))]
    write_textgrid(path, {"word": [(on, on + 0.4, w) for on, w in zip(onsets, words)]},
                   xmax=onsets[-1] + 2.0)
    return onsets


@pytest.fixture
def stories(tmp_path):
    """2 stories (TextGrids), 2 subjects x 2 runs of CSV responses with a header."""
    root = tmp_path / "study"
    onsets = {run: _write_story(root / "stimuli" / f"{run}.TextGrid", words) for run, words in STORIES.items()}
    rng = np.random.default_rng(0)
    data = {}
    for subject in ("01", "02"):
        for run in STORIES:
            values = rng.standard_normal((N_TRS[run], 3))
            data[subject, run] = values
            folder = root / f"sub-{subject}"
            folder.mkdir(parents=True, exist_ok=True)
            rows = ["roiA,roiB,roiC"] + [",".join(f"{v:.9f}" for v in row) for row in values]
            (folder / f"{run}_bold.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root, onsets, data


def _write_config(root: Path, args: dict, **dataset) -> Path:
    path = root / "run.yaml"
    values = {"name": "mine", "dataset": {"loader": "stories", "args": args, **dataset}}
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


ARGS = {"transcripts": "stimuli/*.TextGrid", "responses": "sub-{subject}/{run}_bold.csv", "tr": TR, "start": 3.0}


def _check(ds, onsets, data, subjects=("01", "02")):
    assert isinstance(ds, EncodingDataset)
    assert sorted(ds.runs) == ["fable", "tale"] and ds.subjects == list(subjects)
    for run, words in STORIES.items():
        assert list(ds.transcripts[run].words) == words
        assert_allclose(ds.transcripts[run].onsets, onsets[run], atol=1e-9)
    for s in subjects:
        for run in STORIES:
            resp = ds.responses[s][run]
            assert resp.tr == TR and resp.start == 3.0 and resp.run == run and resp.subject == s
            assert resp.names == ["roiA", "roiB", "roiC"]
            assert_allclose(resp.data, data[s, run], atol=1e-8)


def test_config_paths_are_relative_to_the_config_folder(stories, tmp_path, monkeypatch):
    root, onsets, data = stories
    monkeypatch.chdir(tmp_path)  # not the config's folder: the paths must not be taken from here
    cfg = load_config(_write_config(root, ARGS))
    _check(load_dataset(cfg.dataset), onsets, data)
    ds = load_dataset(cfg.dataset, subjects=["02"])
    assert ds.subjects == ["02"]
    assert_allclose(ds.responses["02"]["fable"].data, data["02", "fable"], atol=1e-8)


def test_config_runs_and_subjects_select(stories):
    root, _, data = stories
    cfg = load_config(_write_config(root, ARGS, runs=["fable"], subjects=["01"]))
    ds = load_dataset(cfg.dataset)
    assert ds.runs == ["fable"] and ds.subjects == ["01"] and list(ds.responses["01"]) == ["fable"]


def test_table_of_responses(stories):
    root, onsets, data = stories
    rows = ["subject\trun\tpath"] + [f"{s}\t{r}\t../sub-{s}/{r}_bold.csv" for s in ("01", "02") for r in STORIES]
    (root / "tables").mkdir()
    (root / "tables" / "responses.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    args = dict(ARGS, responses="tables/responses.tsv")
    _check(load_dataset(load_config(_write_config(root, args)).dataset), onsets, data)


def test_python_call_with_root_and_mapping(stories):
    root, onsets, data = stories
    ds = load_stories({"tale": "stimuli/tale.TextGrid", "fable": "stimuli/fable.TextGrid"},
                      "sub-{subject}/{run}_bold.csv", tr=TR, start=3.0, root=root)
    _check(ds, onsets, data)
    assert ds.info["sources"]["responses"]["01"]["tale"] == str(root / "sub-01" / "tale_bold.csv")


def test_pattern_with_wildcards_and_repeated_placeholder(stories):
    root, onsets, data = stories
    for s in ("01", "02"):
        for run in STORIES:
            (root / f"sub-{s}" / f"{run}_bold.csv").rename(root / f"sub-{s}" / f"sub-{s}_task-{run}_bold.csv")
    args = dict(ARGS, responses="sub-{subject}/sub-{subject}_task-{run}_*.csv")
    _check(load_stories(root=root, **args), onsets, data)


# ---------------------------------------------------------------------- errors
def test_response_without_transcript(stories):
    root, _, _ = stories
    (root / "stimuli" / "fable.TextGrid").unlink()
    with pytest.raises(DatasetError, match=r"sub-01/fable_bold.csv.*run 'fable', which has no transcript.*"
                                           r"Add the transcript of 'fable'"):
        load_stories(root=root, **ARGS)


def test_transcript_without_response(stories):
    root, _, _ = stories
    for s in ("01", "02"):
        (root / f"sub-{s}" / "fable_bold.csv").unlink()
    with pytest.raises(DatasetError, match=r"run 'fable' has a transcript \(.*fable.TextGrid'\) but no "
                                           r"response file. Add its responses"):
        load_stories(root=root, **ARGS)


def test_subject_missing_a_run_is_logged(stories, caplog):
    root, _, _ = stories
    (root / "sub-02" / "fable_bold.csv").unlink()
    ds = load_stories(root=root, **ARGS)
    assert list(ds.responses["02"]) == ["tale"] and sorted(ds.responses["01"]) == ["fable", "tale"]
    assert "subject 02 has no responses for run(s) ['fable']" in caplog.text


def test_glob_matching_nothing(stories):
    root, _, _ = stories
    with pytest.raises(DatasetError, match=r"transcripts 'stim/\*.TextGrid' match no file under .*study"):
        load_stories(root=root, **dict(ARGS, transcripts="stim/*.TextGrid"))
    with pytest.raises(DatasetError, match=r"responses pattern 'subj-\{subject\}/\{run\}_bold.csv' matches no "
                                           r"file under .*relative to the config file's folder"):
        load_stories(root=root, **dict(ARGS, responses="subj-{subject}/{run}_bold.csv"))


def test_bad_patterns(stories):
    root, _, _ = stories
    with pytest.raises(DatasetError, match=r"has no \{subject\} placeholder"):
        load_stories(root=root, **dict(ARGS, responses="sub-01/{run}_bold.csv"))
    with pytest.raises(DatasetError, match=r"has no \{run\} placeholder, but there are 2 transcripts"):
        load_stories(root=root, **dict(ARGS, responses="sub-{subject}/tale_bold.csv"))
    with pytest.raises(DatasetError, match=r"placeholder\(s\) \['session'\]"):
        load_stories(root=root, **dict(ARGS, responses="sub-{subject}/{session}/{run}.csv"))
    with pytest.raises(DatasetError, match=r"neither a pattern .* nor a .csv/.tsv table"):
        load_stories(root=root, **dict(ARGS, responses="sub-01/tale_bold.nii.gz"))
    with pytest.raises(DatasetError, match=r"matches two files for subject '01' run 'tale'"):
        (root / "sub-01" / "tale_bold2.csv").write_text("a\n1\n", encoding="utf-8")
        load_stories(root=root, **dict(ARGS, responses="sub-{subject}/{run}_bold*.csv"))


def test_bad_table(stories):
    root, _, _ = stories
    (root / "t.csv").write_text("subject,story,path\n01,tale,sub-01/tale_bold.csv\n", encoding="utf-8")
    with pytest.raises(DatasetError,
                       match=r"t.csv' lacks column\(s\) \['run'\]; it has \['subject', 'story', 'path'\]"):
        load_stories(root=root, **dict(ARGS, responses="t.csv"))
    with pytest.raises(DatasetError, match=r"responses table .*nope.csv' does not exist"):
        load_stories(root=root, **dict(ARGS, responses="nope.csv"))


def test_unknown_subject_and_missing_transcript_file(stories):
    root, _, _ = stories
    with pytest.raises(DatasetError, match=r"no responses for subject\(s\) \['03'\]; the responses give "
                                           r"subjects \['01', '02'\]"):
        load_stories(root=root, subjects=["03"], **ARGS)
    with pytest.raises(FileNotFoundError, match=r"run 'tale' has no transcript: .*missing.TextGrid' is missing"):
        load_stories(root=root, **dict(ARGS, transcripts={"tale": "stimuli/missing.TextGrid"}))


def test_config_args_are_checked_when_the_config_is_read(stories):
    root, _, _ = stories
    args = {k: v for k, v in ARGS.items() if k != "transcripts"}
    with pytest.raises(ConfigError, match=r"unknown key dataset.args.transcript in '.*run.yaml'; did you mean "
                                          r"dataset.args.transcripts\?"):
        load_config(_write_config(root, dict(args, transcript="stimuli/*.TextGrid")))
    with pytest.raises(ConfigError, match=r"dataset.args.tr in '.*run.yaml' must be .*; got -2"):
        load_config(_write_config(root, dict(ARGS, tr=-2)))
    with pytest.raises(ConfigError, match=r"dataset.args in '.*run.yaml' lacks responses, required by loader "
                                          r"'stories'; e.g. transcripts: 'stimuli/\*.TextGrid'"):
        load_config(_write_config(root, {"transcripts": "stimuli/*.TextGrid"}))
    with pytest.raises(ConfigError, match=r"dataset.args.start must be a number; got 'soon' \(str\)"):
        config_from_dict({"dataset": {"loader": "stories", "args": dict(ARGS, start="soon")}})


def test_wrong_length_is_caught_by_the_alignment_checks(stories, caplog):
    """A response shorter than its story: the loader logs the file, the coverage check refuses it."""
    from neuroenc.align.checks import check_coverage

    root, _, _ = stories
    path = root / "sub-01" / "fable_bold.csv"
    path.write_text("\n".join(path.read_text(encoding="utf-8").splitlines()[:3]) + "\n", encoding="utf-8")
    ds = load_stories(root=root, **dict(ARGS, start=0.0))
    assert f"{path} (subject 01, run 'fable') ends at 3.000 s (2 rows from start=0)" in caplog.text
    assert "check tr=/sfreq= and the file's rows" in caplog.text
    with pytest.raises(ValueError, match=r"run 'fable': 3 of 6 words .* fall after the end of the response grid.*"
                                         r"check the TR/sfreq"):
        check_coverage(ds.transcripts["fable"].onsets, ds.responses["01"]["fable"])


# ---------------------------------------------------------------------- real data
ALICE_ROIS = ["LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG"]


def test_alice_through_stories_equals_loader_alice(data_dir, tmp_path):
    alice = data_dir / "alice-brennan2016"
    if not (alice / "fmri" / "10mm" / "s18-timecourses.txt").exists():
        pytest.skip("Alice data not available")
    textgrid = next((alice / "stimuli").glob("*.TextGrid"))
    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "data").symlink_to(alice)  # the config's paths are relative to its folder
    args = {"transcripts": {"alice": f"data/stimuli/{textgrid.name}"},
            "responses": "data/fmri/10mm/{subject}-timecourses.txt", "tr": 2.0, "start": 20.0,
            "names": ALICE_ROIS, "name": "alice"}
    mine = load_dataset(load_config(_write_config(folder, args, subjects=["s18", "s22"])).dataset)
    ref_cfg = config_from_dict({"dataset": {"loader": "alice", "args": {"data_dir": str(data_dir), "download": False},
                                            "subjects": ["s18", "s22"]}})
    ref = load_dataset(ref_cfg.dataset)
    assert mine.subjects == ref.subjects == ["s18", "s22"] and mine.runs == ref.runs == ["alice"]
    assert mine.transcripts["alice"].words == ref.transcripts["alice"].words
    assert_allclose(mine.transcripts["alice"].onsets, ref.transcripts["alice"].onsets, atol=1e-9)
    assert_allclose(mine.transcripts["alice"].offsets, ref.transcripts["alice"].offsets, atol=1e-9)
    for s in ("s18", "s22"):
        a, b = mine.responses[s]["alice"], ref.responses[s]["alice"]
        assert (a.tr, a.start, a.names, a.n_samples) == (b.tr, b.start, b.names, b.n_samples) == (
            2.0, 20.0, ALICE_ROIS, 362)
        assert_allclose(a.data, b.data, rtol=1e-12)
        assert_allclose(a.times, b.times)


def test_neuroenc_run_on_own_stories(tmp_path):
    """``neuroenc run`` on a config of ``loader: stories`` (a tiny model; the paths relative to the
    config's folder): results per subject, with the run's targets and runs."""
    from neuroenc.encoding import EncodingResults
    from neuroenc.pipeline import run_pipeline
    from neuroenc.testing import TINY_TEXT, tiny_gpt2

    root = tmp_path / "study"
    words = TINY_TEXT.split()
    rng = np.random.default_rng(1)
    for k, run in enumerate(("tale", "fable")):
        story = (words * 3)[17 * k: 17 * k + 60]
        _write_story(root / "stimuli" / f"{run}.TextGrid", story)
        for s in ("01", "02"):
            folder = root / f"sub-{s}"
            folder.mkdir(parents=True, exist_ok=True)
            np.savetxt(folder / f"{run}_bold.txt", rng.standard_normal((42, 2)))
    model = tmp_path / "model"
    tiny_gpt2(n_layer=2, n_embd=32, n_positions=128, path=model)
    args = {"transcripts": "stimuli/*.TextGrid", "responses": "sub-{subject}/{run}_bold.txt", "tr": 1.5,
            "names": ["a", "b"]}
    config = _write_config(root, args)
    overrides = {"model.name": str(model), "model.context_tokens": 16, "model.stride": 8, "model.device": "cpu",
                 "model.dtype": "float32", "encoding.alphas": {"logspace": [0, 4, 3]},
                 "encoding.n_permutations": 10, "output.dir": str(tmp_path / "out")}
    out = run_pipeline(config, overrides=overrides, verbose=False)
    assert sorted(out.results) == ["01", "02"]
    res = EncodingResults.load(out.results["02"])
    assert res.targets == ["a", "b"] and res.provenance["dataset"] == "stories"
    assert sorted(res.provenance["runs"]) == ["fable", "tale"]
    assert np.all(np.abs(res.r) <= 1)


def test_nifti_responses_with_a_mask_relative_to_the_config(stories):
    """4-D NIfTI runs (the TR from their headers) and a brain mask, paths relative to the config."""
    nib = pytest.importorskip("nibabel")
    root, onsets, _ = stories
    rng = np.random.default_rng(3)
    mask = np.zeros((2, 2, 2), dtype=np.uint8)
    mask[0, 0, 0] = mask[1, 1, 1] = 1
    nib.save(nib.Nifti1Image(mask, np.eye(4)), root / "mask.nii.gz")
    data = {}
    for s in ("01", "02"):
        for run in STORIES:
            vol = rng.standard_normal((2, 2, 2, N_TRS[run])).astype(np.float32)
            img = nib.Nifti1Image(vol, np.eye(4))
            img.header.set_xyzt_units("mm", "sec")
            img.header["pixdim"][4] = TR
            folder = root / "func" / f"sub-{s}"
            folder.mkdir(parents=True, exist_ok=True)
            nib.save(img, folder / f"sub-{s}_task-{run}_bold.nii.gz")
            data[s, run] = vol[mask.astype(bool)].T
    args = {"transcripts": "stimuli/*.TextGrid", "responses": "func/sub-{subject}/sub-{subject}_task-{run}_bold.nii.gz",
            "mask": "mask.nii.gz", "start": 3.0}
    ds = load_dataset(load_config(_write_config(root, args)).dataset)
    resp = ds.responses["02"]["fable"]
    assert resp.tr == TR and resp.n_samples == N_TRS["fable"] and resp.names == ["0_0_0", "1_1_1"]
    assert_allclose(resp.data, data["02", "fable"], rtol=1e-6)
