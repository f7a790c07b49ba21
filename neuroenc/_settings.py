"""One source for settings: the public API's signatures, declared constraints and numpydoc.

A public function or estimator whose options reach a run config or the command line declares
the constraints of its parameters once, as scikit-learn's estimators do: a
``_parameter_constraints`` dict, parameter name -> list of constraints, any one of which a
valid value satisfies (:func:`declare` attaches it to a function). Its signature gives each
default, and its numpydoc ``Parameters`` section the help text. This module reads the three
(:func:`settings_of`) and builds from them:

- the config sections that map onto a library call (:class:`Section`): unknown keys and
  values of the wrong type are errors naming the field, the value and the expected type;
  values the user did not give are not passed, so the library's defaults apply;
- the command-line options of the subcommands (:func:`add_options`, :func:`given`): each
  with its help and default from the library, parsed from text by its constraints, and
  absent from the parsed arguments when not given (``argparse.SUPPRESS``).

Constraints are scikit-learn's (:class:`~sklearn.utils._param_validation.Interval`, ``None``,
``"boolean"``, a type, :class:`~sklearn.utils._param_validation.Hidden`) plus three defined
here: :class:`Choices` (scikit-learn's ``StrOptions``, keeping the order in which the choices
are written), :class:`ListOf` (a list whose items satisfy constraints), :class:`Pattern` (a
string of a given form, ``kfold:K``) and :class:`Logspace` (a log-spaced grid, written
``{logspace: [start, stop, num]}`` in a config and ``logspace:start,stop,num`` on the command
line).

Alternative calls behind one command (``neuroenc extract`` runs FeatureExtractor on a
transcript, StimulusExtractor on a stimulus set) give one option per name
(:func:`union_settings`): a name they take differently accepts either call's values, and its
help names each call's default; the call that runs takes only what is its own and checks it.

Declarations also check the library's own calls, as scikit-learn's ``validate_params`` and
``_parameter_constraints`` do: :func:`declare` wraps a function so that every argument given
is checked against its constraints, and an estimator calls :func:`check_params` in ``fit``
(or in its own ``check_params``). The message is :meth:`Setting.check`'s, the config's and
the command line's: ``"block_size must be 'auto', an int >= 1 or a list of ints >= 1; got 0
(int)."`` from a call, ``"encoding.block_size in 'run.yaml' must be ..."`` from a config (an
:class:`~neuroenc._validation.InvalidParameterError`, a ValueError and a TypeError). The
library keeps hand-written checks only for what one parameter's declaration cannot say: how
parameters combine (a ``stride`` with ``context_tokens="full"``), or what depends on the data
(a layer beyond the model's depth). A value a call takes from Python only (a scikit-learn
splitter as ``cv``) is declared :class:`PythonOnly`: valid in calls, never in a config.

Adding an option is one edit: a parameter in the library function's signature, its
constraint in the declaration and its numpydoc line. The config key (with its type check and
"did you mean"), the command-line option (with its help, default and parsing) and the check
of direct calls follow, all in the same words (``tests/test_settings_cli.py``:
``test_an_option_is_one_declaration_for_config_cli_and_calls``).

Why not ``jsonargparse`` (which builds CLIs and configs from signatures and docstrings)? It
reads type hints, not value constraints: ``block_size=0``, ``trim=[-1, 0]`` or
``cv="kfold:1"`` pass its parsing, and it does not check library calls at all. Reaching our
checks would take ``Literal``/restricted types in every signature, plus code of our own for
what it does not do: the stimulus/story alternatives of one option (:func:`union_settings`),
the ``logspace`` spelling, values not given left to the library's default, and "did you mean"
hints. It would replace about 410 of the 980 lines of this module (those that parse
command-line text, read numpydoc and hold config sections), at the cost of a dependency of 16,500
lines (plus ``docstring-parser`` and ``typeshed-client``), and its ``--help`` shows RST roles
and ``type: str`` where ours lists the allowed values.
"""
from __future__ import annotations

import argparse
import difflib
import functools
import inspect
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.utils._param_validation import HasMethods, Hidden, Interval, StrOptions

from ._logging import LOG_LEVELS
from ._validation import InvalidParameterError

#: The default of a parameter without one (a required argument).
REQUIRED = inspect.Parameter.empty


# ---------------------------------------------------------------------- constraints
class Choices(StrOptions):
    """A value among fixed strings, in the order written (scikit-learn's ``StrOptions``).

    Examples
    --------
    >>> Choices("last", "mean", "first").is_satisfied_by("mean")
    True
    """

    def __init__(self, *values: str) -> None:
        if len(values) == 1 and not isinstance(values[0], str):
            values = tuple(values[0])
        super().__init__(set(values))
        self.values = tuple(values)

    def __str__(self) -> str:
        return ", ".join(repr(v) for v in self.values)


