"""Transcript readers: TextGrid (long/short), events.tsv, Gentle JSON, plain text."""
import json
import logging

import numpy as np
import pytest

from neuroenc.stimuli import TranscriptError, read_events_tsv, read_gentle, read_text, read_textgrid, read_transcript
from neuroenc.stimuli.textgrid import read_textgrid_tiers
from neuroenc.stimuli.transcript import Transcript, split_code

LONG = '''File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = 3
tiers? <exists>
size = 2
item []:
    item [1]:
        class = "IntervalTier"
        name = "word"
        xmin = 0
        xmax = 3
        intervals: size = 5
        intervals [1]:
            xmin = 0
            xmax = 0.5
            text = "sp"
        intervals [2]:
            xmin = 0.5
            xmax = 1.0
            text = "Hello,"
        intervals [3]:
            xmin = 1.0
            xmax = 1.5
            text = ""
        intervals [4]:
            xmin = 1.5
            xmax = 2.25
            text = "world."
        intervals [5]:
            xmin = 2.25
            xmax = 3
            text = "sil"
    item [2]:
        class = "IntervalTier"
        name = "phone"
        xmin = 0
        xmax = 3
        intervals: size = 1
        intervals [1]:
            xmin = 0
            xmax = 3
            text = "HH"
'''

SHORT = '''File type = "ooTextFile"
Object class = "TextGrid"

0
3
<exists>
1
"IntervalTier"
"words"
0
3
3
0
0.5
""
0.5
1.0
"Hello,"
1.0
3
"world."
'''


@pytest.fixture
def long_tg(tmp_path):
    path = tmp_path / "story.TextGrid"
    path.write_text(LONG, encoding="utf-8")
    return path


def test_textgrid_long_format(long_tg):
    t = read_textgrid(long_tg, tier="word")
    assert t.words == ("Hello,", "world.")  # punctuation kept, silences dropped
    np.testing.assert_allclose(t.onsets, [0.5, 1.5])
    np.testing.assert_allclose(t.offsets, [1.0, 2.25])
    np.testing.assert_array_equal(t.rows, [2, 4])  # Praat's 1-based interval numbers
    assert t.name == "story"
    assert read_textgrid_tiers(long_tg).keys() == {"word", "phone"}


def test_textgrid_short_format_and_default_tier(tmp_path):
    path = tmp_path / "s.TextGrid"
    path.write_text(SHORT, encoding="utf-8")
    t = read_textgrid(path)  # single tier chosen automatically
    assert t.words == ("Hello,", "world.")
    np.testing.assert_allclose(t.offsets, [1.0, 3.0])


def test_textgrid_utf16(tmp_path):
    path = tmp_path / "u.TextGrid"
    path.write_bytes(LONG.replace("Hello,", "Héllo,").encode("utf-16"))
    assert read_textgrid(path, tier="word").words[0] == "Héllo,"


def test_textgrid_missing_tier(long_tg):
    with pytest.raises(TranscriptError,
                       match=r"story.TextGrid' has no tier 'words'; its tiers are \['word', 'phone'\]"):
        read_textgrid(long_tg, tier="words")


def test_textgrid_ambiguous_tier(tmp_path):
    path = tmp_path / "amb.TextGrid"
    path.write_text(LONG.replace('name = "word"', 'name = "lexical"'), encoding="utf-8")
    with pytest.raises(TranscriptError, match="say which holds the words"):
        read_textgrid(path)


def test_textgrid_unsorted(tmp_path):
    path = tmp_path / "bad.TextGrid"
    bad = LONG.replace("xmin = 1.5\n            xmax = 2.25", "xmin = 0.2\n            xmax = 2.25")
    path.write_text(bad, encoding="utf-8")
    with pytest.raises(TranscriptError, match=r"bad.TextGrid.*onsets are not sorted: row 4 \('world.'"):
        read_textgrid(path, tier="word")


