"""Settings have one source: the command line's options are the library's parameters.

``neuroenc extract``, ``fit`` and ``report`` derive their options from FeatureExtractor and
StimulusExtractor, make_fmri_design/make_meg_design, fit_encoding and fit_stimuli, and
map_layers: the same names, defaults, allowed values and help; an option not given is not
passed.
"""
from __future__ import annotations

import argparse
import inspect
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import pytest

from neuroenc._settings import REQUIRED, Choices, Interval, ListOf, Logspace, Setting, declare, settings_of
from neuroenc.align import make_fmri_design, make_meg_design
from neuroenc.cli import build_parser, main, user_message
from neuroenc.encoding import EncodingResults, fit_encoding
from neuroenc.encoding.stimulus_fit import fit_stimuli
from neuroenc.features import FeatureExtractor, FeatureSet, StimulusExtractor
from neuroenc.features.featureset import save_features
from neuroenc.mapping import map_layers
from neuroenc.pipeline.config import section_settings

#: command -> ({kind of data: the library calls its derived options come from}, the config
#: sections they share). ``neuroenc extract`` runs FeatureExtractor (--transcript) or
#: StimulusExtractor (--stimuli); ``neuroenc fit`` the designs and fit_encoding, or fit_stimuli.
COMMANDS = {
    "extract": ({"story": [FeatureExtractor], "stimuli": [StimulusExtractor]}, ("model",)),
    "fit": ({"story": [make_fmri_design, make_meg_design, fit_encoding], "stimuli": [fit_stimuli]},
            ("alignment", "encoding")),
    "report": ({"story": [map_layers]}, ()),
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


def _path_settings(command: str, kind: str) -> dict:
    """The settings of one kind of data behind a command's options."""
    from neuroenc.commands.extract import extractor_settings
    from neuroenc.commands.fit import design_settings, encoding_settings
    from neuroenc.commands.report import mapping_settings

    if command == "extract":
        return extractor_settings({"story": "transcript", "stimuli": "stimuli"}[kind])
    if command == "fit":
        return {**design_settings(), **encoding_settings(kind)} if kind == "story" else encoding_settings(kind)
    return mapping_settings()


def _equal(a, b) -> bool:
    return a is b or (np.all(a == b) if not isinstance(a, (list, tuple)) else tuple(a) == tuple(b))


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_cli_config_and_library_defaults_agree(command):
    """Every derived option has the default of every library call behind it (each path's own,
    named in the help when they differ), accepts it, and is the config key of that kind of
    data set with the same default and values."""
    kinds, sections = COMMANDS[command]
    library = _library_defaults([o for owners in kinds.values() for o in owners])
    derived = [a for a in _subparser(command)._actions if a.default is argparse.SUPPRESS
               and a.dest in library and a.dest != "help"]
    assert len(derived) >= {"extract": 18, "fit": 25, "report": 4}[command]
    n_alternatives = 0
    for action in derived:
        name = action.dest
        assert action.required is False
        if name == "layers":  # the command line's own grammar (ranges) for the extractors' layers
            assert action.type.__name__ == "parse_layers"
            continue
        setting = action.type.__self__  # Setting.from_text: the option parses with the setting
        assert isinstance(setting, Setting)
        alternatives = [s for _, s in setting.alternatives] or [setting]
        n_alternatives += len(setting.alternatives) > 0
        checked = 0
        for kind, owners in kinds.items():
            config = {}
            for section in sections:
                config.update(section_settings(section, kind))
            own = _path_settings(command, kind).get(name)  # the option as this kind's call has it
            if own is None:
                continue
            assert any(_equal(s.default, own.default) and s.expected() == own.expected() for s in alternatives)
            for owner in owners:
                if owner.__name__ != own.owner:
                    continue
                default = _library_defaults([owner])[name][0]
                assert _equal(own.default, default), (command, name, owner)
                assert setting.is_valid(default), (command, name, default)  # the option takes it
                if name in config:  # the config's key of that kind of data set is the same setting
                    assert _equal(config[name].default, default), (command, kind, name)
                    assert config[name].expected() == own.expected(), (command, kind, name)
                checked += 1
        assert checked, (command, name)
        # the help says the default (or the description does), each path's when they differ
        assert "default" in action.help.lower(), (command, name, action.help)
        if setting.alternatives and len({str(s.default) for s in alternatives}) > 1:
            text = " ".join(action.help.split())
            for label, s in setting.alternatives:
                shown = str(s.default).lower() if isinstance(s.default, bool) or s.default is None else str(s.default)
                assert f"{shown} with {label}" in text, (command, name, text)
        assert setting.is_valid(setting.default)
        choices = [c for c in setting.constraints if isinstance(c, Choices)]
        if choices and action.metavar:
            assert all(v in action.metavar for c in choices for v in c.values)
    assert n_alternatives >= {"extract": 2, "fit": 1, "report": 0}[command]


def test_extract_options_of_both_extractors():
    """``neuroenc extract``'s options are FeatureExtractor's and StimulusExtractor's: a shared
    one accepts either's values and names both defaults; each path's own are marked."""
    from neuroenc.commands.extract import extractor_settings

    options = extractor_settings()
    assert {"policy", "right_context", "intervention", "context", "padding_side", "surprisal"} <= set(options)
    assert options["pooling"].expected() == "'last', 'mean', 'first' or 'last-word'"
    assert extractor_settings("transcript")["pooling"].expected() == "'last', 'mean' or 'first'"
    assert extractor_settings("stimuli")["pooling"].expected() == "'mean', 'last' or 'last-word'"
    assert extractor_settings("stimuli")["prepend_bos"].default == "auto"
    assert extractor_settings("stimuli")["pooling"].owner == "StimulusExtractor"
    help_text = " ".join(_subparser("extract").format_help().split())
    assert "(default: last with --transcript, mean with --stimuli)" in help_text
    # one default for both paths (issue 19): the BOS first, so no word is the attention sink
    assert extractor_settings("transcript")["prepend_bos"].default == "auto"
    action = next(a for a in _subparser("extract")._actions if "--prepend-bos" in a.option_strings)
    assert "(default: auto)" in " ".join(action.help.split()) and "with --transcript" not in action.help
    for flag in ("--policy", "--right-context"):
        action = next(a for a in _subparser("extract")._actions if flag in a.option_strings)
        assert action.help.endswith("(--transcript only)"), flag
    action = next(a for a in _subparser("extract")._actions if "--intervention" in a.option_strings)
    assert "only)" not in action.help  # both extractors take an intervention (issue 21)
    for flag in ("--context", "--padding-side"):
        action = next(a for a in _subparser("extract")._actions if flag in a.option_strings)
        assert action.help.endswith("(--stimuli only)"), flag


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
    (["--pooling", "max"], "argument --pooling: invalid value 'max': must be 'last', 'mean', 'first' or "
                           "'last-word'"),
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


# ---------------------------------------------------------------------- the two paths of extract and fit
@pytest.fixture(scope="module")
def two_paths(tmp_path_factory):
    """A tiny causal model, a transcript and a sentence table."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from _stimuli_fixtures import write_sentences

    from neuroenc.testing import tiny_gpt2

    root = tmp_path_factory.mktemp("paths")
    tiny_gpt2(n_layer=2, path=root / "model")
    (root / "story.txt").write_text("the cat sat on the mat and then it slept in the warm sun", encoding="utf-8")
    write_sentences(root / "sentences.csv", n_passages=3, per_passage=3)
    return root


def test_extract_stimuli_takes_the_stimulus_options(two_paths, tmp_path, capsys):
    """--stimuli runs StimulusExtractor with the options given (--pooling last-word) and its own
    defaults for the rest (prepend_bos auto, as the transcript path's since issue 19)."""
    from neuroenc.features import load_stimulus_features

    out = tmp_path / "f.h5"
    assert main(["-q", "extract", "--model", str(two_paths / "model"), "--stimuli", str(two_paths / "sentences.csv"),
                 "--text-column", "sentence", "--group-column", "passage", "--pooling", "last-word",
                 "--context", "group", "--padding-side", "left", "--out", str(out)]) == 0
    assert "9 stimuli x 3 layers" in capsys.readouterr().out
    fs = load_stimulus_features(out)
    assert (fs.attrs["pooling"], fs.attrs["prepend_bos"], fs.attrs["context"], fs.attrs["padding_side"]) == (
        "last-word", "auto", "group", "left")
    assert fs.attrs["context_tokens"] == "full"  # StimulusExtractor's default with context group


@pytest.mark.parametrize("argv, message", [
    (["--transcript", "story.txt", "--pooling", "last-word"],
     "--pooling last-word applies to --stimuli only; with --transcript give 'last', 'mean' or 'first'."),
    (["--transcript", "story.txt", "--context", "group"], "--context applies to --stimuli only; drop it with "
                                                           "--transcript."),
    (["--transcript", "story.txt", "--padding-side", "left", "--surprisal", "true"],
     "--padding-side applies to --stimuli only; drop it with --transcript."),
    (["--transcript", "story.txt", "--context-tokens", "none"],
     "--context-tokens none applies to --stimuli only; with --transcript give an int >= 0 or 'full'."),
    (["--transcript", "story.txt", "--text-column", "sentence"], "--text-column applies to --stimuli only"),
    (["--stimuli", "sentences.csv", "--text-column", "sentence", "--pooling", "first"],
     "--pooling first applies to --transcript only; with --stimuli give 'mean', 'last' or 'last-word'."),
    (["--stimuli", "sentences.csv", "--text-column", "sentence", "--policy", "window", "--reference", "midpoint"],
     "--policy, --reference apply to --transcript only; drop them with --stimuli."),
    (["--stimuli", "sentences.csv", "--text-column", "sentence", "--encoding", "cp1252"],
     "--encoding applies to --transcript only; drop it with --stimuli."),
    (["--stimuli", "sentences.csv", "--text-column", "sentence", "--stride", "4"],
     "--stride applies to --context group with --stimuli"),
    (["--stimuli", "sentences.csv", "--text-column", "sentence", "--group-column", "passage", "--context", "group",
      "--stride", "4"],
     "--stride applies to a number of --context-tokens; --context-tokens full (the default with --context group) "
     "reads each group in one forward pass."),
])
def test_extract_refuses_options_of_the_other_path(two_paths, tmp_path, capsys, argv, message):
    argv = [a if a not in ("story.txt", "sentences.csv") else str(two_paths / a) for a in argv]
    code = main(["extract", "--model", str(two_paths / "model"), *argv, "--out", str(tmp_path / "f.h5")])
    assert code == 1
    assert message in " ".join(capsys.readouterr().err.split())


@pytest.fixture
def stimulus_features(two_paths, tmp_path):
    feats = tmp_path / "f.h5"
    assert main(["-q", "extract", "--model", str(two_paths / "model"), "--stimuli",
                 str(two_paths / "sentences.csv"), "--text-column", "sentence", "--group-column", "passage",
                 "--out", str(feats)]) == 0
    rng = np.random.default_rng(0)
    rows = ["id,lang"] + [f"s{i:02d},{rng.standard_normal():.6f}" for i in range(1, 10)]
    (tmp_path / "resp.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return feats, tmp_path / "resp.csv"


@pytest.mark.parametrize("argv, message", [
    (["--n-blocks", "3", "--hrf", "glover"], "--hrf, --n-blocks: the features are stimulus-level (one row per "
                                             "stimulus, no time); drop the timing options."),
    (["--form", "primal"], "--form applies to word-timed features only; drop it with stimulus-level features."),
    (["--cv", "runs"], "--cv runs applies to word-timed features only; with stimulus-level features give 'auto', "
                       "kfold:K or group-kfold:K (K >= 2 folds)."),
])
def test_fit_stimuli_refuses_options_of_word_timed_fits(stimulus_features, tmp_path, capsys, argv, message):
    feats, resp = stimulus_features
    capsys.readouterr()
    code = main(["fit", "--features", str(feats), "--responses", str(resp), "--out", str(tmp_path / "r.h5"), *argv])
    assert code == 1
    assert message in " ".join(capsys.readouterr().err.split())


def test_fit_stimuli_passes_only_what_is_given(stimulus_features, tmp_path):
    """A stimulus fit gets fit_stimuli's defaults for what is not given (cv auto: group-kfold over
    the passages) and the options given (a kfold:K cv, the seed)."""
    feats, resp = stimulus_features
    out = tmp_path / "r.h5"
    assert main(["-q", "fit", "--features", str(feats), "--responses", str(resp), "--n-permutations", "0",
                 "--inner-cv", "2", "--alphas", "1,100", "--out", str(out)]) == 0
    assert EncodingResults.load(out).settings["cv"] == "group-kfold:3"
    assert main(["-q", "fit", "--features", str(feats), "--responses", str(resp), "--n-permutations", "0",
                 "--inner-cv", "2", "--alphas", "1,100", "--cv", "kfold:3", "--random-state", "7",
                 "--out", str(out)]) == 0
    settings = EncodingResults.load(out).settings
    assert settings["cv"] == "kfold:3" and settings["random_state"] == 7


# ---------------------------------------------------------------------- validated where declared
def test_an_option_is_one_declaration_for_config_cli_and_calls(capsys):
    """Adding an option is one edit: a parameter in the signature, its constraint and its
    numpydoc line. It becomes a config key and a command-line option, and direct calls are
    checked with the same words as the config."""
    from neuroenc._settings import Section, add_options, given
    from neuroenc._validation import InvalidParameterError

    @declare({"kind": [Choices("box", "hann")], "window": [Interval(Integral, 1, None, closed="left")]})
    def smooth(data, *, kind="box", window=3):
        """Smooth.

        Parameters
        ----------
        data : array
        kind : str
            The kernel.
        window : int
            Samples per window.
        """
        return kind, window

    settings = settings_of(smooth, exclude=("data",))
    assert list(settings) == ["kind", "window"] and settings["window"].default == 3
    # a config key
    assert Section("alignment", settings, {"window": 5}).kwargs(smooth) == {"window": 5}
    with pytest.raises(ValueError) as from_config:
        Section("alignment", settings, {"window": 0}, " in 'run.yaml'")
    # a command-line option, with its help
    parser = argparse.ArgumentParser()
    add_options(parser, settings)
    assert given(parser.parse_args(["--window", "7"]), settings) == {"window": 7}
    assert "Samples per window. Values: an int >= 1. (default: 3)" in " ".join(parser.format_help().split())
    with pytest.raises(SystemExit):
        parser.parse_args(["--window", "0"])
    assert "invalid value '0': must be an int >= 1" in capsys.readouterr().err
    # a direct call: checked, in the config's words
    assert smooth([], window=4) == ("box", 4)
    with pytest.raises(InvalidParameterError) as from_call:
        smooth([], window=0)
    assert str(from_config.value) == "alignment.window in 'run.yaml' must be an int >= 1; got 0 (int)."
    assert str(from_call.value) == "window must be an int >= 1; got 0 (int)."
    with pytest.raises(ValueError, match=r"Invalid value for 'kind'. Allowed values are 'box', 'hann', but got 'x'"):
        smooth([], kind="x")
    with pytest.raises(TypeError, match="window must be an int >= 1; got '3' \\(str\\)"):  # a TypeError too
        smooth([], window="3")
    with pytest.raises(TypeError, match="has no parameter"):
        declare({"windw": [int]})(smooth.__wrapped__)


def _toy_design(rng):
    from neuroenc.responses import Response

    onsets = np.sort(rng.uniform(1.0, 70.0, 120))
    fs = FeatureSet({0: rng.standard_normal((120, 3))}, onsets, onsets + 0.3, run="r1", model="toy",
                    n_model_layers=1)
    return fs, Response(rng.standard_normal((40, 2)), tr=2.0, run="r1")


@pytest.mark.parametrize("section, key, value, call", [
    ("encoding", "block_size", 0, lambda fs, resp: fit_encoding(make_fmri_design(fs, resp), block_size=0)),
    ("encoding", "n_permutations", -1, lambda fs, resp: fit_encoding(make_fmri_design(fs, resp), n_permutations=-1)),
    ("encoding", "compare_alpha", 1.5, lambda fs, resp: fit_encoding(make_fmri_design(fs, resp), compare_alpha=1.5)),
    ("alignment", "window", 0, lambda fs, resp: make_fmri_design(fs, resp, window=0)),
    ("alignment", "trim", [1], lambda fs, resp: make_fmri_design(fs, resp, trim=[1])),
    ("alignment", "decim", 0, lambda fs, resp: make_meg_design(fs, resp, decim=0)),
    ("model", "stride", 0, lambda fs, resp: FeatureExtractor("m", stride=0).check_params()),
    ("model", "batch_size", "many", lambda fs, resp: FeatureExtractor("m", batch_size="many").check_params()),
])
def test_library_calls_and_config_refuse_alike(rng, section, key, value, call):
    """block_size=0 was accepted by the library and refused by the config: both refuse now,
    with one wording (the config's adds the section and the file)."""
    from neuroenc.pipeline import ConfigError
    from neuroenc.pipeline.config import config_from_dict

    with pytest.raises(ConfigError) as from_config:
        config_from_dict({"dataset": {"loader": "alice"}, section: {key: value}})
    with pytest.raises(ValueError) as from_call:
        call(*_toy_design(rng))
    config_words = str(from_config.value).replace(f"{section}.{key}", key)
    assert str(from_call.value) == config_words.replace("null", "None")


def test_block_size_zero_is_refused_by_the_estimator(rng):
    from neuroenc.encoding import LayerSweep

    X, Y = rng.standard_normal((60, 3)), rng.standard_normal((60, 2))
    with pytest.raises(ValueError, match=r"block_size must be 'auto', an int >= 1 or a list of ints >= 1; got 0"):
        LayerSweep(cv=2, gap=0, block_size=0, n_permutations=10).fit([X], Y)
    assert LayerSweep(cv=2, gap=0, block_size=3, n_permutations=10).fit([X], Y).r_.shape == (1, 2)


def test_python_only_values_are_taken_by_calls_not_by_configs(rng):
    """A splitter or explicit splits are a cv of a Python call, never of a config."""
    from sklearn.model_selection import KFold

    from neuroenc.encoding import LayerSweep
    from neuroenc.pipeline import ConfigError
    from neuroenc.pipeline.config import config_from_dict

    X, Y = rng.standard_normal((60, 3)), rng.standard_normal((60, 2))
    splits = list(KFold(3).split(X))
    assert len(LayerSweep(cv=KFold(3), n_permutations=0).fit([X], Y).cv_splits_) == 3
    assert len(LayerSweep(cv=splits, n_permutations=0).fit([X], Y).cv_splits_) == 3
    with pytest.raises(ConfigError, match=r"encoding.cv must be .*; got \[\[0, 1\], \[2, 3\]\]"):
        config_from_dict({"dataset": {"loader": "alice"}, "encoding": {"cv": [[0, 1], [2, 3]]}})
    assert "splitter" not in section_settings("encoding")["cv"].expected()
