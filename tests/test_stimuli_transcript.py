"""Transcript container: validation, slicing, conversion."""
import numpy as np
import pandas as pd
import pytest

from neuroenc.stimuli import Transcript, TranscriptError
from neuroenc.stimuli.transcript import Word


def _t(**kw):
    args = dict(words=["Alice", "was", "beginning"], onsets=[1.0, 1.5, 2.0],
                offsets=[1.4, 1.9, 2.6], name="alice")
    args.update(kw)
    return Transcript(**args)


def test_basic_properties():
    t = _t()
    assert len(t) == 3
    assert t.words == ("Alice", "was", "beginning")
    assert t[1] == Word("was", 1.5, 1.9)
    np.testing.assert_allclose(t.midpoints, [1.2, 1.7, 2.3])
    np.testing.assert_allclose(t.durations, [0.4, 0.4, 0.6])
    assert t.start == 1.0 and t.end == 2.6 and t.duration == pytest.approx(1.6)
    assert t.text == "Alice was beginning"
    assert [w.word for w in t] == ["Alice", "was", "beginning"]
    np.testing.assert_array_equal(t.times("midpoint"), t.midpoints)
    with pytest.raises(ValueError, match="Invalid value for 'reference'"):
        t.times("middle")


def test_slicing_keeps_rows_and_name():
    t = _t(rows=[2, 3, 5])
    s = t[1:]
    assert isinstance(s, Transcript)
    assert s.words == ("was", "beginning") and s.name == "alice"
    np.testing.assert_array_equal(s.rows, [3, 5])
    m = t[np.array([True, False, True])]
    assert m.words == ("Alice", "beginning")


def test_dataframe_round_trip():
    t = _t()
    df = t.to_dataframe()
    assert list(df.columns) == ["word", "onset", "offset", "duration", "run", "row"]
    assert df["onset"].tolist() == [1.0, 1.5, 2.0]
    back = Transcript.from_dataframe(df)
    assert back == t


def test_default_offsets_are_next_onsets():
    t = Transcript(["a", "b", "c"], [0.0, 1.0, 3.0])
    np.testing.assert_array_equal(t.offsets, [1.0, 3.0, 3.0])


def test_sha256_depends_on_content_not_name():
    t = _t()
    assert t.sha256() == t.rename("other").sha256()
    assert t.sha256() != t.shift(0.5).sha256()
    assert t.shift(0.5).onsets[0] == 1.5


def test_arrays_are_read_only():
    t = _t()
    with pytest.raises(ValueError):
        t.onsets[0] = 5.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(words=[], onsets=[], offsets=[]), "is empty"),
        (dict(onsets=[1.0, 0.5, 2.0]), r"onsets are not sorted: row 1 \('was', onset 0.500 s\)"),
        (dict(onsets=[-1.0, 1.5, 2.0]), r"negative onset at row 0 \('Alice'"),
        (dict(offsets=[1.4, 1.2, 2.6]), r"offset 1.200 s precedes the onset at row 1"),
        (dict(onsets=[1.0, np.nan, 2.0]), "non-finite onset"),
        (dict(onsets=[1.0, 2.0]), "3 words but 2 onsets"),
        (dict(words=["a", " ", "c"]), "empty word"),
    ],
)
def test_validation_messages(kwargs, match):
    with pytest.raises(TranscriptError, match=match):
        _t(source="story.TextGrid", **kwargs)


def test_message_names_source_and_original_row():
    with pytest.raises(TranscriptError, match=r"from 'f.tsv'.*row 12"):
        Transcript(["a", "b"], [2.0, 1.0], name="r", source="f.tsv", rows=[11, 12])


def test_from_dataframe_missing_column():
    with pytest.raises(TranscriptError, match=r"lacks column\(s\) \['onset'\]"):
        Transcript.from_dataframe(pd.DataFrame({"word": ["a"]}), source="x.csv")