def test_textgrid_inverted_interval_fix(tmp_path, caplog):
    path = tmp_path / "inv.TextGrid"
    path.write_text(LONG.replace("xmax = 2.25", "xmax = 1.25"), encoding="utf-8")
    with pytest.raises(TranscriptError, match="precedes the onset at row 4"):
        read_textgrid(path, tier="word")
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        t = read_textgrid(path, tier="word", fix_inverted=True)
    assert t.offsets[1] == t.onsets[1] == 1.5
    assert "end before they start" in caplog.text


def test_textgrid_empty_and_malformed(tmp_path):
    empty = tmp_path / "empty.TextGrid"
    empty.write_text(LONG.replace('"Hello,"', '"sp"').replace('"world."', '""'), encoding="utf-8")
    with pytest.raises(TranscriptError, match=r"empty.TextGrid', tier 'word': no words"):
        read_textgrid(empty, tier="word")
    broken = tmp_path / "broken.TextGrid"
    broken.write_text(LONG[:400], encoding="utf-8")
    with pytest.raises(TranscriptError, match="Could not parse TextGrid .*broken.TextGrid"):
        read_textgrid(broken)
    other = tmp_path / "notes.TextGrid"
    other.write_text("just some notes", encoding="utf-8")
    with pytest.raises(TranscriptError, match="is not a Praat TextGrid"):
        read_textgrid(other)
    with pytest.raises(FileNotFoundError, match="TextGrid file not found"):
        read_textgrid(tmp_path / "nope.TextGrid")


def test_events_tsv_word_column(tmp_path):
    path = tmp_path / "sub-01_task-x_events.tsv"
    path.write_text("onset\tduration\tword\n1.0\t0.3\tThe\n1.5\t0.2\tn/a\n2.0\tn/a\tcat.\n")
    t = read_events_tsv(path)
    assert t.words == ("The", "cat.")
    np.testing.assert_allclose(t.offsets, [1.3, 2.0])
    np.testing.assert_array_equal(t.rows, [2, 4])  # file line numbers
    assert t.name == "sub-01_task-x"


def test_events_tsv_trial_type_and_query(tmp_path):
    path = tmp_path / "ev.tsv"
    path.write_text("onset\tduration\ttrial_type\tkind\n0.5\t0.1\tbeep\tsound\n1.0\t0.3\tdog\tword\n")
    assert read_events_tsv(path, query="kind == 'word'").words == ("dog",)
    assert read_events_tsv(path).words == ("beep", "dog")


def test_events_tsv_errors(tmp_path):
    unsorted = tmp_path / "u_events.tsv"
    unsorted.write_text("onset\tduration\tword\n2.0\t0.3\ta\n1.0\t0.3\tb\n")
    with pytest.raises(TranscriptError, match=r"u_events.tsv'.*not sorted: row 3 \('b'"):
        read_events_tsv(unsorted)
    nocol = tmp_path / "n.tsv"
    nocol.write_text("onset\tduration\tvalue\n1.0\t0.3\ta\n")
    with pytest.raises(TranscriptError, match="has no column 'trial_type'.*pass word_column="):
        read_events_tsv(nocol)
    noonset = tmp_path / "o.tsv"
    noonset.write_text("time\tword\n1.0\ta\n")
    with pytest.raises(TranscriptError, match="has no 'onset' column"):
        read_events_tsv(noonset)
    badnum = tmp_path / "b.tsv"
    badnum.write_text("onset\tduration\tword\n1.0\t0.3\ta\nsoon\t0.3\tb\n")
    with pytest.raises(TranscriptError, match=r"line 3: onset 'soon' is not a number"):
        read_events_tsv(badnum)
    empty = tmp_path / "e.tsv"
    empty.write_text("onset\tduration\tword\n")
    with pytest.raises(TranscriptError, match="is empty"):
        read_events_tsv(empty)


