"""Settings have one source: the command line's options are the library's parameters.

``neuroenc extract``, ``fit`` and ``report`` derive their options from FeatureExtractor,
make_fmri_design/make_meg_design, fit_encoding and map_layers: the same names, defaults,
allowed values and help; an option not given is not passed.
"""
from __future__ import annotations

import argparse
import inspect
from numbers import Integral, Real

import numpy as np
import pytest

from neuroenc._settings import REQUIRED, Choices, Interval, ListOf, Logspace, Setting, declare, settings_of
from neuroenc.align import make_fmri_design, make_meg_design
from neuroenc.cli import build_parser, main, user_message
from neuroenc.encoding import EncodingResults, fit_encoding
from neuroenc.features import FeatureExtractor, FeatureSet, save_features
from neuroenc.mapping import map_layers
from neuroenc.pipeline.config import section_settings

#: command -> (the library calls its derived options come from, the config section they share)
COMMANDS = {
    "extract": ([FeatureExtractor], "model"),
    "fit": ([make_fmri_design, make_meg_design, fit_encoding], ("alignment", "encoding")),
    "report": ([map_layers], None),
}


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def _library_defaults(owners) -> dict[str, list]:
    out: dict[str, list] = {}
    for owner in owners:
        target = owner.__init__ if inspect.isclass(owner) else owner
        for name, p in inspect.signature(target).parameters.items():
            out.setdefault(name, []).append(p.default)
    return out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_cli_config_and_library_defaults_agree(command):
    owners, sections = COMMANDS[command]
    library = _library_defaults(owners)
    config = {}
    for section in ([sections] if isinstance(sections, str) else sections or []):
        config.update(section_settings(section))
    derived = [a for a in _subparser(command)._actions if a.default is argparse.SUPPRESS
               and a.dest in library and a.dest != "help"]
    assert len(derived) >= {"extract": 15, "fit": 25, "report": 4}[command]
    by_name = {owner.__name__: owner for owner in owners}
    for action in derived:
        name = action.dest
        assert action.required is False
        if name == "layers":  # the command line's own grammar (ranges) for FeatureExtractor's layers
            assert action.type.__name__ == "parse_layers"
            continue
        setting = action.type.__self__  # Setting.from_text: the option parses with the setting
        assert isinstance(setting, Setting)
        default = _library_defaults([by_name[setting.owner]])[name][0]
        assert setting.default == default or tuple(np.atleast_1d(setting.default)) == tuple(
            np.atleast_1d(default)), (command, name)
        if name in config:  # the config's key is the same setting
            assert config[name].default == setting.default or (
                tuple(config[name].default) == tuple(setting.default)), (command, name)
            assert config[name].expected() == setting.expected(), (command, name)
        # the help says the default (or the description does), and the default can be typed
        assert "default" in action.help.lower(), (command, name, action.help)
        assert setting.is_valid(setting.default)
        choices = [c for c in setting.constraints if isinstance(c, Choices)]
        if choices and action.metavar:
            assert all(v in action.metavar for c in choices for v in c.values)


def test_options_not_given_are_not_passed(tmp_path):
    from neuroenc._settings import given
    from neuroenc.commands.extract import extractor_settings
    from neuroenc.commands.fit import design_settings, encoding_settings

    args = build_parser().parse_args(["fit", "--features", "f.h5", "--responses", "r.npy", "--out", "o.h5"])
    assert given(args, design_settings()) == {} and given(args, encoding_settings()) == {}
    args = build_parser().parse_args(["fit", "--features", "f.h5", "--responses", "r.npy", "--out", "o.h5",
                                      "--hrf", "glover", "--alphas", "logspace:0,2,3", "--cv", "4",
                                      "--compare", "false", "--trim", "2", "--delays", "0,1"])
    assert given(args, design_settings()) == {"hrf": "glover", "trim": 2, "delays": [0, 1]}
    enc = given(args, encoding_settings())
    np.testing.assert_allclose(enc.pop("alphas"), [1.0, 10.0, 100.0])
    assert enc == {"cv": 4, "compare": False}
    args = build_parser().parse_args(["extract", "--model", "m", "--transcript", "t.txt", "--context-tokens",
                                      "full", "--prepend-bos", "auto", "--layers", "0,2-3", "--stride", "4"])
    assert given(args, extractor_settings()) == {"context_tokens": "full", "prepend_bos": "auto",
                                                 "layers": [0, 2, 3], "stride": 4}


@pytest.mark.parametrize("argv, message", [
    (["--context-tokens", "-3"], "argument --context-tokens: invalid value '-3': must be an int >= 0 or 'full'"),
    (["--pooling", "max"], "argument --pooling: invalid value 'max': must be 'last', 'mean' or 'first'"),
    (["--stride", "none"], None),
    (["--batch-size", "0"], "argument --batch-size: invalid value '0': must be an int >= 1 or 'auto'"),
])
def test_extract_options_are_checked_by_the_library_constraints(argv, message, capsys):
    base = ["extract", "--model", "m", "--transcript", "t.txt"]
    if message is None:
        assert build_parser().parse_args(base + argv).stride is None
        return
    with pytest.raises(SystemExit):
        build_parser().parse_args(base + argv)
    assert message in capsys.readouterr().err


@pytest.fixture
def one_run(tmp_path, rng):
    onsets = np.sort(rng.uniform(2.0, 390.0, 150))
    fs = FeatureSet({0: rng.standard_normal((150, 3)).astype(np.float32),
                     1: rng.standard_normal((150, 3)).astype(np.float32)},
                    onsets, onsets + 0.3, run="story", model="toy", n_model_layers=2)
    features = save_features(fs, tmp_path / "story.h5")
    np.save(tmp_path / "bold.npy", rng.standard_normal((200, 2)))
    return tmp_path, features


