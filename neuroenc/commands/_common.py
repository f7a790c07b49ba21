"""Argument parsing shared by the subcommands (not a subcommand: the name starts with ``_``)."""
from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterable
from pathlib import Path

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
    (:func:`~neuroenc.features.resolve_layers`, :func:`~neuroenc.features.load_features`,
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