GENTLE = {
    "transcript": "Alice was beginning, to get",
    "words": [
        {"alignedWord": "alice", "case": "success", "start": 1.0, "end": 1.4, "startOffset": 0,
         "endOffset": 5, "word": "Alice"},
        {"alignedWord": "was", "case": "success", "start": 1.4, "end": 1.6, "startOffset": 6,
         "endOffset": 9, "word": "was"},
        {"alignedWord": "beginning", "case": "success", "start": 1.6, "end": 2.1,
         "startOffset": 10, "endOffset": 19, "word": "beginning"},
        {"case": "not-found-in-audio", "startOffset": 21, "endOffset": 23, "word": "to"},
        {"alignedWord": "get", "case": "success", "start": 2.5, "end": 2.7, "startOffset": 24,
         "endOffset": 27, "word": "get"},
    ],
}


def test_gentle(tmp_path, caplog):
    folder = tmp_path / "pieman"
    folder.mkdir()
    path = folder / "align.json"
    path.write_text(json.dumps(GENTLE))
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        t = read_gentle(path)
    assert t.words == ("Alice", "was", "beginning,", "get")  # punctuation from the transcript
    np.testing.assert_array_equal(t.rows, [0, 1, 2, 4])
    assert t.name == "pieman"
    assert "skipped 1 word(s)" in caplog.text and "'to'" in caplog.text
    assert read_gentle(path, use_transcript_text=False).words[2] == "beginning"


