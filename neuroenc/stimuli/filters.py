"""Row filters of events tables: a small language parsed here, never evaluated as Python.

A query such as ``"trial_type == 'sentence' and onset > 5"`` selects rows of an events table
(``query`` of :func:`~neuroenc.stimuli.read_events_tsv`, :func:`~neuroenc.stimuli.stimulus_set.read_stimuli_events`
and ``dataset.args.query`` of a run config). Run configs are shared like data, so a query can
only compare columns with values; it cannot call anything (:meth:`pandas.DataFrame.query`
evaluates attribute calls, which reach ``os.system``).

The language::

    query      := or_expr
    or_expr    := and_expr ( ("or" | "|") and_expr )*
    and_expr   := not_expr ( ("and" | "&") not_expr )*
    not_expr   := ("not" | "~") not_expr | "(" query ")" | comparison
    comparison := operand op operand [op operand]        (one side a column, the other a value)
                | column ["not"] "in" "[" value ("," value)* "]"   (or a tuple in parentheses)
    op         := "==" | "!=" | "<" | "<=" | ">" | ">="
    column     := name | `any name in backticks`
    value      := number | 'string' | "string"

A number compares with the column's values read as numbers (a value that is not a number,
such as ``n/a``, is then unequal to it and neither smaller nor larger); a string compares
with the column's text as written. ``1 < onset <= 5`` is ``1 < onset and onset <= 5``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import pandas as pd

#: What a query may contain, for error messages.
ALLOWED = ("a query compares columns with values: column op value with op one of ==, !=, <, <=, "
           ">, >=; column in [value, ...]; column not in [...]; combined with and, or, not and "
           "parentheses; a value is a number or a quoted string; a column is a name, or `a name` "
           "in backticks")

COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_0-9]))
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<backtick>`[^`]+`)
  | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<op>==|!=|<=|>=|<|>)
  | (?P<punct>[()\[\],&|~])
""", re.VERBOSE)
_KEYWORDS = {"and", "or", "not", "in"}
_SYMBOLS = {"&": "and", "|": "or", "~": "not"}


class FilterError(ValueError):
    """A query that is not in the filter language, or names a column the table lacks."""


@dataclass(frozen=True)
class _Token:
    kind: str  # number, string, column, keyword, op, punct, end
    value: Any
    pos: int  # 0-based offset in the query


@dataclass(frozen=True)
class Compare:
    """``column op value``."""

    column: str
    op: str
    value: float | str
    pos: int


@dataclass(frozen=True)
class IsIn:
    """``column in [values]`` (``negate``: ``not in``)."""

    column: str
    values: tuple
    negate: bool
    pos: int


@dataclass(frozen=True)
class BoolOp:
    """``and`` / ``or`` of two or more filters."""

    op: str
    parts: tuple


@dataclass(frozen=True)
class Not:
    """``not`` a filter."""

    part: Any


Node = Union[Compare, IsIn, BoolOp, Not]


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def _tokenize(query: str) -> list[_Token]:
    tokens, pos = [], 0
    while pos < len(query):
        m = _TOKEN.match(query, pos)
        if m is None:
            if query[pos] == "=":
                raise _error(query, pos, "a single '=' (compare with ==)")
            if query[pos] in ".@":
                raise _error(query, pos, f"unexpected {query[pos]!r} (attributes, calls and "
                                         "variables are not part of a query)")
            raise _error(query, pos, f"unexpected {query[pos]!r}")
        kind = m.lastgroup
        text = m.group(kind)
        if kind == "number":
            tokens.append(_Token("number", float(text), pos))
        elif kind == "string":
            tokens.append(_Token("string", _unquote(text), pos))
        elif kind == "backtick":
            tokens.append(_Token("column", text[1:-1], pos))
        elif kind == "name":
            tokens.append(_Token("keyword" if text in _KEYWORDS else "column", text, pos))
        elif kind == "op":
            tokens.append(_Token("op", text, pos))
        elif kind == "punct":
            if text in _SYMBOLS:
                tokens.append(_Token("keyword", _SYMBOLS[text], pos))
            else:
                tokens.append(_Token("punct", text, pos))
        pos = m.end()
    tokens.append(_Token("end", None, len(query)))
    return tokens