class ListOf:
    """A list (or tuple, or 1-D array) whose items each satisfy one of ``items``.

    Parameters
    ----------
    *items : constraint
        The constraints of an item (as in ``_parameter_constraints``).
    length : int | None
        The exact number of items, if fixed.
    min_length : int
        The fewest items.
    """

    hidden = False

    def __init__(self, *items: Any, length: int | None = None, min_length: int = 1) -> None:
        self.items = [_make(c) for c in items]
        self.length = length
        self.min_length = min_length

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, np.ndarray):
            if value.ndim != 1:
                return False
            value = value.tolist()
        if not isinstance(value, (list, tuple)):
            return False
        if (self.length is not None and len(value) != self.length) or len(value) < self.min_length:
            return False
        return all(_satisfies(self.items, v) for v in value)

    def describe(self, style: str = "yaml") -> str:
        what = " or ".join(_describe(c, style, plural=True) for c in self.items if not c.hidden)
        if self.length is not None:
            return f"a list of {self.length} {what}"
        return f"a list of {what}" + (f" (at least {self.min_length})" if self.min_length > 1 else "")

    def from_text(self, text: str) -> list:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        out = []
        for part in parts:
            for c in sorted(self.items, key=_text_priority):
                try:
                    value = _from_text(c, part)
                except ValueError:
                    continue
                if c.is_satisfied_by(value):
                    out.append(value)
                    break
            else:
                raise ValueError(part)
        return out


class Logspace:
    """A grid of powers of 10: ``{logspace: [start, stop, num]}`` in a config,
    ``logspace:start,stop,num`` on the command line; :meth:`to_value` gives the array
    (``numpy.logspace``). A spelling of the config and the command line only: a library call
    takes the array."""

    hidden = False
    config_only = True

    def is_satisfied_by(self, value: Any) -> bool:
        if not isinstance(value, dict) or set(value) != {"logspace"}:
            return False
        grid = value["logspace"]
        if not isinstance(grid, (list, tuple)) or len(grid) != 3:
            return False
        start, stop, num = grid
        numbers_ok = all(isinstance(v, Real) and not isinstance(v, bool) for v in (start, stop))
        return numbers_ok and isinstance(num, Integral) and not isinstance(num, bool) and num >= 1

    def describe(self, style: str = "yaml") -> str:
        return "{logspace: [start, stop, num]}" if style == "yaml" else "logspace:START,STOP,NUM"

    def from_text(self, text: str) -> dict:
        if not text.startswith("logspace:"):
            raise ValueError(text)
        parts = [p.strip() for p in text.split(":", 1)[1].split(",")]
        if len(parts) != 3:
            raise ValueError(text)
        return {"logspace": [float(parts[0]), float(parts[1]), int(parts[2])]}

    @staticmethod
    def to_value(value: dict) -> np.ndarray:
        start, stop, num = value["logspace"]
        return np.logspace(float(start), float(stop), int(num))


class Pattern:
    """A string of a given form, e.g. ``Pattern(r"kfold:\\d+", "kfold:K")`` for a CV scheme
    with a number in it.

    Parameters
    ----------
    regex : str
        The form (the whole string must match).
    text : str
        The form in words, for messages and help.
    """

    hidden = False

    def __init__(self, regex: str, text: str) -> None:
        self.regex = re.compile(regex)
        self.text = text

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, str) and self.regex.fullmatch(value) is not None

    def describe(self, style: str = "yaml") -> str:
        return self.text

    def from_text(self, text: str) -> str:
        if not self.is_satisfied_by(text):
            raise ValueError(text)
        return text


class PythonOnly:
    """A value a library call takes from Python only, never from a config or the command line
    (a scikit-learn splitter, an explicit list of splits): valid in a call, left out of
    messages, help and config checks (a :class:`Hidden` constraint is valid everywhere).

    Parameters
    ----------
    constraint : constraint
        As in ``_parameter_constraints`` (a type, :class:`HasMethods`...).
    """

    def __init__(self, constraint: Any) -> None:
        self.constraint = constraint


class _Methods:
    """An object with some methods (scikit-learn's ``HasMethods``: a splitter has ``split``)."""

    hidden = False

    def __init__(self, methods: Iterable[str]) -> None:
        self.methods = list(methods)

    def is_satisfied_by(self, value: Any) -> bool:
        # a string has methods too (str.split): it is never the object meant here
        return not isinstance(value, (str, bytes)) and all(callable(getattr(value, m, None)) for m in self.methods)

    def describe(self, style: str = "yaml") -> str:
        return f"an object with {', '.join(m + '()' for m in self.methods)}"


