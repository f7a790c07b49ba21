"""Reader edge cases found in review: real words that look like missing values, blank lines,
bad durations, hyphenated Gentle words, chronological TextGrid errors and duplicate tiers."""
import json
import logging

import numpy as np
import pytest

from neuroenc.stimuli import TranscriptError, read_events_tsv, read_gentle, read_textgrid
from neuroenc.stimuli.textgrid import read_chronological, read_textgrid_tiers


# ----------------------------------------------------------------------------- events.tsv
def test_events_keep_words_that_look_like_missing_values(tmp_path):
    path = tmp_path / "w_events.tsv"
    path.write_text(
        "onset\tduration\tword\n"
        "1.0\t0.2\tnone\n"
        "1.5\t0.2\tNaN\n"
        "2.0\t0.2\tn/a\n"      # BIDS missing value: dropped
        "2.5\t0.2\tNone\n"
        "3.0\t0.2\t\n"         # empty: dropped
        "3.5\t0.2\tnan\n"
        "4.0\t0.2\tN/A\n"      # not BIDS's exact mark: a word
        "4.5\t0.2\tNULL\n"
    )
    t = read_events_tsv(path)
    assert t.words == ("none", "NaN", "None", "nan", "N/A", "NULL")
    np.testing.assert_array_equal(t.rows, [2, 3, 5, 7, 8, 9])
    np.testing.assert_allclose(t.onsets, [1.0, 1.5, 2.5, 3.5, 4.0, 4.5])


def test_events_line_numbers_count_blank_lines(tmp_path):
    path = tmp_path / "b_events.tsv"
    path.write_text(
        "\n"                       # 1: blank line before the header
        "onset\tduration\tword\n"  # 2: header
        "1.0\t0.3\tThe\n"          # 3
        "\n"                       # 4
        "\t\t\n"                   # 5: only tabs
        "2.0\t0.3\tcat\n"          # 6
        "   \n"                    # 7: only spaces
        "\n"                       # 8
        "3.0\tn/a\tsat\n"          # 9
    )
    t = read_events_tsv(path)
    assert t.words == ("The", "cat", "sat")
    np.testing.assert_array_equal(t.rows, [3, 6, 9])
    np.testing.assert_allclose(t.offsets, [1.3, 2.3, 3.0])
    # an error after blank lines names the real line of the file
    bad = tmp_path / "bad_events.tsv"
    bad.write_text("onset\tduration\tword\n1.0\t0.3\ta\n\n\n2.0\t0.3\tb\nlater\t0.3\tc\n")
    with pytest.raises(TranscriptError, match=r"bad_events\.tsv', line 6: onset 'later' is not a number"):
        read_events_tsv(bad)
    # and the Transcript's own checks use the same rows
    unsorted = tmp_path / "u_events.tsv"
    unsorted.write_text("onset\tduration\tword\n\n2.0\t0.3\ta\n\n1.0\t0.3\tb\n")
    with pytest.raises(TranscriptError, match=r"not sorted: row 5 \('b'"):
        read_events_tsv(unsorted)


@pytest.mark.parametrize("value", ["short", "nan", "inf", "0.3s"])
def test_events_non_numeric_duration_is_an_error(tmp_path, value):
    path = tmp_path / "d_events.tsv"
    path.write_text(f"onset\tduration\tword\n1.0\t0.3\ta\n\n2.0\t{value}\tb\n")
    with pytest.raises(TranscriptError, match=rf"d_events\.tsv', line 4: duration '{value}' is not a number"):
        read_events_tsv(path)


def test_events_missing_onset_and_short_rows(tmp_path):
    path = tmp_path / "m_events.tsv"
    path.write_text("onset\tduration\tword\n1.0\t0.3\ta\nn/a\t0.3\tb\n")
    with pytest.raises(TranscriptError, match=r"line 3: onset 'n/a' is not a number"):
        read_events_tsv(path)
    short = tmp_path / "s_events.tsv"
    short.write_text("onset\tduration\tword\n1.0\t0.3\ta\n2.0\t0.3\n")  # row without a word
    t = read_events_tsv(short)
    assert t.words == ("a",) and t.rows.tolist() == [2]