def _error(query: str, pos: int, what: str, allowed: bool = True) -> FilterError:
    if pos >= len(query):
        where = "at its end"
    else:
        rest = query[pos:pos + 20] + ("..." if len(query) > pos + 20 else "")
        where = f"at character {pos + 1} ({rest!r})"
    return FilterError(f"query {query!r} {where}: {what}." + (f" Allowed: {ALLOWED}." if allowed else ""))


def _describe(tok: _Token) -> str:
    if tok.kind == "end":
        return "end of the query"
    if tok.kind == "string":
        return f"the string {tok.value!r}"
    if tok.kind == "number":
        return f"the number {tok.value:g}"
    return repr(tok.value)


class _Parser:
    def __init__(self, query: str):
        self.query = query
        self.tokens = _tokenize(query)
        self.i = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, expected: str, tok: _Token | None = None) -> FilterError:
        tok = tok or self.tok
        return _error(self.query, tok.pos, f"expected {expected}, got {_describe(tok)}")

    def is_(self, kind: str, value: Any = None) -> bool:
        return self.tok.kind == kind and (value is None or self.tok.value == value)

    def parse(self) -> Node:
        if self.is_("end"):
            raise _error(self.query, 0, "the query is empty")
        node = self.or_expr()
        if not self.is_("end"):
            raise self.fail("and, or, or the end of the query")
        return node

    def or_expr(self) -> Node:
        parts = [self.and_expr()]
        while self.is_("keyword", "or"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts))

    def and_expr(self) -> Node:
        parts = [self.not_expr()]
        while self.is_("keyword", "and"):
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def not_expr(self) -> Node:
        if self.is_("keyword", "not"):
            self.take()
            return Not(self.not_expr())
        if self.is_("punct", "("):
            self.take()
            node = self.or_expr()
            if not self.is_("punct", ")"):
                raise self.fail("')'")
            self.take()
            return node
        return self.comparison()

    def operand(self) -> _Token:
        if self.tok.kind in ("column", "number", "string"):
            return self.take()
        raise self.fail("a column, a number or a quoted string")

    def comparison(self) -> Node:
        first = self.operand()
        if first.kind == "column" and (self.is_("keyword", "in") or self.is_("keyword", "not")):
            negate = self.take().value == "not"
            if negate:
                if not self.is_("keyword", "in"):
                    raise self.fail("'in' after 'not'")
                self.take()
            return IsIn(first.value, self.values(), negate, first.pos)
        if not self.is_("op"):
            raise self.fail("a comparison (==, !=, <, <=, >, >=) or in")
        parts = []
        left = first
        for _ in range(2):  # a op b [op c]
            op = self.take().value
            right = self.operand()
            parts.append(self.compare(left, op, right))
            left = right
            if not self.is_("op"):
                break
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def compare(self, left: _Token, op: str, right: _Token) -> Compare:
        if left.kind == "column" and right.kind != "column":
            return Compare(left.value, op, right.value, left.pos)
        if right.kind == "column" and left.kind != "column":
            return Compare(right.value, _FLIP[op], left.value, right.pos)
        what = "two columns" if left.kind == "column" else "two values"
        raise _error(self.query, left.pos, f"a comparison of {what}: compare a column with a value")

    def values(self) -> tuple:
        if not (self.is_("punct", "[") or self.is_("punct", "(")):
            raise self.fail("'[' starting a list of values")
        close = "]" if self.take().value == "[" else ")"

        values = []
        while True:
            if self.tok.kind not in ("number", "string"):
                raise self.fail("a number or a quoted string")
            values.append(self.take().value)
            if self.is_("punct", ","):
                self.take()
                if self.is_("punct", close):
                    break
                continue
            if not self.is_("punct", close):
                raise self.fail(f"',' or {close!r}")
            break
        self.take()
        return tuple(values)