class _Simple:
    """``None``, ``"boolean"`` or a type, as scikit-learn's ``make_constraint`` reads them."""

    def __init__(self, kind: str, type_: type | None = None) -> None:
        self.kind = kind
        self.type = type_
        self.hidden = False

    def is_satisfied_by(self, value: Any) -> bool:
        if self.kind == "none":
            return value is None
        if self.kind == "boolean":
            return isinstance(value, (bool, np.bool_))
        if isinstance(value, (bool, np.bool_)) and self.type is not bool:
            return False  # a bool is an int to Python, never to a config
        return isinstance(value, self.type)


def _make(spec: Any) -> Any:
    """A constraint object from a ``_parameter_constraints`` entry."""
    if isinstance(spec, Hidden):
        c = _make(spec.constraint)
        c = _copy_hidden(c)
        return c
    if isinstance(spec, PythonOnly):
        c = _copy_hidden(_make(spec.constraint))
        c.python_only = True
        return c
    if isinstance(spec, HasMethods):
        return _Methods(spec.methods)
    if spec is None:
        return _Simple("none")
    if isinstance(spec, str) and spec == "boolean":
        return _Simple("boolean")
    if isinstance(spec, type):
        return _Simple("type", spec)
    if isinstance(spec, (Interval, Choices, ListOf, Logspace, Pattern, _Methods)):
        return spec
    raise TypeError(f"unknown constraint {spec!r}")


def _copy_hidden(c: Any) -> Any:
    import copy

    c = copy.copy(c)
    c.hidden = True
    return c


def _satisfies(constraints: Iterable[Any], value: Any, python: bool = False) -> bool:
    """Whether ``value`` satisfies one of ``constraints`` (with ``python``, also those a call
    takes from Python only: :class:`PythonOnly`)."""
    for c in constraints:
        if getattr(c, "python_only" if not python else "config_only", False):
            continue
        if isinstance(c, Interval) and isinstance(value, (bool, np.bool_)):
            continue  # a bool is an int to Python, never to a config
        if c.is_satisfied_by(value):
            return True
    return False


def _number(x: Any) -> str:
    return "inf" if x is None else f"{x:g}" if isinstance(x, float) else str(x)


def _describe(c: Any, style: str = "yaml", plural: bool = False) -> str:
    """Words for a constraint: ``an int >= 0``, ``'full'``, ``null``, ``a list of ints``."""
    if isinstance(c, (ListOf, Logspace, Pattern, _Methods)):
        return c.describe(style)
    if isinstance(c, Choices):
        return str(c)
    if isinstance(c, Interval):
        what = ("ints" if plural else "an int") if c.type is Integral else ("numbers" if plural else "a number")
        lo, hi = c.left, c.right
        if hi is None and lo is not None:
            if lo == 0 and c.closed in ("neither", "right"):
                return ("positive " + what.split()[-1]) if plural else f"a positive {what.split()[-1]}"
            return f"{what} {'>=' if c.closed in ('left', 'both') else '>'} {_number(lo)}"
        if lo is None and hi is not None:
            return f"{what} {'<=' if c.closed in ('right', 'both') else '<'} {_number(hi)}"
        if lo is None and hi is None:
            return what
        left = "[" if c.closed in ("left", "both") else "("
        right = "]" if c.closed in ("right", "both") else ")"
        return f"{what} in {left}{_number(lo)}, {_number(hi)}{right}"
    if c.kind == "none":
        return {"yaml": "null", "python": "None"}.get(style, "none")
    if c.kind == "boolean":
        return "True or False" if style == "python" else "true or false"
    if plural:
        return {str: "strings", dict: "mappings", int: "ints", float: "numbers"}.get(
            c.type, f"{c.type.__name__} objects")
    return {str: "a string", dict: "a mapping", int: "an int", float: "a number"}.get(
        c.type, f"a {c.type.__name__}")


def _words(c: Any, style: str) -> list[str]:
    """The alternatives a constraint allows, each in a few words."""
    if isinstance(c, Choices):
        return [repr(v) for v in c.values]
    if isinstance(c, _Simple) and c.kind == "boolean":
        return ["True", "False"] if style == "python" else ["true", "false"]
    return [_describe(c, style)]


def describe(constraints: Iterable[Any], style: str = "yaml") -> str:
    """The expected values of a setting in words, e.g. ``"an int >= 0 or 'full'"``."""
    shown = [w for c in constraints if not c.hidden and not (style == "python" and getattr(c, "config_only", False))
             for w in _words(c, style)]
    if len(shown) <= 1:
        return "".join(shown)
    return ", ".join(shown[:-1]) + " or " + shown[-1]


