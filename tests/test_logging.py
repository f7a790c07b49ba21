"""One meaning of ``verbose`` (mne's): the helper in neuroenc._logging, and the estimators,
functions and runners that take it."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from neuroenc import set_log_level
from neuroenc._logging import LOG_LEVELS, CallLog, show_progress, verbose_level
from neuroenc._settings import VERBOSE, Setting
from neuroenc.encoding import BandedLayerModel, LayerSweep, fit_encoding


@pytest.fixture
def package_logger():
    """The ``neuroenc`` logger, its level and handlers restored after the test."""
    log = logging.getLogger("neuroenc")
    level, handlers = log.level, list(log.handlers)
    yield log
    log.setLevel(level)
    log.handlers[:] = handlers


def test_verbose_level_follows_mne(package_logger):
    package_logger.setLevel(logging.ERROR)
    assert verbose_level(None) == logging.ERROR  # None: the logger's own level
    package_logger.setLevel(logging.DEBUG)
    assert verbose_level(None) == logging.DEBUG
    assert verbose_level(True) == logging.INFO
    assert verbose_level(False) == logging.WARNING
    assert [verbose_level(name) for name in LOG_LEVELS] == [10, 20, 30, 40, 50]
    assert verbose_level("DEBUG") == logging.DEBUG and verbose_level("Warning") == logging.WARNING
    assert verbose_level(25) == 25
    with pytest.raises(ValueError, match="Invalid value for 'verbose'. Allowed values are 'debug', 'info', "
                                         "'warning', 'error', 'critical', True, False, None or an int, "
                                         "but got 'loud' instead."):
        verbose_level("loud")


def test_progress_bars_show_at_info_and_below(package_logger):
    assert show_progress(True) and show_progress("info") and show_progress("debug") and show_progress(5)
    assert not show_progress(False) and not show_progress("warning") and not show_progress(40)
    package_logger.setLevel(logging.INFO)
    assert show_progress(None)
    package_logger.setLevel(logging.WARNING)
    assert not show_progress(None)


def test_set_log_level_takes_the_same_values(package_logger):
    set_log_level(False)
    assert package_logger.level == logging.WARNING
    set_log_level("debug")
    assert package_logger.level == logging.DEBUG
    set_log_level(None)  # keeps the effective level
    assert package_logger.level == logging.DEBUG
    set_log_level(True)
    assert package_logger.level == logging.INFO


def test_call_log_is_one_calls_level(package_logger, caplog):
    """An explicit level lets this call's messages through below the logger's threshold, without
    changing the logger; None inherits it."""
    package_logger.setLevel(logging.WARNING)
    CallLog(None).log(logging.INFO, "inherited %s", "quiet")
    CallLog("info").log(logging.INFO, "explicit %s", "info")
    CallLog("error").log(logging.WARNING, "explicit %s", "error")
    messages = [r.getMessage() for r in caplog.records if r.name == "neuroenc"]
    assert messages == ["explicit info"]
    assert package_logger.level == logging.WARNING
    assert CallLog("info").progress and not CallLog(None).progress


def test_every_verbose_constraint_is_the_same():
    """The estimators declare one constraint for ``verbose``, which takes each kind of value."""
    assert LayerSweep._parameter_constraints["verbose"] is VERBOSE
    setting = Setting.declare("verbose", None, VERBOSE, "Progress bars and messages.")
    for value in (None, True, False, "debug", "critical", 20):
        assert setting.is_valid(value), value
    for value in ("loud", -1, 1.5):
        assert not setting.is_valid(value), value


def _layers(rng):
    X = rng.standard_normal((120, 4))
    return {0: X, 1: X + 0.1 * rng.standard_normal((120, 4))}, X @ rng.standard_normal((4, 2))


@pytest.mark.parametrize("verbose, level, shown", [
    (None, logging.WARNING, False),
    (None, logging.INFO, True),
    (True, logging.WARNING, True),
    ("info", logging.ERROR, True),
    (False, logging.INFO, False),
    ("error", logging.DEBUG, False),
])
def test_estimators_show_progress_bars_by_the_same_rule(verbose, level, shown, package_logger, capsys, rng):
    package_logger.setLevel(level)
    layers, Y = _layers(rng)
    LayerSweep(cv=3, gap=0, inner_cv=2, n_permutations=0, refit=False, verbose=verbose).fit(layers, Y)
    assert ("layers" in capsys.readouterr().err) is shown
    BandedLayerModel(cv=3, gap=0, inner_cv=2, n_iter=2, refit=False, verbose=verbose).fit(layers, Y)
    assert ("folds" in capsys.readouterr().err) is shown
    fit_encoding(layers, Y, cv=3, gap=0, inner_cv=2, n_permutations=0, verbose=verbose)
    assert ("layers" in capsys.readouterr().err) is shown


def test_verbose_defaults_follow_the_logger():
    """Every public ``verbose`` defaults to None (the logger's level), as in mne."""
    import inspect

    from neuroenc.encoding.stimulus_fit import fit_stimuli
    from neuroenc.features import FeatureExtractor, StimulusExtractor, extract_features, layer_metrics
    from neuroenc.pipeline import run_pipeline
    from neuroenc.pipeline.distributed import run_distributed

    for obj in (LayerSweep, BandedLayerModel, fit_encoding, fit_stimuli, FeatureExtractor, StimulusExtractor,
                extract_features, layer_metrics, run_pipeline, run_distributed):
        assert inspect.signature(obj).parameters["verbose"].default is None, obj.__name__
    assert np.isscalar(verbose_level(None))
