"""The ``neuroenc`` command line: thin; parses arguments and calls the library.

Each subcommand lives in :mod:`neuroenc.commands` as a module ``<name>.py`` with a one-line
module docstring (the help), ``add_arguments(parser)`` and ``run(args) -> int``, as mne's
``mne/commands`` do.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
from collections.abc import Sequence

from . import __version__
from ._logging import collapse_repeated_warnings, flush_repeated_warnings, logger, set_log_level
from ._settings import rst_to_text
from ._validation import NeuroencError


def _commands() -> dict[str, object]:
    from . import commands

    out = {}
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        out[info.name.replace("_", "-")] = importlib.import_module(f"{commands.__name__}.{info.name}")
    return out


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--help`` as written: a description's indented lines (examples) kept as they are, its
    prose paragraphs wrapped, option help wrapped; RST markup of docstrings as plain text
    (``:func:`~neuroenc.x.y``` -> ``y``, double backticks dropped, ``Examples::`` ->
    ``Examples:``)."""

    def _format_text(self, text: str) -> str:
        import textwrap

        if "%(prog)" in text:
            text = text % {"prog": self._prog}
        width = max(self._width - self._current_indent, 11)
        blocks = []
        for block in re.split(r"\n\s*\n", rst_to_text(text).strip("\n")):
            lines = block.splitlines()
            if any(line[:1].isspace() for line in lines):  # an example: as written
                blocks.append(textwrap.indent(textwrap.dedent(block), "    ").rstrip())
            else:
                blocks.append(textwrap.fill(" ".join(block.split()), width))
        return textwrap.indent("\n\n".join(blocks), " " * self._current_indent) + "\n\n"

    def _expand_help(self, action: argparse.Action) -> str:
        return rst_to_text(super()._expand_help(action))


def _threads_option(text: str) -> int:
    """A ``--threads`` value (an ``argparse`` ``type=``)."""
    from ._threads import check_threads

    try:
        return check_threads(text, "--threads")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _global_flags(parser: argparse.ArgumentParser, after: bool = False) -> None:
    """``-v``/``-q``/``--threads``, before the subcommand (``neuroenc -q demo``) or after it (``neuroenc demo
    -q``): after it they are kept apart (``dest`` ending in ``_after``) and added up in
    :func:`main`, so neither place overrides the other (``--threads`` after the subcommand wins)."""
    suffix = "_after" if after else ""
    parser.add_argument("-v", "--verbose", action="count", dest="verbose" + suffix,
                        default=argparse.SUPPRESS if after else 0, help="debug messages, and tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true", dest="quiet" + suffix,
                        default=argparse.SUPPRESS if after else False, help="warnings only, no progress bars")
    parser.add_argument("--threads", type=_threads_option, metavar="N", dest="threads" + suffix,
                        default=argparse.SUPPRESS if after else None,
                        help="BLAS, OpenMP and torch threads (default: NEUROENC_THREADS, else the cores this "
                             "process may use, by its CPU affinity and cgroup quota, capped by the idle cores; "
                             "1 is fastest on a busy machine)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="neuroenc",
        description="Which layers of a language model best predict the brain?",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"neuroenc {__version__}")
    _global_flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _commands().items():
        doc = (module.__doc__ or "").strip().splitlines()
        p = sub.add_parser(name, help=doc[0] if doc else "", description=(module.__doc__ or "").strip(),
                           formatter_class=HelpFormatter)
        module.add_arguments(p)
        _global_flags(p.add_argument_group("global options"), after=True)
        p.set_defaults(_run=module.run)
    return parser


#: Errors that report a problem with the user's input, files, machine or run (not a bug): their
#: message is printed on one line, without a traceback (``-v`` shows it). OSError covers
#: FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError and ConnectionError.
#: TypeError, KeyError and the rest are bugs: their traceback is shown.
USER_ERRORS = (NeuroencError, ValueError, OSError)

#: Library hints name API arguments (``pass start=20``); on the command line they become the
#: option that does the same, per command. Patterns are applied in order.
_OPTION_HINTS: dict[str, list[tuple[str, str]]] = {
    "fit": [
        (r"Response\(\.\.\., start=([^)]*)\)", r"--start \1"),
        (r"\bstart=", "--start "), (r"\btr=", "--tr "), (r"\bsfreq=", "--sfreq "),
        (r"\btrim=\(first, last\)", "--trim FIRST,LAST"), (r"\btrim=", "--trim "),
        (r"\bdelays=", "--delays "), (r"\bgap=", "--gap "), (r"\bmask=", "--mask "),
        (r"\blayers=", "--layers "), (r"\bn_blocks=", "--n-blocks "),
        (r" Or pass on_uncovered='warn' to go on without them \([^)]*\)\.", ""),
        (r"Drop those targets \(response\.select\(\.\.\.\)\) or interpolate the bad rows\.",
         "Fix or interpolate those cells in the responses file, or delete those columns from it."),
        (r"Drop them with response\.select\(\.\.\.\)\.", "Delete those columns from the responses file."),
        (r"\bid_column=", "--id-column "), (r"\bsubject_column=", "--subject-column "),
        (r"\bcolumns=", "--response-columns "), (r"\bids=", "--row-ids "),
        (r"\(e\.g\. encoding\.alphas\)", "(--alphas)"),
        (r"'(tr|sfreq)' must be > 0", r"--\1 must be a number > 0"),
    ],
    "extract": [
        (r"\bstrip_codes=True", "--strip-codes"), (r"\bstrip_codes=False", "--keep-codes"),
        (r"\btier=", "--tier "), (r"\bword_column=", "--word-column "),
        (r"\bwords_per_second=", "--words-per-second "), (r"\bdevice=", "--device "),
        (r"\blayers=", "--layers "), (r"\bgguf_file=", "--gguf-file "),
        (r"\bencoding= \(--encoding on the command line, dataset\.transcript_encoding in a run "
         r"config\)", "--encoding"), (r"\bencoding=", "--encoding "),
        (r"\btext_column=", "--text-column "), (r"\bid_column=", "--id-column "),
        (r"\bgroup_column=", "--group-column "),
    ],
    "run": [
        (r"\btrim=\(first, last\)", "--set alignment.trim=[FIRST,LAST]"),
        (r"\btrim=", "--set alignment.trim="), (r"\bdelays=", "--set alignment.delays="),
        (r"\bon_uncovered=", "--set alignment.on_uncovered="), (r"\bdevice=", "--set model.device="),
        (r"\bencoding= \(--encoding on the command line, dataset\.transcript_encoding in a run "
         r"config\)", "--set dataset.transcript_encoding=NAME"),
        (r"\bencoding=", "--set dataset.transcript_encoding="), (r"\bgap=", "--set encoding.gap="),
        (r"\bdownload=True", "--set dataset.args.download=true"),
        (r" \(allow_code=True in Python\)", ""),
    ],
    "metrics": [(r"\blayers=", "--layers ")],
    "report": [(r"\bmask=", "--mask ")],
}
_OPTION_HINTS["demo"] = _OPTION_HINTS["run"]