def _text_priority(c: Any) -> int:
    """The order in which a command-line text is tried against constraints: words first,
    then numbers, grids, lists, and free text last."""
    if isinstance(c, _Simple):
        return {"none": 0, "boolean": 1}.get(c.kind, 8 if c.type is str else 7)
    if isinstance(c, Choices):
        return 2
    if isinstance(c, Interval):
        return 3 if c.type is Integral else 4
    if isinstance(c, (Logspace, Pattern)):
        return 5
    return 6  # ListOf


_BOOLS = {"true": True, "false": False}


def _from_text(c: Any, text: str) -> Any:
    """A command-line text as a value of constraint ``c`` (ValueError if it cannot be one)."""
    if isinstance(c, _Methods) or getattr(c, "python_only", False):
        raise ValueError(text)
    if isinstance(c, (ListOf, Logspace, Pattern)):
        return c.from_text(text)
    if isinstance(c, Choices):
        if text in c.values:
            return text
        raise ValueError(text)
    if isinstance(c, Interval):
        if c.type is Integral:
            if not re.fullmatch(r"[+-]?\d+", text.strip()):
                raise ValueError(text)
            return int(text)
        return float(text)
    if c.kind == "none":
        if text.lower() in ("none", "null"):
            return None
        raise ValueError(text)
    if c.kind == "boolean" or c.type is bool:
        return _BOOLS[text.lower()] if text.lower() in _BOOLS else _raise(text)
    if c.type is str:
        return text
    if c.type is int:
        return int(text)
    if c.type is float:
        return float(text)
    raise ValueError(text)


def _raise(text: str) -> Any:
    raise ValueError(text)


# ---------------------------------------------------------------------- declarations
#: The constraints of every ``verbose`` parameter (mne's convention, see
#: :func:`neuroenc._logging.verbose_level`): None, a bool, a level name or a logging level.
VERBOSE = [None, "boolean", Choices(*LOG_LEVELS), Hidden(Choices(*(name.upper() for name in LOG_LEVELS))),
           Interval(Integral, 0, None, closed="left")]


def declare(constraints: Mapping[str, list]) -> Callable:
    """Declare the constraints of a function's parameters, and check its calls against them
    (scikit-learn's ``validate_params``); for an estimator, set ``_parameter_constraints`` and
    call :func:`check_params` in ``fit``.

    The function gets ``_parameter_constraints`` (read by :func:`settings_of`), and each call
    checks the arguments given (not the defaults) with :meth:`Setting.check`: an
    :class:`~neuroenc._validation.InvalidParameterError` worded as the config's and the
    command line's errors.

    Examples
    --------
    >>> @declare({"n": [Interval(Integral, 0, None, closed="left")]})
    ... def f(n=3):
    ...     return n
    >>> settings_of(f)["n"].default
    3
    >>> f(n=-1)
    Traceback (most recent call last):
    ...
    neuroenc._validation.InvalidParameterError: n must be an int >= 0; got -1 (int).
    """

    def decorator(func: Callable) -> Callable:
        signature = inspect.signature(func)
        unknown = [name for name in constraints if name not in signature.parameters]
        if unknown:
            raise TypeError(f"{func.__qualname__} has no parameter(s) {unknown} to declare")
        settings = {name: Setting(name, constraints=tuple(_make(c) for c in spec), owner=func.__qualname__)
                    for name, spec in constraints.items()}

        @functools.wraps(func)
        def checked(*args: Any, **kwargs: Any) -> Any:
            try:
                given = signature.bind_partial(*args, **kwargs).arguments
            except TypeError:
                given = {}  # a wrong call: the function's own TypeError says so
            for name, value in given.items():
                if name in settings:
                    settings[name].check(value, name, style="python")
            return func(*args, **kwargs)

        checked._parameter_constraints = dict(constraints)
        return checked

    return decorator


def check_params(estimator: Any) -> None:
    """Check an estimator's parameters against its declared ``_parameter_constraints`` (in
    ``fit``, as scikit-learn's ``_validate_params``), with :meth:`Setting.check`'s wording.

    Raises
    ------
    InvalidParameterError
        A ValueError and a TypeError, naming the parameter, the value and what it must be.
    """
    for name, spec in constraints_of(type(estimator)).items():
        if hasattr(estimator, name):
            Setting(name, constraints=tuple(_make(c) for c in spec), owner=type(estimator).__name__).check(
                getattr(estimator, name), name, style="python")


def constraints_of(obj: Any) -> dict[str, list]:
    """The declared ``_parameter_constraints`` of a function or class."""
    return dict(getattr(obj, "_parameter_constraints", {}))