@dataclass(frozen=True)
class RowFilter:
    """A parsed query (:func:`parse_filter`); ``rows(df)`` is its boolean mask of ``df``'s rows."""

    query: str
    node: Node

    @property
    def columns(self) -> list[str]:
        """The columns the query reads, in order of appearance."""
        out: list[str] = []

        def walk(node: Node) -> None:
            if isinstance(node, (Compare, IsIn)):
                if node.column not in out:
                    out.append(node.column)
            elif isinstance(node, BoolOp):
                for p in node.parts:
                    walk(p)
            else:
                walk(node.part)

        walk(self.node)
        return out

    def rows(self, df: pd.DataFrame) -> np.ndarray:
        """The boolean mask of the rows of ``df`` that the query selects.

        Raises
        ------
        FilterError
            If the query names a column that ``df`` lacks.
        """
        cache: dict[tuple[str, bool], np.ndarray] = {}

        def column(name: str, pos: int, numeric: bool) -> np.ndarray:
            if name not in df.columns:
                cols = [c for c in df.columns if not str(c).startswith("_")]
                raise _error(self.query, pos, f"there is no column {name!r}; the columns are {cols}",
                             allowed=False)
            if (name, numeric) not in cache:
                values = df[name]
                cache[name, numeric] = (pd.to_numeric(values, errors="coerce").to_numpy(float) if numeric
                                        else values.astype(str).to_numpy(object))
            return cache[name, numeric]

        def equal(name: str, value: Any, pos: int) -> np.ndarray:
            col = column(name, pos, isinstance(value, float))
            return np.asarray(col == value, dtype=bool)

        def walk(node: Node) -> np.ndarray:
            if isinstance(node, Compare):
                if node.op == "==":
                    return equal(node.column, node.value, node.pos)
                if node.op == "!=":
                    return ~equal(node.column, node.value, node.pos)
                col = column(node.column, node.pos, isinstance(node.value, float))
                if isinstance(node.value, float):
                    with np.errstate(invalid="ignore"):
                        return _ORDER[node.op](col, node.value)
                return np.array([_ORDER[node.op](v, node.value) for v in col], dtype=bool)
            if isinstance(node, IsIn):
                mask = np.zeros(len(df), dtype=bool)
                for v in node.values:
                    mask |= equal(node.column, v, node.pos)
                return ~mask if node.negate else mask
            if isinstance(node, BoolOp):
                masks = [walk(p) for p in node.parts]
                return np.logical_and.reduce(masks) if node.op == "and" else np.logical_or.reduce(masks)
            return ~walk(node.part)

        return np.asarray(walk(self.node), dtype=bool).reshape(len(df))


_ORDER = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
          ">=": lambda a, b: a >= b}


def parse_filter(query: str) -> RowFilter:
    """Parse a row filter (see the module docstring for the language).

    Parameters
    ----------
    query : str
        E.g. ``"trial_type == 'sentence' and onset > 5"``, ``"kind in ['word', 'name']"``,
        ```"stim type" != 'fixation'``` (a column name with spaces in backticks).

    Returns
    -------
    filter : RowFilter
        ``filter.rows(df)`` is the boolean mask of the rows it selects.

    Raises
    ------
    FilterError
        If ``query`` is not in the language: the message names the query, the position and
        what a query may contain. Nothing in a query is ever evaluated as Python.
    """
    if not isinstance(query, str):
        raise FilterError(f"query must be a string such as \"trial_type == 'word'\"; got "
                          f"{type(query).__name__} {query!r}. Allowed: {ALLOWED}.")
    return RowFilter(query, _Parser(query).parse())


def filter_rows(df: pd.DataFrame, query: str) -> pd.DataFrame:
    """The rows of ``df`` that ``query`` selects (:func:`parse_filter`)."""
    return df[parse_filter(query).rows(df)]


__all__ = ["FilterError", "RowFilter", "filter_rows", "parse_filter"]