def test_gentle_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"words": [ {"word": "a", ')
    with pytest.raises(TranscriptError, match=r"bad.json' as JSON: .* line 1"):
        read_gentle(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"segments": []}')
    with pytest.raises(TranscriptError, match="needs a top-level 'words' list"):
        read_gentle(wrong)
    none = tmp_path / "none.json"
    none.write_text(json.dumps({"words": [{"word": "a", "case": "not-found-in-audio"}]}))
    with pytest.raises(TranscriptError, match="is empty"):
        read_gentle(none)


def test_text_constant_rate(tmp_path):
    t = read_text("Alice was  beginning\nto get.", words_per_second=2.0, start=1.0)
    assert t.words == ("Alice", "was", "beginning", "to", "get.")
    np.testing.assert_allclose(t.onsets, [1.0, 1.5, 2.0, 2.5, 3.0])
    np.testing.assert_allclose(t.offsets - t.onsets, 0.5)
    path = tmp_path / "story.txt"
    path.write_text("one two")
    t = read_transcript(path, words_per_second=1.0)
    assert t.name == "story" and t.onsets.tolist() == [0.0, 1.0]
    with pytest.raises(TranscriptError, match="has no words"):
        read_text("   ")
    with pytest.raises(ValueError, match="'words_per_second' must be > 0"):
        read_text("a b", words_per_second=0)


def test_read_transcript_dispatch(long_tg, tmp_path):
    assert read_transcript(long_tg, tier="word").words == ("Hello,", "world.")
    with pytest.raises(TranscriptError, match=r"extension '.csv'"):
        read_transcript(tmp_path / "x.csv")


CHRONO = '''"Praat chronological TextGrid text file"
0 2.5   ! Time domain.
2   ! Number of tiers.
"IntervalTier" "phone" 0 2.5
"IntervalTier" "word" 0 2.5
1 0 0.5
"HH"
2 0 0.5
"{LG}"
2 0.5 1.25
"Hello,"
2 1.25 2.5
"world"
'''


def test_textgrid_chronological_format(tmp_path):
    path = tmp_path / "c.TextGrid"
    path.write_text(CHRONO, encoding="utf-8")
    assert list(read_textgrid_tiers(path)) == ["phone", "word"]
    t = read_textgrid(path, silence=("lg", "sp"))  # tier named "word"; {LG} dropped as "lg"
    assert t.words == ("Hello,", "world")
    np.testing.assert_allclose(t.onsets, [0.5, 1.25])
    assert read_textgrid(path, tier="phone").words == ("HH",)


# ---------------------------------------------------------------------- coded labels
@pytest.mark.parametrize("label, expected", [
    ("IF / 1.1", ("IF", "1.1")),
    (" ENGLAND / 1.10.word", ("ENGLAND", "1.10.word")),
    ('CLEAR / 10.459.3"', ("CLEAR", "10.459.3")),  # a stray quote in Natural Stories story 10
    ("DON'T/2.7", ("DON'T", "2.7")),
    ("and/or", ("and/or", None)),  # a code starts with a digit
    ("1/2", ("1/2", None)),  # a word starts with a letter
    ("Hello,", ("Hello,", None)),
])
def test_split_code_known_answers(label, expected):
    assert split_code(label) == expected


def test_transcript_codes_and_strip_codes():
    t = Transcript(["IF / 1.1", "and/or", "YOU / 1.2"], [0.1, 0.3, 0.6], name="s", rows=[2, 3, 5])
    assert t.codes() == ["1.1", None, "1.2"]
    plain = t.strip_codes()
    assert plain.words == ("IF", "and/or", "YOU") and plain.codes() == [None, None, None]
    np.testing.assert_array_equal(plain.onsets, t.onsets)
    np.testing.assert_array_equal(plain.rows, [2, 3, 5])
    assert plain.name == "s"


def test_textgrid_coded_labels_warn_and_strip_on_natural_stories(data_dir, caplog):
    """The aligned TextGrids of Natural Stories label each word "IF / 1.1": read as they are,
    the codes would be tokenised with the words, so the reader warns, naming the first ones;
    strip_codes=True gives the plain words at the same times."""
    path = data_dir / "naturalstories" / "audio" / "1_aligned.TextGrid"
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        coded = read_textgrid(path, tier="words", silence=("", "<s>", "</s>", "<s"))
    assert coded.words[:2] == ("IF / 1.1", "YOU / 1.2")
    assert (f"tier 'words': {len(coded)} of {len(coded)} word(s) look like coded annotations (a word, then '/' "
            "and a code), e.g. 'IF / 1.1' (interval 2), 'YOU / 1.2' (interval 3), 'WERE / 1.3' (interval 4), ...")\
        in caplog.text
    assert "Pass strip_codes=True" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        plain = read_textgrid(path, tier="words", silence=("", "<s>", "</s>", "<s"), strip_codes=True)
        kept = read_transcript(path, tier="words", silence=("", "<s>", "</s>", "<s"), strip_codes=False)
    assert "coded annotations" not in caplog.text
    assert plain.words[:6] == ("IF", "YOU", "WERE", "TO", "JOURNEY", "TO")
    assert not any("/" in w or any(c.isdigit() for c in w) for w in plain.words)
    np.testing.assert_array_equal(plain.onsets, coded.onsets)
    np.testing.assert_array_equal(plain.rows, coded.rows)
    assert kept.words == coded.words


def test_textgrid_plain_words_do_not_warn(long_tg, caplog):
    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        t = read_textgrid(long_tg, tier="word")
        assert read_textgrid(long_tg, tier="word", strip_codes=True).words == t.words
    assert "coded annotations" not in caplog.text


def test_textgrid_strip_codes_bad_value(long_tg):
    with pytest.raises(ValueError, match=r"strip_codes must be True, False or None; got 'yes' \(str\)"):
        read_textgrid(long_tg, tier="word", strip_codes="yes")


def test_load_naturalstories_reads_the_codes_without_a_warning(data_dir, caplog):
    """The Natural Stories loader uses the codes (to look up each word's text) through the same
    reader code, so it asks for them (strip_codes=False) and raises no warning about them."""
    from neuroenc.datasets import load_naturalstories

    with caplog.at_level(logging.WARNING, logger="neuroenc"):
        ds = load_naturalstories(data_dir, stories=[1], download=False)
    assert "coded annotations" not in caplog.text
    story = ds.transcripts["story-1"]
    assert story.words[:5] == ("If", "you", "were", "to", "journey") and story.codes()[:5] == [None] * 5
    assert ds.info["codes"]["story-1"][:3] == ["1.1", "1.2", "1.3"]
    assert ds.info["codes"]["story-1"][9] == "1.10"  # "ENGLAND / 1.10.word": the token code N.K
