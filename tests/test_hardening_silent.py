"""Issue 18, items 5, 6, 7 and 9: inputs that used to give a silently wrong answer.

- 5: responses files with the same file name in different folders are different subjects
  (named by the shortest end of their paths that differs), in ``neuroenc fit`` and in
  ``load_stimuli``; a file given twice, or a subject in two files, is an error;
- 6: ``neuroenc report`` refuses results fitted on features made differently (context 16 vs 64)
  and two fits of the same responses;
- 7: a TR 25 % longer than the rows imply (``tr=2.5`` on Alice, TR 2 s) is a warning with the
  estimate, although only about 19 % of the grid lies outside the story;
- 9: a fold that holds out fewer than 2 rows (``kfold:N`` with N stimuli) is refused: its r is
  undefined.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from neuroenc.cli import main as cli_main

ALICE = Path(os.environ.get("NEUROENC_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) \
    / "alice-brennan2016"


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return " ".join(err.split())


def _stimulus_features(path: Path, n: int = 12, context: str = "none", seed: int = 0) -> list[str]:
    from neuroenc.features import StimulusFeatures
    from neuroenc.features.stimulus_features import save_stimulus_features

    rng = np.random.default_rng(seed)
    ids = [f"s{i:02d}" for i in range(n)]
    fs = StimulusFeatures({0: rng.standard_normal((n, 4)), 1: rng.standard_normal((n, 4))}, ids,
                          [f"text {i}" for i in range(n)], None, name="sim", model="sim-model", n_model_layers=2,
                          attrs={"context": context, "pooling": "mean", "model_identity": "sha256:abc"})
    save_stimulus_features(fs, path)
    return ids


def _write_responses(path: Path, ids, values) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("id,roi\n" + "".join(f"{i},{v:.6f}\n" for i, v in zip(ids, values)), encoding="utf-8")
    return path


FIT = ["--n-permutations", "0", "--alphas", "1,100", "--backend", "numpy"]


# ----------------------------------------------------------------------------- item 5
def test_fit_keeps_subjects_whose_files_share_a_name(tmp_path, capsys):
    from neuroenc.encoding.results import EncodingResults
    from neuroenc.stimuli.responses import subject_keys

    ids = _stimulus_features(tmp_path / "f.h5")
    rng = np.random.default_rng(1)
    signal = rng.standard_normal(len(ids))
    a = _write_responses(tmp_path / "subA" / "bold.csv", ids, signal + 0.3 * rng.standard_normal(len(ids)))
    b = _write_responses(tmp_path / "subB" / "bold.csv", ids, signal + 0.3 * rng.standard_normal(len(ids)))
    out = tmp_path / "r.h5"
    assert cli_main(["-q", "fit", "--features", str(tmp_path / "f.h5"), "--responses", str(a), str(b),
                     "--cv", "kfold:3", *FIT, "--out", str(out)]) == 0
    res = EncodingResults.load(out)
    # both subjects averaged (before: only subB's, under the name 'bold.csv', without a ceiling)
    assert res.provenance["group_members"] == ["subA_bold.csv", "subB_bold.csv"]
    assert res.noise_ceiling is not None and np.isfinite(res.noise_ceiling).all()
    assert len(res.provenance["responses_sha256"]) == 2
    # unique file names keep their names; the same file twice is refused
    assert subject_keys(["x/s1.csv", "y/s2.csv"]) == ["s1.csv", "s2.csv"]
    assert subject_keys(["p/a/bold.csv", "q/a/bold.csv", "r/b/bold.csv"]) == \
        ["p_a_bold.csv", "q_a_bold.csv", "b_bold.csv"]
    capsys.readouterr()
    assert cli_main(["-q", "fit", "--features", str(tmp_path / "f.h5"), "--responses", str(a),
                     str(tmp_path / "subA" / ".." / "subA" / "bold.csv"), "--cv", "kfold:3", *FIT,
                     "--out", str(out)]) == 1
    assert f"the responses file '{tmp_path / 'subA' / '..' / 'subA' / 'bold.csv'}' is given twice" in _err(capsys)


def test_load_stimuli_keeps_subjects_whose_files_share_a_name(tmp_path):
    from neuroenc.datasets.stimuli import load_stimuli
    from neuroenc.stimuli import StimulusError

    ids = [f"s{i}" for i in range(6)]
    (tmp_path / "stimuli.csv").write_text("id,sentence\n" + "".join(f"{i},text {i}\n" for i in ids),
                                          encoding="utf-8")
    a = _write_responses(tmp_path / "subA" / "bold.csv", ids, np.arange(6.0))
    b = _write_responses(tmp_path / "subB" / "bold.csv", ids, -np.arange(6.0))
    data = load_stimuli(tmp_path / "stimuli.csv", "sentence", [a, b])
    assert data.subjects == ["subA_bold.csv", "subB_bold.csv"]
    np.testing.assert_allclose(data.responses["subA_bold.csv"].data[:, 0], np.arange(6.0))
    np.testing.assert_allclose(data.responses["subB_bold.csv"].data[:, 0], -np.arange(6.0))
    # long tables: a subject in two files is an error naming both
    for path, sign in ((a, 1), (b, -1)):
        path.write_text("id,sub,roi\n" + "".join(f"{i},s1,{sign * k}\n" for k, i in enumerate(ids)), encoding="utf-8")
    with pytest.raises(StimulusError, match=rf"subject 's1' has responses in '{a}' and in '{b}'"):
        load_stimuli(tmp_path / "stimuli.csv", "sentence", [a, b], subject_column="sub")


# ----------------------------------------------------------------------------- item 6
def _story_features(path: Path, context_tokens: int) -> None:
    from neuroenc.features import FeatureSet
    from neuroenc.features.featureset import save_features

    rng = np.random.default_rng(0)
    on = np.arange(200) * 0.5
    fs = FeatureSet({0: rng.standard_normal((200, 3)), 1: rng.standard_normal((200, 3))}, on, on + 0.4,
                    [f"w{i}" for i in range(200)], run="story", model="tiny", n_model_layers=2,
                    attrs={"context_tokens": context_tokens, "policy": "strided", "stride": 8,
                           "pooling": "last", "model_identity": "sha256:abc"})
    save_features(fs, path)


def test_report_refuses_results_of_other_features_or_the_same_responses(tmp_path, capsys):
    _story_features(tmp_path / "c16.h5", 16)
    _story_features(tmp_path / "c64.h5", 64)
    rng = np.random.default_rng(2)
    for name in ("s1", "s2"):
        np.savetxt(tmp_path / f"{name}.txt", rng.standard_normal((50, 2)))
    fit = ["-q", "fit", "--tr", "2", "--delays", "1,2", *FIT]

    def run_fit(features, responses, out, subject):
        assert cli_main([*fit, "--features", str(tmp_path / features), "--responses", str(tmp_path / responses),
                         "--subject", subject, "--out", str(tmp_path / out)]) == 0

    run_fit("c16.h5", "s1.txt", "a.h5", "s1")
    run_fit("c64.h5", "s2.txt", "b.h5", "s2")
    run_fit("c16.h5", "s1.txt", "again.h5", "s1-again")  # the same responses, another subject name
    run_fit("c16.h5", "s2.txt", "c.h5", "s2")
    capsys.readouterr()
    report = ["-q", "report", "--out", str(tmp_path / "report.html"), "--n-boot", "20", "--n-permutations", "20"]
    assert cli_main([*report, "--results", str(tmp_path / "a.h5"), str(tmp_path / "b.h5")]) == 1
    assert (f"results '{tmp_path / 'a.h5'}' and '{tmp_path / 'b.h5'}' were fitted on features made differently: "
            "context_tokens=16 for the first but context_tokens=64 for the second") in _err(capsys)
    assert cli_main([*report, "--results", str(tmp_path / "a.h5"), str(tmp_path / "again.h5")]) == 1
    assert (f"results '{tmp_path / 'a.h5'}' and '{tmp_path / 'again.h5'}' are fits of the same responses "
            "(responses_sha256 ") in _err(capsys)
    assert not (tmp_path / "report.html").exists()
    assert cli_main([*report, "--results", str(tmp_path / "a.h5"), str(tmp_path / "c.h5")]) == 0
    assert (tmp_path / "report.html").exists()


def test_group_check_compares_the_fields_that_align_compares():
    """The results' check uses the runs' comparison: the same fields, the same exemptions."""
    from _mapping_fixtures import make_results

    from neuroenc.features.featureset import provenance_difference
    from neuroenc.mapping.collect import check_group

    base = {"model": "m", "context_tokens": 16, "pooling": "last", "model_identity": "sha256:a"}
    assert provenance_difference(dict(base, pooling="mean"), base) == ("pooling", "mean", "last")
    assert provenance_difference({"model": "m", "model_sha256": "x", "model_identity": "sha256:a"},
                                 {"model": "m", "model_sha256": "y", "model_identity": "sha256:a"}) is None
    assert provenance_difference({"model": "m"}, base) is None  # not recorded: not compared
    a = make_results("s1", seed=0, provenance={"design": {"features": base}})
    b = make_results("s2", seed=1, provenance={"design": {"features": dict(base, model_identity="sha256:b")}})
    with pytest.raises(ValueError, match=r"model_identity='sha256:a' for the first but model_identity='sha256:b'"):
        check_group([a, b])
    c = make_results("s3", seed=2, provenance={"responses_sha256": {"run-1": "f" * 64}})
    d = make_results("s4", seed=3, provenance={"responses_sha256": {"run-1": "f" * 64}})
    with pytest.raises(ValueError, match=r"results 1 \(subject 's3'\) and results 2 \(subject 's4'\) are fits of "
                                         r"the same responses \(responses_sha256 ffffffffffff\.\.\.\)"):
        check_group([c, d])
    check_group([a, make_results("s2", seed=1, provenance={"design": {"features": base}}), c])


# ----------------------------------------------------------------------------- item 7
@pytest.mark.skipif(not (ALICE / "stimuli").exists(), reason="needs the Alice data")
def test_a_tr_longer_than_the_rows_imply_is_a_warning_on_alice(caplog):
    from neuroenc.align import make_fmri_design
    from neuroenc.features import FeatureSet
    from neuroenc.responses import read_responses
    from neuroenc.stimuli import read_textgrid

    words = read_textgrid(ALICE / "stimuli" / "DownTheRabbitHoleFinal_exp120_pad_1.TextGrid")
    fs = FeatureSet({0: np.random.default_rng(0).standard_normal((len(words.words), 3))}, words.onsets,
                    words.offsets, list(words.words), run="alice", model="m", n_model_layers=1)
    found = {}
    for tr in (2.0, 2.5):
        response = read_responses(ALICE / "fmri" / "10mm" / "s18-timecourses.txt", tr=tr, start=20.0, run="alice")
        assert response.n_samples == 362
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="neuroenc"):
            design = make_fmri_design(fs, response)
        found[tr] = ([r.getMessage() for r in caplog.records if "would fit the story" in r.getMessage()],
                     design.warnings)
    assert found[2.0] == ([], [])
    logged, kept = found[2.5]
    assert len(logged) == 1 and kept == logged  # once, and in the results' warnings
    assert ("the rows would fit the story with a TR of about 2.00 s, and tr=2.5 is 25% longer. Check tr=2.5"
            in logged[0])


def test_the_tr_warning_reaches_the_command_line(tmp_path, capsys):
    _story_features(tmp_path / "f.h5", 16)  # words over 0-99.5 s
    np.savetxt(tmp_path / "r.txt", np.random.default_rng(0).standard_normal((50, 2)))
    base = ["-q", "fit", "--features", str(tmp_path / "f.h5"), "--responses", str(tmp_path / "r.txt"),
            "--delays", "1", *FIT, "--out", str(tmp_path / "res.h5")]
    assert cli_main([*base, "--tr", "2"]) == 0
    assert "would fit the story" not in capsys.readouterr().err
    assert cli_main([*base, "--tr", "2.4"]) == 0
    err = _err(capsys)
    assert "with a TR of about 1.99 s, and --tr 2.4 is 21% longer. Check --tr 2.4" in err
    assert "trim=" not in err and "--trim FIRST,LAST" in err


# ----------------------------------------------------------------------------- item 9
def test_leave_one_out_kfold_is_refused(tmp_path, capsys):
    ids = _stimulus_features(tmp_path / "f.h5", n=12)
    resp = _write_responses(tmp_path / "r.csv", ids, np.random.default_rng(0).standard_normal(12))
    base = ["-q", "fit", "--features", str(tmp_path / "f.h5"), "--responses", str(resp), *FIT,
            "--out", str(tmp_path / "res.h5")]
    for k in (12, 7):
        assert cli_main([*base, "--cv", f"kfold:{k}"]) == 1
        assert (f"--cv 'kfold:{k}' on 12 stimuli holds out fewer than 2 stimuli in some folds"
                + (" (leave-one-out)" if k == 12 else "") + ", but a fold's score (Pearson r of its held-out "
                "stimuli) needs at least 2 held-out stimuli per fold; use fewer folds: --cv 'kfold:K' with K <= 6."
                ) in _err(capsys)
    assert not (tmp_path / "res.h5").exists()
    assert cli_main([*base, "--cv", "kfold:6"]) == 0


def test_any_fold_with_fewer_than_two_held_out_rows_is_refused():
    from neuroenc.encoding.cv import make_cv

    with pytest.raises(ValueError, match=r"Fold 1 of 2 holds out 1 sample\(s\) of 6; a fold's score \(Pearson r "
                                         r"of its held-out samples\) needs at least 2"):
        make_cv([(np.arange(2, 6), [0, 1]), (np.arange(5), [5])], n_samples=6)
    # group-kfold whose groups hold one stimulus each
    with pytest.raises(ValueError, match=r"Fold \d of 3 holds out 1 sample"):
        make_cv("group-kfold:3", groups=["a", "b", "c", "c", "c", "c"], n_samples=6)
    assert len(make_cv("kfold:3", n_samples=6, random_state=0)) == 3


def test_subjects_of_one_long_table_are_not_the_same_responses(tmp_path):
    """Two subjects' rows of one long table hash apart, so that their results pool as two subjects
    (the duplicate check of item 6 compares ``responses_sha256``)."""
    from neuroenc.stimuli.responses import read_stimulus_responses

    path = tmp_path / "long.csv"
    path.write_text("id,sub,roi\n" + "".join(f"s{i},{s},{i * k}\n" for k, s in ((1, "a"), (2, "b")) for i in range(4)),
                    encoding="utf-8")
    both = read_stimulus_responses(path, subject_column="sub")
    assert both["a"].info["file_sha256"] == both["b"].info["file_sha256"]
    assert both["a"].info["sha256"] != both["b"].info["sha256"]
    np.testing.assert_allclose(both["b"].data[:, 0], [0, 2, 4, 6])
