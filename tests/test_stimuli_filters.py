"""The row-filter language of events tables (issue 18 item 1): parsed by neuroenc, never
evaluated as Python."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuroenc.stimuli.filters import FilterError, filter_rows, parse_filter


@pytest.fixture
def table() -> pd.DataFrame:
    """An events table as the readers hold it: every value a string."""
    return pd.DataFrame({
        "onset": ["0.5", "2", "10", "n/a", "7.25"],
        "duration": ["0.3", "0.2", "", "0.4", "1e-1"],
        "trial_type": ["word", "word", "fixation", "name", "word"],
        "stim type": ["a", "b", "c", "d", "it's"],
        "word": ["The", "cat", "", "Alice", "sat"],
    }, dtype=str)


def _words(table, query):
    return filter_rows(table, query)["word"].tolist()


@pytest.mark.parametrize("query, words", [
    ("trial_type == 'word'", ["The", "cat", "sat"]),
    ('trial_type != "word"', ["", "Alice"]),
    ("onset > 5", ["", "sat"]),  # numbers as numbers: '10' > 5 (as text, '10' < '5')
    ("onset >= 2", ["cat", "", "sat"]),
    ("onset < 2", ["The"]),  # 'n/a' is not a number: neither smaller nor larger
    ("onset <= 2.0", ["The", "cat"]),
    ("onset != 2", ["The", "", "Alice", "sat"]),  # and unequal to every number
    ("onset == 'n/a'", ["Alice"]),  # a string compares with the text as written
    ("duration == 0.1", ["sat"]),  # '1e-1' is the number 0.1
    ("5 < onset", ["", "sat"]),  # the value on the left
    ("1 < onset <= 7.25", ["cat", "sat"]),
    ("-1 < onset and onset < +1", ["The"]),
    ("trial_type in ['word', 'name']", ["The", "cat", "Alice", "sat"]),
    ("trial_type not in ('word',)", ["", "Alice"]),
    ("onset in [2, 10]", ["cat", ""]),
    ("trial_type == 'word' and onset > 1 or trial_type == 'name'", ["cat", "Alice", "sat"]),
    ("trial_type == 'word' and (onset > 1 or trial_type == 'name')", ["cat", "sat"]),
    ("not trial_type == 'word' and not onset > 5", ["Alice"]),
    ("not (trial_type == 'word' or onset > 5)", ["Alice"]),
    ("(trial_type == 'word') & ~(onset > 5) | (word == 'Alice')", ["The", "cat", "Alice"]),
    ("`stim type` == 'it\\'s'", ["sat"]),
    ("`stim type` in ['a', \"b\"]", ["The", "cat"]),
    ("word == ''", [""]),
    ("word > 'b'", ["cat", "sat"]),  # strings in text order
])
def test_queries_select_rows(table, query, words):
    assert _words(table, query) == words


def test_same_rows_as_pandas_query_on_valid_queries(table):
    """Queries that pandas.query accepted (onset and duration coerced to numbers, as the events
    readers did) select the same rows."""
    numeric = table.copy()
    for col in ("onset", "duration"):
        numeric[col] = pd.to_numeric(numeric[col], errors="coerce")
    for query in ["trial_type == 'word'", "onset > 5", "onset <= 2 and trial_type != 'name'",
                  "trial_type in ['word', 'name'] or duration > 0.25", "not (onset < 1)",
                  "1 < onset < 8", "trial_type not in ['fixation']", "`stim type` == 'b'"]:
        expected = numeric.query(query).index.tolist()
        assert filter_rows(table, query).index.tolist() == expected, query


def test_parsed_filter_knows_its_columns(table):
    f = parse_filter("trial_type == 'word' and (onset > 1 or `stim type` in ['a']) and onset < 9")
    assert f.columns == ["trial_type", "onset", "stim type"]
    np.testing.assert_array_equal(f.rows(table), [True, True, False, False, True])
    assert f.rows(table.iloc[:0]).shape == (0,)


@pytest.mark.parametrize("query, match", [
    ("onset.__class__.__init__.__globals__.get('sys').modules.get('os').system('id') == 0",
     r"query \"onset.__class__.*\" at character 6 \('.__class__.__init__....'\): unexpected '.' \(attributes, "
     r"calls and variables are not part of a query\)\. Allowed: a query compares columns with values: "
     r"column op value with op one of ==, !=, <, <=, >, >="),
    ("__import__('os') == 0", r"at character 11 \(\"\('os'\) == 0\"\): expected a comparison \(==, !=, <, "
                              r"<=, >, >=\) or in, got '\('"),
    ("trial_type == @word", r"at character 15 \('@word'\): unexpected '@' \(attributes, calls and variables"),
    ("trial_type = 'word'", r"at character 12 \(\"= 'word'\"\): a single '=' \(compare with ==\)"),
    ("onset > ", r"query 'onset > ' at its end: expected a column, a number or a quoted string, got end "
                 r"of the query"),
    ("(onset > 1", r"at its end: expected '\)', got end of the query"),
    ("onset > 1 onset", r"at character 11 \('onset'\): expected and, or, or the end of the query, got 'onset'"),
    ("onset < duration", r"at character 1 .*: a comparison of two columns: compare a column with a value"),
    ("1 < 2", r"a comparison of two values: compare a column with a value"),
    ("trial_type in 'word'", r"expected '\[' starting a list of values, got the string 'word'"),
    ("trial_type in [word]", r"at character 16 \('word\]'\): expected a number or a quoted string, got 'word'"),
    ("trial_type not == 'x'", r"expected 'in' after 'not', got '=='"),
    ("onset > 1 and", r"at its end: expected a column, a number or a quoted string"),
    ("trial_type == 'word", r"at character 15 \(\"'word\"\): unexpected \"'\""),
    ("", r"query '' at its end: the query is empty"),
    ("onset > 1 if True else 0", r"expected and, or, or the end of the query, got 'if'"),
    ("onset ** 2 > 1", r"at character 7 \('\*\* 2 > 1'\): unexpected '\*'"),
])
def test_bad_queries_name_the_position_and_the_language(table, query, match):
    with pytest.raises(FilterError, match=match):
        filter_rows(table, query)


def test_unknown_column_and_non_string_query(table):
    with pytest.raises(FilterError, match=r"query 'kind == 1' at character 1 \('kind == 1'\): there is no "
                                          r"column 'kind'; the columns are \['onset', 'duration', "
                                          r"'trial_type', 'stim type', 'word'\]\.$"):
        filter_rows(table, "kind == 1")
    with pytest.raises(FilterError, match=r"query must be a string such as \"trial_type == 'word'\"; got "
                                          r"dict \{'onset': 1\}"):
        parse_filter({"onset": 1})