def test_events_not_utf8(tmp_path):
    path = tmp_path / "l_events.tsv"
    path.write_bytes("onset\tduration\tword\n1.0\t0.3\tcaf\xe9\n".encode("latin-1"))
    with pytest.raises(TranscriptError, match=r"l_events\.tsv': it is not UTF-8 text .*Save it as UTF-8"):
        read_events_tsv(path)


# ----------------------------------------------------------------------------- Gentle
def _gentle(tmp_path, transcript, entries, name="align.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"transcript": transcript, "words": entries}))
    return path


def _entry(text, transcript, start_at, t, case="success"):
    """A Gentle entry for ``text`` found at or after ``start_at`` in ``transcript``."""
    i = transcript.index(text, start_at)
    entry = {"word": text, "case": case, "startOffset": i, "endOffset": i + len(text)}
    if case == "success":
        entry.update(start=t, end=t + 0.2)
    return entry, i + len(text)


def _entries(transcript, tokens, cases=None):
    out, pos = [], 0
    for k, tok in enumerate(tokens):
        entry, pos = _entry(tok, transcript, pos, 0.3 * k, (cases or {}).get(k, "success"))
        out.append(entry)
    return out


def test_gentle_hyphenated_word_is_not_duplicated(tmp_path):
    text = "a well-known man."
    path = _gentle(tmp_path, text, _entries(text, ["a", "well", "known", "man"]))
    t = read_gentle(path)
    assert t.words == ("a", "well-", "known", "man.")
    # every character of the transcript (but spaces) goes to exactly one word
    assert "".join(t.words) == text.replace(" ", "")


def test_gentle_punctuation_is_shared_out_once(tmp_path):
    text = '"Hi," she said -- "the twenty-first... (really)?"'
    tokens = ["Hi", "she", "said", "the", "twenty", "first", "really"]
    path = _gentle(tmp_path, text, _entries(text, tokens))
    t = read_gentle(path)
    assert t.words == ('"Hi,"', "she", "said", '"the', "twenty-", "first...", "(really)?\"")
    assert "".join(t.words) == text.replace(" ", "").replace("--", "")  # "--" stands alone
    # an unaligned word keeps its span: its neighbours do not take its punctuation
    text = "yes, (maybe) no"
    path = _gentle(tmp_path, text, _entries(text, ["yes", "maybe", "no"], cases={1: "not-found-in-audio"}),
                   name="b.json")
    assert read_gentle(path).words == ("yes,", "no")
    # the aligner's words are untouched when asked
    assert read_gentle(path, use_transcript_text=False).words == ("yes", "no")


def test_gentle_offsets_outside_the_transcript(tmp_path):
    entries = [{"word": "far", "case": "success", "start": 0.0, "end": 0.2, "startOffset": 40,
                "endOffset": 43}]
    path = _gentle(tmp_path, "too short", entries)
    with pytest.raises(TranscriptError, match=r"words\[0\] \('far'\) has startOffset 40 and endOffset 43, "
                                              r"outside the 9-character transcript.*use_transcript_text=False"):
        read_gentle(path)
    assert read_gentle(path, use_transcript_text=False).words == ("far",)


# ----------------------------------------------------------------------------- TextGrid
CHRONO = '''"Praat chronological TextGrid text file"
0 2.5   ! Time domain.
2   ! Number of tiers.
"IntervalTier" "phone" 0 2.5
"IntervalTier" "word" 0 2.5
1 0 0.5
"HH"
2 0.5 1.25
"Hello,"
'''


def _long_textgrid(tiers: list[tuple[str, list[tuple[float, float, str]]]], xmax: float) -> str:
    """A Praat long-format TextGrid of interval tiers ``(name, [(xmin, xmax, text), ...])``."""
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {xmax}",
             "tiers? <exists>", f"size = {len(tiers)}", "item []:"]
    for i, (name, intervals) in enumerate(tiers, 1):
        lines += [f"    item [{i}]:", '        class = "IntervalTier"', f'        name = "{name}"',
                  "        xmin = 0", f"        xmax = {xmax}", f"        intervals: size = {len(intervals)}"]
        for j, (a, b, text) in enumerate(intervals, 1):
            lines += [f"        intervals [{j}]:", f"            xmin = {a}", f"            xmax = {b}",
                      f'            text = "{text}"']
    return "\n".join(lines) + "\n"


