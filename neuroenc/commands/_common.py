"""Argument parsing shared by the subcommands (not a subcommand: the name starts with ``_``)."""
from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_INT = re.compile(r"^-?\d+$")
_RANGE = re.compile(r"^(\d+)-(\d+)$")
_FLOAT = re.compile(r"^(\d+\.\d*|\.\d+)$")
LAYERS_HELP = ("'all' (default), or comma-separated layer indices (0 = embeddings, -1 = last block), "
               "inclusive ranges (4-8) and relative depths (0.5 = middle, 1.0 = last block)")


def parse_layers(text: str) -> str | list[int | float]:
    """A ``--layers`` value: ``"all"``, or a list of layer indices and relative depths.

    The one layer grammar of the command line (an ``argparse`` ``type=``):

    - ``all``: every layer;
    - ``6`` or ``-1``: a layer index (0 = embeddings; negative counts from the end);
    - ``4-8``: an inclusive range of indices;
    - ``0.5``: a relative depth in [0, 1] (a number with a decimal point: ``1.0`` is the
      last block, ``1`` the first).

    Items are separated by commas. The result goes to the library's ``layers`` arguments
    (:func:`~neuroenc.features.layers.resolve_layers`, :func:`~neuroenc.features.load_features`,
    :func:`~neuroenc.features.layer_metrics`), which check it against the model's depth.

    Raises
    ------
    argparse.ArgumentTypeError
        For an item that is none of the above, a range that ends before it starts, or no item.

    Examples
    --------
    >>> parse_layers("all")
    'all'
    >>> parse_layers("0, -1, 4-6, 0.5")
    [0, -1, 4, 5, 6, 0.5]
    """
    text = str(text).strip()
    if text.lower() == "all":
        return "all"
    out: list[int | float] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        if _INT.match(item):
            out.append(int(item))
        elif _RANGE.match(item):
            lo, hi = (int(x) for x in _RANGE.match(item).groups())
            if hi < lo:
                raise argparse.ArgumentTypeError(
                    f"invalid layer range {item!r}: it ends before it starts; write {hi}-{lo}"
                )
            out.extend(range(lo, hi + 1))
        elif _FLOAT.match(item):
            out.append(float(item))
        else:
            raise argparse.ArgumentTypeError(
                f"invalid layer {item!r}: use 'all' or comma-separated indices, ranges and relative "
                "depths, e.g. 0,-1 or 4-8 or 0.5,1.0"
            )
    if not out:
        raise argparse.ArgumentTypeError(f"no layers in {text!r}: use 'all' or e.g. 0,6,12")
    return out


def check_out(out: str | None, inputs: Iterable[str | os.PathLike | None], option: str = "--out",
              example: str = "results.h5") -> None:
    """Refuse an output file that is an existing folder or one of the command's inputs.

    Parameters
    ----------
    out : str | None
        The output file (``--out``); None: nothing to check.
    inputs : iterable of path | None
        The files the command reads (None entries are skipped).
    option : str
        The option's name, for messages.
    example : str
        A file name to suggest inside a folder.

    Raises
    ------
    ValueError
        Naming the option, the path and the fix.
    """
    if out is None:
        return
    target = Path(out).expanduser()
    if target.is_dir():
        raise ValueError(
            f"{option} {out!r} is an existing folder; give the file to write, e.g. "
            f"{option} {str(target / example)!r}."
        )
    for item in inputs:
        if item is None:
            continue
        source = Path(item).expanduser()
        same = source.resolve() == target.resolve()
        if not same and source.exists() and target.exists():
            same = os.path.samefile(source, target)
        if same:
            raise ValueError(
                f"{option} {out!r} is also an input of this command ({str(item)!r}): writing it would "
                f"overwrite that input. Give {option} another file."
            )


def _applies(flags: list[str]) -> str:
    return f"{', '.join(flags)} appl{'ies' if len(flags) == 1 else 'y'}"


def _as_text(value: Any) -> str:
    """A value as it is written on the command line."""
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def options_for(options: Mapping[str, Any], own: Mapping[str, Any], other: Mapping[str, Any], here: str,
                there: str, names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The options given (``{name: value}``) for the call of one of a command's two paths
    (``neuroenc extract --transcript`` or ``--stimuli``), checked against its own settings.

    Parameters
    ----------
    options : dict
        The options given (:func:`neuroenc._settings.given`).
    own, other : dict of str -> Setting
        The settings of this path's call and of the other path's.
    here, there : str
        The paths, for messages (``"--stimuli"``, ``"--transcript"``).
    names : dict of str -> str | None
        Option names that are not ``--name-of-the-setting``.

    Raises
    ------
    ValueError
        For an option this path's call does not take (it applies to the other path), or a
        value only the other path's call takes, naming the option, the value and the fix.
    """
    from .._settings import option_name

    names = names or {}
    flag = {name: names.get(name, option_name(name)) for name in options}
    wrong = [flag[k] for k in options if k not in own]
    if wrong:
        raise ValueError(f"{_applies(wrong)} to {there} only; drop {'it' if len(wrong) == 1 else 'them'} "
                         f"with {here}.")
    for name, value in options.items():
        if own[name].is_valid(value):
            continue
        where = f" applies to {there} only" if name in other and other[name].is_valid(value) else \
            f" is not a value of {own[name].owner}"
        raise ValueError(f"{flag[name]} {_as_text(value)}{where}; with {here} give {own[name].expected('cli')}.")
    return dict(options)
