"""The ``neuroenc`` command line: thin; parses arguments and calls the library.

Each subcommand lives in :mod:`neuroenc.commands` as a module ``<name>.py`` with a one-line
module docstring (the help), ``add_arguments(parser)`` and ``run(args) -> int``, as mne's
``mne/commands`` do.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from . import __version__
from ._logging import set_log_level
from ._validation import NeuroencError


def _commands() -> dict[str, object]:
    from . import commands

    out = {}
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        out[info.name.replace("_", "-")] = importlib.import_module(f"{commands.__name__}.{info.name}")
    return out


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="neuroenc",
        description="Which layers of a language model best predict the brain?",
    )
    parser.add_argument("--version", action="version", version=f"neuroenc {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="debug messages, and tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="warnings only, no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _commands().items():
        doc = (module.__doc__ or "").strip().splitlines()
        p = sub.add_parser(name, help=doc[0] if doc else "", description=(module.__doc__ or "").strip())
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``neuroenc`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    level = "warning" if args.quiet else ("debug" if args.verbose else "info")
    set_log_level(level)
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError, KeyError, TypeError, ConnectionError, NeuroencError) as err:
        # Bad input or a failed task: the library's message says what to do; no traceback
        # for the user unless asked for (-v).
        if args.verbose:
            raise
        print(f"neuroenc {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
