"""Issue 18, item 13: messages that name the option, the value, the file and line, and the fix.

``--start nan``, ``--delays 500``, a quote in a responses header, a control character in a
stimulus, a one-stimulus fit, one ``inf`` cell, an unclosed quote that merged rows, and hints
that named API arguments (``tr=``, ``id_column=``, ``response.select(...)``) where the user gave
command-line options.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuroenc.cli import main as cli_main

FIT = ["--n-permutations", "0", "--alphas", "1,100", "--backend", "numpy"]


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return " ".join(err.split())


@pytest.fixture
def story(tmp_path) -> Path:
    """Word features of one run: 200 words every 0.5 s (0-99.5 s)."""
    from neuroenc.features import FeatureSet
    from neuroenc.features.featureset import save_features

    rng = np.random.default_rng(0)
    on = np.arange(200) * 0.5
    fs = FeatureSet({0: rng.standard_normal((200, 3)), 1: rng.standard_normal((200, 3))}, on, on + 0.4,
                    [f"w{i}" for i in range(200)], run="story", model="tiny", n_model_layers=2)
    return save_features(fs, tmp_path / "story.h5")


@pytest.fixture
def stimuli(tmp_path) -> Path:
    """Stimulus-level features of 12 stimuli s00..s11."""
    from neuroenc.features import StimulusFeatures
    from neuroenc.features.stimulus_features import save_stimulus_features

    rng = np.random.default_rng(0)
    ids = [f"s{i:02d}" for i in range(12)]
    fs = StimulusFeatures({0: rng.standard_normal((12, 4)), 1: rng.standard_normal((12, 4))}, ids,
                          [f"text {i}" for i in range(12)], None, name="sim", model="sim-model", n_model_layers=2)
    return save_stimulus_features(fs, tmp_path / "stim.h5")


def _fit_story(story, responses, *extra) -> list[str]:
    return ["-q", "fit", "--features", str(story), "--responses", str(responses), *FIT, *extra,
            "--out", str(Path(story).parent / "res.h5")]


def _fit_stimuli(stimuli, responses, *extra) -> list[str]:
    return ["-q", "fit", "--features", str(stimuli), "--responses", str(responses), *FIT, *extra,
            "--out", str(Path(stimuli).parent / "res.h5")]


def _stimulus_table(path: Path, header: str = "id,roi", bad: dict | None = None) -> Path:
    rng = np.random.default_rng(1)
    rows = [header] + [f"s{i:02d},{(bad or {}).get(i, f'{rng.standard_normal():.4f}')}" for i in range(12)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- options
def test_start_nan_names_the_option(tmp_path, story, capsys):
    from neuroenc.responses import read_responses

    np.savetxt(tmp_path / "r.txt", np.random.default_rng(0).standard_normal((50, 2)))
    assert cli_main(_fit_story(story, tmp_path / "r.txt", "--tr", "2", "--start", "nan")) == 1
    assert ("neuroenc fit: error: --start nan is not a finite number: give the stimulus time of row 0 in "
            "seconds, e.g. --start 20.0.") in _err(capsys)
    with pytest.raises(ValueError, match=r"start=inf is not a finite number: .* e\.g\. start=20\.0\."):
        read_responses(tmp_path / "r.txt", tr=2, start=float("inf"))


def test_delays_in_seconds_or_ms_are_refused_naming_the_unit(tmp_path, story, capsys):
    np.savetxt(tmp_path / "r.txt", np.random.default_rng(0).standard_normal((50, 2)))
    assert cli_main(_fit_story(story, tmp_path / "r.txt", "--tr", "2", "--delays", "500")) == 1
    err = _err(capsys)
    assert ("--delays 500 reach 500 TRs (1000 s), past the whole of run 'story' (50 kept TRs, 100 s): its rows "
            "would see no stimulus of their own run. Delays are counted in TRs (of 2 s here), not in seconds or "
            "milliseconds: give a few, e.g. --delays 1,2,3,4 for 2-8 s.") in err
    assert "gap" not in err


# ----------------------------------------------------------------------------- files
@pytest.mark.parametrize("header", ['"roi,b', 'a,"b'])
def test_a_quote_in_a_responses_header_names_the_file_and_line(tmp_path, story, header, capsys):
    path = tmp_path / "h.csv"
    path.write_text(header + "\n" + "".join(f"{i},{i * 7 % 5}\n" for i in range(50)), encoding="utf-8")
    assert cli_main(_fit_story(story, path, "--tr", "2")) == 1
    assert (f"responses '{path}', line 1: a quote (\") opened on this line runs to line 51, merging lines 1-51 "
            "into one row (an unclosed quote, or a line break inside quotes). Close the quote, or delete it"
            ) in _err(capsys)


def test_a_quote_in_a_stimulus_responses_header(tmp_path, stimuli, capsys):
    path = _stimulus_table(tmp_path / "h.csv", header='id,"roi')
    assert cli_main(_fit_stimuli(stimuli, path, "--cv", "kfold:3")) == 1
    assert f"responses '{path}', line 1: a quote (\") opened on this line runs to line 13" in _err(capsys)


def test_an_unclosed_quote_that_merges_rows_is_refused(tmp_path):
    from neuroenc.responses import read_responses
    from neuroenc.stimuli import StimulusError, read_stimuli

    path = tmp_path / "st.csv"
    path.write_text('id,sentence\ns1,"The cat sat.\ns2,It purred.\ns3,"Rain fell."\ns4,Snow.\n', encoding="utf-8")
    # before: 2 stimuli, the first 'The cat sat.\ns2,It purred.\ns3,Rain fell."'
    with pytest.raises(StimulusError, match=rf"stimuli '{path}', line 2: a quote \(\"\) opened on this line runs "
                                            r"to line 4, merging lines 2-4 into one row"):
        read_stimuli(path, "sentence")
    table = tmp_path / "uq.csv"
    table.write_text('a,b\n1,2\n"3,4\n5,6\n7,"8\n9,10\n', encoding="utf-8")
    with pytest.raises(ValueError, match=rf"responses '{table}', line 3: a quote \(\"\) opened on this line runs "
                                         r"to line 5"):
        read_responses(table, tr=2)
    # quotes that close on their line are fine
    path.write_text('id,sentence\ns1,"The cat, he sat."\ns2,It purred.\n', encoding="utf-8")
    assert read_stimuli(path, "sentence").texts == ["The cat, he sat.", "It purred."]


def test_a_control_character_names_the_stimulus_and_row(tmp_path, capsys):
    from neuroenc.stimuli import StimulusError, StimulusSet, read_stimuli

    path = tmp_path / "cc.csv"
    path.write_text("id,sentence\ns1,The cat sat.\ns2,It \x01 purred.\n", encoding="utf-8")
    with pytest.raises(StimulusError, match=r"the text of stimulus 's2' \(row 3\) holds the control character "
                                            r"U\+0001 at character 4: 'It \\x01 purred\.'"):
        read_stimuli(path, "sentence")
    assert cli_main(["-q", "extract", "--model", str(tmp_path / "no-model"), "--stimuli", str(path),
                     "--text-column", "sentence", "--out", str(tmp_path / "f.h5")]) == 1
    assert f"stimuli '{path}': the text of stimulus 's2' (row 3) holds the control character U+0001" in _err(capsys)
    assert StimulusSet(["a"], ["tabs\tand\nline breaks are whitespace"]).texts  # not control characters


# ----------------------------------------------------------------------------- fits
def test_a_one_stimulus_fit_says_how_many_it_needs(tmp_path, capsys):
    from neuroenc.features import StimulusFeatures
    from neuroenc.features.stimulus_features import save_stimulus_features

    save_stimulus_features(StimulusFeatures({0: np.ones((1, 4))}, ["s1"], ["text"], None, name="one", model="m",
                                            n_model_layers=1), tmp_path / "one.h5")
    (tmp_path / "one.csv").write_text("id,roi\ns1,0.5\n", encoding="utf-8")
    assert cli_main(_fit_stimuli(tmp_path / "one.h5", tmp_path / "one.csv")) == 1
    assert (f"the stimulus-level features '{tmp_path / 'one.h5'}' hold 1 stimulus(es) (['s1']); a cross-validated "
            "fit needs at least 4 (two folds, each holding out at least 2 stimuli for its r)") in _err(capsys)


def test_too_many_inner_folds_name_the_option(tmp_path, stimuli, capsys):
    path = _stimulus_table(tmp_path / "r.csv")
    assert cli_main(_fit_stimuli(stimuli, path, "--cv", "kfold:3", "--inner-cv", "9")) == 1
    assert ("inner CV: kfold with 9 folds needs at least 9 stimuli, got 8; use fewer inner folds (--inner-cv 8) "
            "or more stimuli.") in _err(capsys)


def test_one_inf_cell_is_named_by_line_id_and_column(tmp_path, stimuli, capsys):
    path = _stimulus_table(tmp_path / "inf.csv", bad={5: "inf"})
    assert cli_main(_fit_stimuli(stimuli, path, "--cv", "kfold:3")) == 1
    # before: "NaN or inf in 1 target(s) ['roi'] (rows [0, 1, 2, 3, 4, ...] (12 in all))"
    assert (f"responses '{path}', line 7 (id 's05'): column 'roi' holds 'inf', not a finite number (1 such row(s) "
            "in this column). Fix the value, or drop that stimulus.") in _err(capsys)


def test_one_inf_cell_of_a_time_series_names_file_row_target(tmp_path, story, capsys):
    from neuroenc.align import make_fmri_design
    from neuroenc.features import load_features
    from neuroenc.responses import read_responses

    data = np.random.default_rng(1).standard_normal((50, 3))
    data[17, 1] = np.inf
    np.savetxt(tmp_path / "inf.txt", data)
    assert cli_main(_fit_story(story, tmp_path / "inf.txt", "--tr", "2")) == 1
    err = _err(capsys)
    assert (f"response data (run 'story', file '{tmp_path / 'inf.txt'}') has 1 non-finite values (NaN or inf) in 1 "
            "target(s) ['1'] and 1 row(s) [17], the first at row 17 (0-based), target '1' (column 1): inf. Fix or "
            "interpolate those cells in the responses file, or delete those columns from it.") in err
    assert "response.select" not in err
    with pytest.raises(ValueError, match=r"target '1' \(column 1\): inf\. Drop those targets \(response\.select"):
        make_fmri_design(load_features(story), read_responses(tmp_path / "inf.txt", tr=2, run="story"))


# ----------------------------------------------------------------------------- hints
def test_hints_name_the_command_line_options(tmp_path, story, stimuli, capsys):
    path = _stimulus_table(tmp_path / "r.csv", header="stim,roi")
    assert cli_main(_fit_stimuli(stimuli, path, "--cv", "kfold:3")) == 1
    err = _err(capsys)
    assert "has no column 'id' (columns: ['stim', 'roi']); pass --id-column NAME, the column that holds it." in err
    (tmp_path / "txt.csv").write_text("id,roi,note\n" + "".join(f"s{i:02d},{i % 5},x\n" for i in range(12)),
                                      encoding="utf-8")
    assert cli_main(_fit_stimuli(stimuli, tmp_path / "txt.csv", "--cv", "kfold:3")) == 1
    assert ("column(s) ['note'] are not numbers; name the response columns with --response-columns NAME,..., "
            "e.g. --response-columns roi.") in _err(capsys)
    # warnings too: a grid a quarter past the story (27 % of its rows see no word) says --tr, not tr=
    np.savetxt(tmp_path / "long.txt", np.random.default_rng(0).standard_normal((70, 2)))
    assert cli_main(_fit_story(story, tmp_path / "long.txt", "--tr", "2", "--delays", "1")) == 0
    err = _err(capsys)
    assert "lies outside the transcript" in err and "Check --tr 2 (the 70 rows would span the story" in err
    assert "--trim FIRST,LAST" in err and "tr=" not in err and "trim=" not in err