# two tiers of the same name
LONG_DUP = _long_textgrid([("word", [(0, 2, "first")]), ("word", [(0, 2, "second")])], xmax=2)


def test_read_chronological_refuses_other_formats(tmp_path):
    path = tmp_path / "long.TextGrid"
    path.write_text(LONG_DUP, encoding="utf-8")
    with pytest.raises(TranscriptError, match=r"long\.TextGrid' is not a chronological TextGrid: it does "
                                              r"not start with 'Praat chronological TextGrid text file'"):
        read_chronological(path)
    with pytest.raises(FileNotFoundError, match="TextGrid file not found"):
        read_chronological(tmp_path / "none.TextGrid")


@pytest.mark.parametrize("name, tail, reader, message", [
    ("t", '3 1.25 2.5\n"extra"\n', "chronological",
     r"t\.TextGrid' near token \d+: tier number 3 is not between 1 and 2"),
    ("z", '0 1.25 2.5\n"extra"\n', "chronological", "tier number 0 is not between 1 and 2"),
    ("c", "2 1.25\n", "tiers", r"Could not parse chronological TextGrid .*c\.TextGrid"),
    ("u", '2 1.25 2.5\n"world\n', "tiers", r"u\.TextGrid', line 11: a string opened here is never closed"),
])
def test_read_chronological_malformed(tmp_path, name, tail, reader, message):
    path = tmp_path / f"{name}.TextGrid"
    path.write_text(CHRONO + tail, encoding="utf-8")
    read = read_chronological if reader == "chronological" else read_textgrid_tiers
    with pytest.raises(TranscriptError, match=message):
        read(path)


def test_duplicate_tier_names_warn_in_every_format(tmp_path, caplog):
    chrono = tmp_path / "dup_c.TextGrid"
    chrono.write_text(CHRONO.replace('"IntervalTier" "phone"', '"IntervalTier" "word"'), encoding="utf-8")
    long_ = tmp_path / "dup_l.TextGrid"
    long_.write_text(LONG_DUP, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        a = read_textgrid_tiers(chrono)
    assert a == {"word": [(0.0, 0.5, "HH")]}  # the first tier named "word"
    assert "dup_c.TextGrid has two tiers named 'word'; keeping the first" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        b = read_textgrid_tiers(long_)
    assert b == {"word": [(0.0, 2.0, "first")]}
    assert "dup_l.TextGrid has two tiers named 'word'; keeping the first" in caplog.text


def test_textgrid_tier_index(tmp_path):
    path = tmp_path / "i.TextGrid"
    path.write_text(CHRONO.replace('"word"', '"lexical"') + '2 1.25 2.5\n"world"\n', encoding="utf-8")
    assert read_textgrid(path, tier_index=1).words == ("Hello,", "world")
    assert read_textgrid(path, tier_index=-2).words == ("HH",)
    assert read_textgrid(path, tier="phone", tier_index=1).words == ("HH",)  # tier= wins
    with pytest.raises(TranscriptError, match=r"has tiers \['phone', 'lexical'\]; say which holds the words"):
        read_textgrid(path, tier_index=2)
    with pytest.raises(TranscriptError, match="say which holds the words"):
        read_textgrid(path, tier_index=-3)
    # a tier named "word" beats tier_index
    named = tmp_path / "n.TextGrid"
    named.write_text(CHRONO, encoding="utf-8")
    assert read_textgrid(named, tier_index=0).words == ("Hello,",)