def _fit(tmp, features, *extra):
    out = tmp / "res.h5"
    argv = ["-q", "fit", "--features", str(features), "--responses", str(tmp / "bold.npy"), "--tr", "2",
            "--n-permutations", "0", "--n-blocks", "3", "--inner-cv", "2", "--alphas", "1,10",
            "--out", str(out), *extra]
    return main(argv), out


def test_fit_hrf_uses_delay_zero_unless_delays_are_given(one_run):
    tmp, features = one_run
    code, out = _fit(tmp, features, "--hrf", "glover")
    assert code == 0
    settings = EncodingResults.load(out).settings["alignment"]
    assert settings["hrf"] == "glover" and settings["delays"] == [0]
    code, out = _fit(tmp, features, "--hrf", "glover", "--delays", "1,2")
    assert code == 0 and EncodingResults.load(out).settings["alignment"]["delays"] == [1, 2]
    code, out = _fit(tmp, features)
    assert code == 0 and EncodingResults.load(out).settings["alignment"]["delays"] == [1, 2, 3, 4]


def test_fit_refuses_options_of_another_kind_of_response(one_run, capsys):
    tmp, features = one_run
    code, _ = _fit(tmp, features, "--tmin", "0", "--event-kind", "boxcar")
    assert code == 1
    assert ("--tmin, --event-kind do(es) not apply to fMRI responses (make_fmri_design); drop --tmin, "
            "--event-kind.") in capsys.readouterr().err


def test_hints_name_the_command_options():
    message = "pass trim=(first, last), delays=[1, 2], context_tokens=8 or hrf='spm'"
    assert user_message(ValueError(message), "run") == (
        "pass --set alignment.trim=[FIRST,LAST], --set alignment.delays=[1, 2], "
        "--set model.context_tokens=8 or --set alignment.hrf='spm'")
    assert user_message(ValueError(message), "fit") == (
        "pass --trim FIRST,LAST, --delays [1, 2], context_tokens=8 or --hrf 'spm'")
    assert user_message(ValueError("stride=4 applies to a number of context_tokens"), "extract") == (
        "--stride 4 applies to a number of context_tokens")


# ---------------------------------------------------------------------- the mechanism
@declare({"n": [Interval(Integral, 0, None, closed="left")], "mode": [Choices("a", "b")],
          "grid": [None, Logspace(), ListOf(Interval(Real, 0, None, closed="neither"))]})
def _toy(x, *, n: int = 3, mode: str = "a", grid=None):
    """A toy function.

    Parameters
    ----------
    x : array
        Data.
    n : int
        How many. More text in a second sentence.

        A second paragraph, left out of the help.
    mode : {"a", "b"}
        The mode (default ``"a"``).
    grid : sequence of float | None
        See :func:`~neuroenc.encoding.fit_encoding`.
    """


def test_settings_of_reads_signature_constraints_and_numpydoc():
    settings = settings_of(_toy, exclude=("x",))
    assert list(settings) == ["n", "mode", "grid"]
    n, mode, grid = settings.values()
    assert (n.default, n.doc, n.type_text) == (3, "How many. More text in a second sentence.", "int")
    assert n.help() == "How many. More text in a second sentence. Values: an int >= 0. (default: 3)"
    assert mode.help() == 'The mode (default "a").'  # the description gives the default
    assert grid.doc == "See fit_encoding." and grid.owner == "_toy"
    assert n.from_text("4") == 4 and grid.from_text("none") is None
    assert grid.from_text("logspace:0,1,2") == {"logspace": [0.0, 1.0, 2]}
    np.testing.assert_allclose(grid.to_value({"logspace": [0, 1, 2]}), [1.0, 10.0])
    assert grid.from_text("0.5,2") == [0.5, 2.0]
    with pytest.raises(argparse.ArgumentTypeError, match="invalid value '-1,2': must be none, "
                                                         r"logspace:START,STOP,NUM or a list of positive"):
        grid.from_text("-1,2")
    with pytest.raises(ValueError, match=r"Invalid value for 'toy.mode'. Allowed values are 'a', 'b', but "
                                         "got 'c' instead."):
        mode.check("c", "toy.mode")
    assert settings_of(_toy, include=("x",))["x"].default is REQUIRED


def test_a_new_option_plugs_in_by_its_declaration():
    """An option declared on a library function (signature, constraint, numpydoc) becomes a
    command-line option and a config key, checked, with its help and default."""
    from neuroenc._settings import Pattern, Section, add_options, given

    @declare({"cv": [Choices("auto", "runs"), Pattern(r"kfold:[1-9]\d*", "kfold:K")]})
    def fit(data, cv="auto"):
        """Fit.

        Parameters
        ----------
        data : array
        cv : str
            The folds: by run, or K folds.
        """

    settings = settings_of(fit, exclude=("data",))
    parser = argparse.ArgumentParser()
    add_options(parser, settings)
    assert given(parser.parse_args(["--cv", "kfold:5"]), settings) == {"cv": "kfold:5"}
    assert given(parser.parse_args([]), settings) == {}
    assert "Values: 'auto', 'runs' or kfold:K. (default: auto)" in " ".join(parser.format_help().split())
    with pytest.raises(SystemExit):
        parser.parse_args(["--cv", "kfold:x"])
    assert Section("encoding", settings, {"cv": "kfold:3"}).kwargs(fit) == {"cv": "kfold:3"}
    with pytest.raises(ValueError, match=r"encoding.cv must be 'auto', 'runs' or kfold:K; got 'kfold:0'"):
        Section("encoding", settings, {"cv": "kfold:0"})
