"""Command-line manners: global flags anywhere, a warning repeated across subjects printed once,
no ``baseline r=nan`` without a baseline, ``--help`` as written and without RST markup."""
from __future__ import annotations

import ast
import logging
import textwrap
from pathlib import Path

import numpy as np
import pytest
from _encoding_fixtures import _one_blas_thread, layer_walk  # noqa: F401

from neuroenc import cli
from neuroenc._logging import log_context, logger, logs_subject

COMMANDS = sorted(cli._commands())


@pytest.fixture
def restore_logger():
    """main() sets the neuroenc logger's level and handler: put them back after the test."""
    level, handlers = logger.level, list(logger.handlers)
    yield
    logger.setLevel(level)
    for h in list(logger.handlers):
        if h not in handlers:
            logger.removeHandler(h)


def _fake_command(monkeypatch, name, body):
    """Make ``neuroenc <name>`` run ``body(args)``."""
    module = cli._commands()[name]
    monkeypatch.setattr(module, "run", body)


# ---------------------------------------------------------------------- global flags
@pytest.mark.parametrize("argv, level, verbose", [
    (["demo"], logging.INFO, 0),
    (["-q", "demo"], logging.WARNING, 0),
    (["demo", "-q"], logging.WARNING, 0),
    (["demo", "--quiet"], logging.WARNING, 0),
    (["demo", "-v"], logging.DEBUG, 1),
    (["-v", "demo", "-vv"], logging.DEBUG, 3),  # counted in both places
])
def test_global_flags_before_or_after_the_command(monkeypatch, restore_logger, argv, level, verbose):
    seen = {}

    def run(args):
        seen.update(level=logger.level, verbose=args.verbose, quiet=args.quiet)
        return 0

    _fake_command(monkeypatch, "demo", run)
    assert cli.main(argv) == 0
    assert seen == {"level": level, "verbose": verbose, "quiet": level == logging.WARNING}


def test_global_flags_after_every_command_are_in_its_help(capsys):
    for command in COMMANDS:
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        out = capsys.readouterr().out
        assert "global options:" in out and "-q, --quiet" in out and "-v, --verbose" in out, command


# ---------------------------------------------------------------------- repeated warnings
_EDGE = ("In layer(s) {layers}, more than 10% of the chosen ridge penalties sit at the largest value of the "
         "grid (1e+07; up to {share}%, layer 2): extend the alphas higher.")


@logs_subject
def _fit_one(config, subject, share=34):
    logging.getLogger("neuroenc.encoding.encode").warning(_EDGE.format(layers="0-3", share=share))
    logging.getLogger("neuroenc.pipeline.tasks").info("fitted %s", subject)


def test_a_warning_repeated_across_subjects_is_printed_once(monkeypatch, restore_logger, capsys):
    subjects = [f"s{i:02d}" for i in range(1, 28)]

    def run(args):
        for subject in subjects:
            _fit_one(None, subject)
        print("summary")
        return 0

    _fake_command(monkeypatch, "demo", run)
    assert cli.main(["demo", "-q"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if "ridge penalties" in line]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("WARNING [neuroenc.encoding.encode] In layer(s) 0-3")
    assert lines[0].endswith("(27 subjects: s01, s02, s03, s04, s05, s06, s07, s08, s09, s10, …)")
    assert captured.out == "summary\n"


def test_repeated_warnings_with_other_numbers_and_before_an_error(monkeypatch, restore_logger, capsys):
    """Warnings equal but for their numbers are one line that says so; a warning of one
    subject names it; the held warnings come before the error line."""

    def run(args):
        _fit_one(None, "s01", share=34)
        _fit_one(None, "s02", share=50)
        _fit_one(None, subject="s03", share=12)
        with log_context(subject="s04"):
            logging.getLogger("neuroenc.align").warning("subject s04 has a short run")
        logging.getLogger("neuroenc").warning("not about a subject")
        raise ValueError("bad input")

    _fake_command(monkeypatch, "demo", run)
    assert cli.main(["demo"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("INFO")]
    assert err[0] == "WARNING [neuroenc] not about a subject"  # passes at once
    assert err[1].startswith("WARNING [neuroenc.encoding.encode] In layer(s) 0-3") and "up to 34%" in err[1]
    assert err[1].endswith("(subject s01; the same warning, with other numbers, for 3 subjects: s01, s02, s03; "
                           "each subject's results keep its own)")
    assert err[2] == "WARNING [neuroenc.align] subject s04 has a short run (subject s04)"
    assert err[3] == "neuroenc demo: error: bad input" and len(err) == 4


def test_the_pipeline_fits_log_their_subject():
    from neuroenc.pipeline import tasks

    assert tasks.fit_subject.__wrapped__.__name__ == "fit_subject"  # @logs_subject


# ---------------------------------------------------------------------- baseline r
N_TR, TR = 60, 2.0


@pytest.fixture
def one_run(tmp_path, rng):
    from neuroenc.features import FeatureSet
    from neuroenc.features.featureset import save_features

    onsets = np.sort(rng.uniform(1.0, N_TR * TR - 4.0, 200))
    layers = layer_walk(rng, n_samples=200, n_features=4, n_layers=3, smooth=1)
    fs = FeatureSet(dict(enumerate(layers)), onsets, onsets + 0.3, run="run-1", model="toy", n_model_layers=3)
    features = save_features(fs, tmp_path / "run-1.h5")
    np.savetxt(tmp_path / "run-1.txt", rng.standard_normal((N_TR, 2)))
    np.savetxt(tmp_path / "rate.txt", np.abs(rng.standard_normal(N_TR)))
    return tmp_path, features


def _fit(tmp, features, *extra):
    return cli.main(["-q", "fit", "--features", str(features), "--responses", str(tmp / "run-1.txt"),
                     "--tr", str(TR), "--cv", "blocks", "--n-blocks", "3", "--n-permutations", "20",
                     "--out", str(tmp / "res.h5"), *extra])


def test_no_baseline_r_without_a_baseline(one_run, restore_logger, capsys):
    tmp, features = one_run
    assert _fit(tmp, features) == 0
    out = capsys.readouterr().out
    assert "best layer" in out and " r=" in out
    assert "baseline r" not in out and "nan" not in out
    assert _fit(tmp, features, "--nuisance", str(tmp / "rate.txt")) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "best layer" in line and " r=" in line]
    assert len(lines) == 2 and all("baseline r=" in line and "nan" not in line for line in lines)


# ---------------------------------------------------------------------- --help
def _examples(command: str) -> list[str]:
    """The indented lines (examples) of a command module's docstring."""
    module = cli._commands()[command]
    doc = ast.get_docstring(ast.parse(Path(module.__file__).read_text(encoding="utf-8"))) or ""
    blocks = [b for b in doc.split("\n\n") if any(line[:1].isspace() for line in b.splitlines())]
    return [line.rstrip() for b in blocks for line in textwrap.dedent(b).splitlines() if line.strip()]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_has_no_rst_and_keeps_examples_as_written(command, capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"] if command is None else [command, "--help"])
    out = capsys.readouterr().out
    for markup in (":func:", ":class:", ":mod:", ":meth:", "``", "::"):
        assert markup not in out, (command, markup)
    if command is None:
        return
    lines = [line.rstrip() for line in out.splitlines()]
    for example in _examples(command):
        assert "    " + example in lines, (command, example)  # on its own line, as written


def test_help_examples_exist_for_extract_and_fit():
    """The test above checks something: extract and fit have example lines."""
    assert len(_examples("extract")) >= 5 and any(line.startswith("neuroenc fit") for line in _examples("fit"))