def _setting_hints(command: str | None) -> list[tuple[str, str]]:
    """``name=`` -> the command's option for every library setting it derives
    (:mod:`neuroenc._settings`): ``--context-tokens`` for extract, ``--set model.stride=`` for
    run. A name two sections share (``dtype``) is left as it is."""
    from ._settings import option_name

    if command == "extract":
        from .commands.extract import extractor_settings

        options = {name: option_name(name) + " " for name in extractor_settings()}
    elif command == "fit":
        from .commands.fit import OPTION_NAMES, design_settings, encoding_settings

        options = {name: OPTION_NAMES.get(name, option_name(name)) + " "
                   for name in (*design_settings(), *encoding_settings())}
    elif command in ("run", "demo"):
        from .pipeline.config import section_settings

        owners: dict[str, list[str]] = {}
        for section in ("model", "alignment", "encoding"):
            for name in section_settings(section, "either"):  # story and stimulus-level data sets
                owners.setdefault(name, []).append(section)
        options = {name: f"--set {sections[0]}.{name}=" for name, sections in owners.items()
                   if len(sections) == 1}
    else:
        return []
    return [(rf"(?<![\w.\-]){name}=", option) for name, option in options.items()]


def user_message(err: BaseException, command: str | None = None) -> str:
    """The one-line message of a user error, its hints in the command's own options."""
    message = " ".join(str(err).split())  # one line
    if isinstance(err, OSError) and not isinstance(err, NeuroencError) and err.strerror and err.filename:
        # PermissionError(13, ...) and friends: say which file and what went wrong, plainly
        message = f"{err.strerror}: {err.filename!r}" + (f" -> {err.filename2!r}" if err.filename2 else "")
    return command_hints(message, command) or type(err).__name__


def command_hints(message: str, command: str | None = None) -> str:
    """A library message (an error's or a warning's) with its hints in the command's own options
    (``tr=2.5`` -> ``--tr 2.5`` for ``neuroenc fit``)."""
    import re

    for pattern, replacement in [*_OPTION_HINTS.get(command or "", []), *_setting_hints(command)]:
        # a name, not the end of one already replaced ("--set alignment.trim=")
        pattern = pattern.replace(r"\b", r"(?<![\w.\-])", 1) if pattern.startswith(r"\b") else pattern
        message = re.sub(pattern, replacement, message)
    return message


class _CommandHints:
    """A logging filter: warnings logged during a command name its options, not the API's."""

    def __init__(self, command: str | None) -> None:
        self.command = command

    def text(self, message: str) -> str:
        """``message`` in the command's options."""
        return command_hints(message, self.command)

    def filter(self, record) -> bool:
        import logging

        if record.levelno >= logging.WARNING:
            record.msg, record.args = command_hints(record.getMessage(), self.command), None
        return True


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``neuroenc`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    args.verbose += getattr(args, "verbose_after", 0)
    args.quiet = args.quiet or getattr(args, "quiet_after", False)
    args.threads = getattr(args, "threads_after", args.threads)
    level = "warning" if args.quiet else ("debug" if args.verbose else "info")
    set_log_level(level)
    hints = _CommandHints(args.command)
    args.hints = hints.text  # for the warnings a command prints
    handlers = list(logger.handlers)
    for handler in handlers:
        handler.addFilter(hints)
    try:
        # a warning repeated across subjects is printed once, with the subjects (and before an
        # error); its text already in the command's options (the hints filter runs first)
        with collapse_repeated_warnings():
            try:
                from ._threads import thread_limits

                with thread_limits(args.threads, option="--threads"):  # the BLAS/torch pools
                    return int(args._run(args) or 0)
            except USER_ERRORS as err:
                # Bad input, a missing or unwritable file, a failed task: the library's message
                # says what to do; no traceback for the user unless asked for (-v).
                if args.verbose:
                    raise
                flush_repeated_warnings()
                print(f"neuroenc {args.command}: error: {user_message(err, args.command)}", file=sys.stderr)
                return 1
    finally:
        for handler in handlers:
            handler.removeFilter(hints)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