# ---------------------------------------------------------------------- numpydoc
_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|obj|ref):`~?([^`]+)`")


def rst_to_text(text: str) -> str:
    """numpydoc/RST markup as plain text, line by line (for ``--help``): roles to their name
    (``:func:`~neuroenc.x.y``` -> ``y``), literals unquoted, ``Examples::`` -> ``Examples:``.

    Examples
    --------
    >>> rst_to_text("See :func:`~neuroenc.align.resample` and ``--tr``. Example::")
    'See resample and --tr. Example:'
    """
    text = _ROLE.sub(lambda m: m.group(1).split(".")[-1] if "~" in m.group(0) else m.group(1), text)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    return re.sub(r"(?<=\S)::$", ":", text, flags=re.MULTILINE)


def _plain(text: str) -> str:
    """numpydoc/RST text as plain words: roles to their last name, literals unquoted."""
    return " ".join(rst_to_text(text).split())


def _split_top(text: str) -> list[str]:
    """``"str | bool, float"`` -> ``["str | bool", "float"]`` (commas inside braces kept)."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "{[("
        depth -= ch in "}])"
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    parts.append(current.strip())
    return parts


def parameter_docs(obj: Any) -> dict[str, tuple[str, str]]:
    """``{name: (type, description)}`` from the numpydoc ``Parameters`` section of ``obj``
    (a function, or a class whose docstring holds them), read with numpydoc's ``docscrape``.

    An entry for several names (``device, dtype : str``) is given to each.
    """
    from numpydoc.docscrape import NumpyDocString

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        doc = NumpyDocString(inspect.getdoc(obj) or "")
    out: dict[str, tuple[str, str]] = {}
    for param in doc["Parameters"]:
        names = [n.strip() for n in param.name.split(",") if n.strip()]
        types = _split_top(param.type)
        paragraph = []
        for line in param.desc:
            if not line.strip():
                break
            paragraph.append(line)
        text = _plain(" ".join(paragraph))
        for i, name in enumerate(names):
            kind = types[i] if len(types) == len(names) else param.type
            out[name] = (kind, text)
    return out


def _short(text: str, limit: int = 320) -> str:
    """The first sentences of ``text``, up to about ``limit`` characters."""
    if len(text) <= limit:
        return text
    cut = max(text.rfind(". ", 0, limit), text.rfind("; ", 0, limit))
    return text[:cut + 1] if cut > 0 else text[:limit].rstrip() + "..."


def _sentences(text: str, limit: int) -> str:
    """The first whole sentences of ``text`` within about ``limit`` characters (at least one)."""
    if len(text) <= limit:
        return text
    cut = text.rfind(". ", 0, limit)
    if cut < 0:
        cut = text.find(". ")
    return text if cut < 0 else text[:cut + 1]


# ---------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Setting:
    """One setting: a parameter of a library call (or a config-only key).

    Parameters
    ----------
    name : str
        The parameter (and config key).
    default : object
        Its default (:data:`REQUIRED` for none).
    constraints : tuple
        Constraint objects; a valid value satisfies one of them.
    doc : str
        Plain-text description (the numpydoc paragraph).
    type_text : str
        The numpydoc type.
    owner : str
        The function or class it belongs to (``"config"`` for a config-only key).
    alternatives : tuple of (str, Setting)
        For a setting that alternative calls take differently (:func:`union_settings`): each
        call's own setting, with a label (``("--stimuli", <StimulusExtractor's pooling>)``);
        the help names each one's default.
    """

    name: str
    default: Any = REQUIRED
    constraints: tuple = ()
    doc: str = ""
    type_text: str = ""
    owner: str = "config"
    alternatives: tuple = ()

    @classmethod
    def declare(cls, name: str, default: Any, constraints: list, doc: str) -> "Setting":
        """A config-only setting, declared where it is used."""
        return cls(name, default, tuple(_make(c) for c in constraints), _plain(doc))

    def expected(self, style: str = "yaml") -> str:
        """The values it takes, in words."""
        return describe(self.constraints, style)

    def is_valid(self, value: Any, python: bool = False) -> bool:
        """Whether ``value`` satisfies a constraint (any value when none is declared); with
        ``python``, also one a call takes from Python only (:class:`PythonOnly`)."""
        return not self.constraints or _satisfies(self.constraints, value, python)

    def check(self, value: Any, field: str, where: str = "", style: str = "yaml") -> Any:
        """``value`` if valid, else an :class:`~neuroenc._validation.InvalidParameterError` (a
        ValueError and a TypeError) naming ``field``, the value and what it must be.

        One wording for a config key (``"encoding.block_size in 'run.yaml' must be ..."``), a
        command-line option and a library call (``style="python"``: ``"block_size must be
        ...; got 0 (int)."``, with ``None``/``True`` spelt as in Python). Settings whose every
        value is one of a few words get mne's message ("Invalid value for 'model.pooling'.
        Allowed values are 'last', 'mean', 'first', but got 'max' instead.").
        """
        python = style == "python"
        if self.is_valid(value, python):
            return value
        shown = [c for c in self.constraints if not c.hidden]
        if shown and all(isinstance(c, Choices) or getattr(c, "kind", "") == "none" for c in shown):
            allowed = ", ".join(w for c in shown for w in (
                _words(c, style) if isinstance(c, _Simple) else _words(c, "")))
            raise InvalidParameterError(f"Invalid value for {field!r}{where}. Allowed values are {allowed}, "
                                        f"but got {value!r} instead.")
        raise InvalidParameterError(f"{field}{where} must be {self.expected(style)}; got {value!r} "
                                    f"({type(value).__name__}).")

    def from_text(self, text: str) -> Any:
        """A command-line text as a value (an ``argparse`` ``type=``)."""
        for c in sorted(self.constraints, key=_text_priority):
            try:
                value = _from_text(c, text)
            except (ValueError, KeyError, TypeError):
                continue
            if _satisfies([c], value):
                return value
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: must be {self.expected('cli')}")

    def to_value(self, value: Any) -> Any:
        """The value the library call takes (a ``Logspace`` spelling becomes its array)."""
        for c in self.constraints:
            if isinstance(c, Logspace) and c.is_satisfied_by(value):
                return c.to_value(value)
        return value

    def help(self, extra: str = "") -> str:
        """The command-line help: the description's first sentences, the values it takes
        (unless the option's metavar lists them) and the default (unless the description
        gives it). A setting of alternative calls gives each call's description (when they
        differ) and each one's default."""
        alternatives = self.alternatives
        docs = list(dict.fromkeys(s.doc for _, s in alternatives))
        if len(docs) > 1:
            text = " ".join(f"{label}: {_sentences(s.doc, 240)}" for label, s in alternatives if s.doc)
        else:
            text = _short(self.doc)
        shown = [c for c in self.constraints if not c.hidden]
        if shown and not all(isinstance(c, (Choices, _Simple)) and getattr(c, "kind", "") != "type"
                             for c in shown):
            text += f" Values: {self.expected('cli')}."
        defaults = [(label, s.default) for label, s in alternatives if s.default is not REQUIRED]
        if len({_show_default(d) for _, d in defaults}) > 1:
            text += " (default: " + ", ".join(f"{_show_default(d)} with {label}" for label, d in defaults) + ")"
        elif self.default is not REQUIRED and not re.search(r"\bdefault\b", text, re.IGNORECASE):
            text += f" (default: {_show_default(self.default)})"
        return (text + " " + extra).strip().replace("%", "%%")


def _show_default(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def settings_of(obj: Any, *, exclude: Iterable[str] = (), include: Iterable[str] | None = None,
                docs: Iterable[Any] = ()) -> dict[str, Setting]:
    """The settings of a function or estimator: its signature's parameters, with their
    defaults, declared constraints and numpydoc descriptions.

    Parameters
    ----------
    obj : callable | class
        A function, or a class (its ``__init__``).
    exclude : iterable of str
        Parameters that are not settings (data, provenance, verbosity).
    include : iterable of str | None
        Only these parameters (in this order).
    docs : iterable of callable | class
        Where to read a description that ``obj``'s own docstring leaves to another (``alphas,
        cv : see LayerSweep``).

    Returns
    -------
    settings : dict of str -> Setting
    """
    func = obj.__init__ if inspect.isclass(obj) else obj
    params = {name: p for name, p in inspect.signature(func).parameters.items()
              if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    names = list(include) if include is not None else [n for n in params if n not in set(exclude)]
    constraints = constraints_of(obj)
    doc = parameter_docs(obj)
    fallback: dict[str, tuple[str, str]] = {}
    for other in docs:
        for key, value in parameter_docs(other).items():
            fallback.setdefault(key, value)
    owner = getattr(obj, "__name__", str(obj))
    out = {}
    for name in names:
        if name not in params:
            raise TypeError(f"{owner} has no parameter {name!r}")
        kind, text = doc.get(name, ("", ""))
        if (not text or text.lower().startswith("see ") or kind.lower().startswith("see ")) and name in fallback:
            kind, text = fallback[name]
        out[name] = Setting(name, params[name].default,
                            tuple(_make(c) for c in constraints.get(name, ())), text, kind, owner)
    return out


def merge_settings(*groups: Mapping[str, Setting]) -> dict[str, Setting]:
    """Settings of several calls as one section; a name shared by two calls must have the same
    default and constraints in both (else a TypeError: the library disagrees with itself)."""
    out: dict[str, Setting] = {}
    for group in groups:
        for name, setting in group.items():
            if name in out:
                seen = out[name]
                if not _same(seen.default, setting.default) or \
                        [describe([c]) for c in seen.constraints] != [describe([c]) for c in setting.constraints]:
                    raise TypeError(
                        f"{name!r} of {seen.owner} and of {setting.owner} disagree: default "
                        f"{seen.default!r} vs {setting.default!r}, {seen.expected()} vs {setting.expected()}."
                    )
                continue
            out[name] = setting
    return out


def union_settings(groups: Mapping[str, Mapping[str, Setting]]) -> dict[str, Setting]:
    """Settings of alternative calls as one set (e.g. the story and the stimulus extractor
    behind one command's options): every name any call takes.

    A name the calls take alike (same default and allowed values) is kept as the first call
    has it. One they take differently becomes a setting that allows every call's values, with
    the calls' own settings as its :attr:`~Setting.alternatives` (its help names each
    default); the call that runs checks the value against its own setting.

    Parameters
    ----------
    groups : dict of str -> dict of str -> Setting
        Each call's settings, under a label for messages and help (``"--transcript"``).

    Returns
    -------
    settings : dict of str -> Setting
    """
    by_name: dict[str, list[tuple[str, Setting]]] = {}
    for label, group in groups.items():
        for name, setting in group.items():
            by_name.setdefault(name, []).append((label, setting))
    out: dict[str, Setting] = {}
    for name, alternatives in by_name.items():
        first = alternatives[0][1]
        if all(_same(first.default, s.default) and _words_of(first) == _words_of(s) for _, s in alternatives[1:]):
            out[name] = first
            continue
        owners = " | ".join(dict.fromkeys(s.owner for _, s in alternatives))
        out[name] = Setting(name, first.default, _union_constraints([s for _, s in alternatives]), first.doc,
                            first.type_text, owners, tuple(alternatives))
    return out


def _words_of(setting: Setting) -> list[str]:
    return [describe([c]) + (" (hidden)" if c.hidden else "") for c in setting.constraints]


def _union_constraints(settings: Iterable[Setting]) -> tuple:
    """Every constraint of ``settings`` once; their fixed words as one :class:`Choices`, in the
    order first written."""
    out: list[Any] = []
    words: list[str] = []
    seen: set[str] = set()
    at = None
    for setting in settings:
        for c in setting.constraints:
            if isinstance(c, Choices) and not c.hidden:
                if at is None:
                    at = len(out)
                    out.append(None)
                words += [v for v in c.values if v not in words]
                continue
            key = f"{type(c).__name__}:{describe([c])}:{c.hidden}"
            if key not in seen:
                seen.add(key)
                out.append(c)
    if at is not None:
        out[at] = Choices(*words)
    return tuple(out)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(np.all(a == b)) if not isinstance(a, (list, tuple)) else list(a) == list(b)
    except Exception:  # pragma: no cover - incomparable objects
        return a is b


# ---------------------------------------------------------------------- config sections
class Section:
    """A config section: the values the user gave, checked against the section's settings.

    Attribute access gives a setting's effective value (the value given, else the library's
    default); :attr:`given` holds only what was given, and :meth:`kwargs` passes only that to
    a library call, so the library's own defaults apply to the rest.

    Parameters
    ----------
    name : str
        The section (``"model"``).
    settings : dict of str -> Setting
    values : mapping | None
        The section as read from YAML.
    where : str
        Where the values came from, for messages (``" in 'run.yaml'"``).

    Raises
    ------
    ValueError
        For an unknown key (with the nearest known one) or a value of the wrong type.
    """

    __slots__ = ("_name", "_settings", "_given")

    def __init__(self, name: str, settings: Mapping[str, Setting], values: Mapping[str, Any] | None = None,
                 where: str = "") -> None:
        values = {} if values is None else values
        if not isinstance(values, Mapping):
            raise ValueError(f"section {name!r}{where} must be a mapping, got {type(values).__name__}.")
        for key in values:
            if key not in settings:
                hint = difflib.get_close_matches(str(key), list(settings), n=1)
                raise ValueError(
                    f"unknown key {name}.{key}{where}"
                    + (f"; did you mean {name}.{hint[0]}?" if hint else f"; allowed keys: {list(settings)}.")
                )
        for key, value in values.items():
            settings[key].check(value, f"{name}.{key}", where)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_settings", dict(settings))
        object.__setattr__(self, "_given", dict(values))

    @property
    def settings(self) -> dict[str, Setting]:
        """The section's settings."""
        return self._settings

    @property
    def given(self) -> dict[str, Any]:
        """The values the config gave (a copy)."""
        return dict(self._given)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        settings = object.__getattribute__(self, "_settings")
        if key not in settings:
            raise AttributeError(f"config section {object.__getattribute__(self, '_name')!r} has no "
                                 f"setting {key!r}")
        given = object.__getattribute__(self, "_given")
        return given[key] if key in given else settings[key].default

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"config section {self._name!r} is read-only; build a new config "
                             f"(apply_overrides) to change {key!r}")

    def __getstate__(self) -> dict:
        return {"_name": self._name, "_settings": self._settings, "_given": self._given}

    def __setstate__(self, state: dict) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)

    def __eq__(self, other: object) -> bool:
        return (type(other) is type(self) and self._name == other._name
                and self.effective() == other.effective())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, given={self._given!r})"

    def effective(self) -> dict[str, Any]:
        """Every setting's effective value (given, else the library's default), for provenance
        and result keys."""
        return {key: self._given[key] if key in self._given else s.default
                for key, s in self._settings.items()}

    def kwargs(self, func: Any = None, exclude: Iterable[str] = ()) -> dict[str, Any]:
        """The values given, as ``func``'s keyword arguments (only its parameters; spellings
        such as ``{logspace: [...]}`` converted); ``func=None``: every value given."""
        accepted = None
        if func is not None:
            target = func.__init__ if inspect.isclass(func) else func
            accepted = set(inspect.signature(target).parameters)
        return {key: self._settings[key].to_value(value) for key, value in self._given.items()
                if (accepted is None or key in accepted) and key not in set(exclude)}


# ---------------------------------------------------------------------- command line
def option_name(name: str) -> str:
    """``context_tokens`` -> ``--context-tokens``."""
    return "--" + name.replace("_", "-")


def add_options(parser: argparse.ArgumentParser | Any, settings: Mapping[str, Setting], *,
                types: Mapping[str, Callable[[str], Any]] | None = None,
                helps: Mapping[str, str] | None = None, metavars: Mapping[str, str] | None = None,
                names: Mapping[str, str] | None = None) -> None:
    """Add an option per setting; one not given is absent from the parsed arguments
    (``default=argparse.SUPPRESS``), so the library's default applies.

    Parameters
    ----------
    parser : argparse.ArgumentParser or argument group
    settings : dict of str -> Setting
    types : dict of str -> callable | None
        A command-line grammar of its own for some settings (e.g. layer ranges); default
        :meth:`Setting.from_text`.
    helps : dict of str -> str | None
        Help text to add after a setting's own.
    metavars : dict of str -> str | None
    names : dict of str -> str | None
        Another option name for some settings (``{"random_state": "--seed"}``).
    """
    types, helps, metavars, names = types or {}, helps or {}, metavars or {}, names or {}
    for name, setting in settings.items():
        shown = [c for c in setting.constraints if not c.hidden]
        metavar = metavars.get(name)
        if metavar is None and shown and all(isinstance(c, (Choices, _Simple)) and getattr(c, "kind", "") != "type"
                                             for c in shown):
            words = [w.strip("'") for c in shown for w in _words(c, "cli")]
            metavar = "{" + ",".join(words) + "}"
        # a switch (only true or false) also stands alone: ``--save-weights`` is ``--save-weights true``
        switch = bool(shown) and all(isinstance(c, _Simple) and c.kind == "boolean" for c in shown)
        parser.add_argument(names.get(name, option_name(name)), dest=name,
                            type=types.get(name, setting.from_text), default=argparse.SUPPRESS,
                            metavar=metavar, help=setting.help(helps.get(name, "")),
                            **({"nargs": "?", "const": True} if switch else {}))


def given(args: argparse.Namespace, settings: Mapping[str, Setting]) -> dict[str, Any]:
    """The settings given on the command line (``{name: value}``), converted for the call."""
    return {name: s.to_value(getattr(args, name)) for name, s in settings.items() if hasattr(args, name)}


def effective(args: argparse.Namespace, settings: Mapping[str, Setting]) -> dict[str, Any]:
    """Every setting's value: given on the command line, else the library's default."""
    return {name: getattr(args, name, s.default) for name, s in settings.items()}


__all__ = [
    "REQUIRED", "Choices", "HasMethods", "Hidden", "Interval", "ListOf", "Logspace", "Pattern", "PythonOnly",
    "Section", "Setting", "add_options", "check_params", "constraints_of", "declare", "describe", "effective",
    "given", "rst_to_text",
    "merge_settings", "option_name", "parameter_docs", "settings_of", "union_settings",
]
